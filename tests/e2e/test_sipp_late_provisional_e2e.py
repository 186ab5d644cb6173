"""The bench's UAC scenario survives a provisional response that arrives after the 200 OK.

Kamailio relays a transaction's responses from several processes, so a 180 can reach the caller after the 200
(seen in `softswitch bench`'s edge ladder: a call waited for a second 200 that never came, failed after sipp's
receive timeout, and left its switch call up).  Here sipp's UAS sends its 180 after the ACK, with the INVITE's
Via, as the edge can; the bench's own sipp UAC (`switch.tools.bench.sipp.uac_scenario`) must finish every call.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from switch.tools.bench.common import HOST
from switch.tools.bench.sipp import SippUas, read_messages, run_sipp_uac

pytestmark = pytest.mark.e2e

SCENARIO = Path(__file__).parent.parent / "peers" / "sipp" / "uas_late_180.xml"
CALLS = 8


async def test_a_late_180_neither_fails_nor_strands_a_bench_call(tmp_path: Path) -> None:
    uas = await SippUas(tmp_path, "late180", CALLS, trace=True, scenario=SCENARIO).start(budget=30)
    try:
        run = await run_sipp_uac(f"{HOST}:{uas.port}", CALLS, 10.0, 200, tmp_path, "uac", from_prefix="late",
                                 service="late")
        uas_exit = await uas.finish(10.0)
    finally:
        await uas.kill()
    # the peer did what the test is about: each call's 180 went out after its ACK came in, and its BYE came after
    order: dict[str, list[str]] = {}
    for msg in read_messages(uas.message_log):
        words = msg.first_line.split()
        order.setdefault(msg.from_user, []).append(words[1] if msg.first_line.startswith("SIP/2.0") else words[0])
    assert sorted(order) == sorted(f"late{n}" for n in range(1, CALLS + 1))
    for user, seen in order.items():
        assert seen == ["INVITE", "200", "ACK", "180", "BYE", "200"], (user, seen)
    assert (run.successful, run.failed, run.last_error) == (CALLS, 0, "")
    assert run.returncode == 0
    assert uas_exit == 0
