"""The SIP edge relays a call's responses in the order the worker sent them: a 180 never overtakes its 200.

A worker answering at once sends 180 and 200 within a millisecond.  With two Kamailio processes reading the
UDP socket, the two could be relayed out of order (about 1 call in 300 here); a caller's UA then drops the
late 180, and for an outbound leg the switch itself would lose the `ringing` callback.  Kamailio now reads UDP
with one process.  sipp calls a plain number (answered at once) 600 times through the edge at 200 calls/s and
logs every message; each call's 180 must come before its 200.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from switch.tools.bench.sipp import read_messages, run_sipp_uac
from tests.peers.harness import SwitchProcess

pytestmark = pytest.mark.e2e

NUMBER = "+15550177"
CALLS, RATE = 600, 200.0


@pytest.fixture
def switch(tmp_path: Path) -> Iterator[SwitchProcess]:
    proc = SwitchProcess(tmp_path, workers=2, numbers=[{"number": NUMBER}],
                         edge={"max_cps": 1000, "per_source_rps": 5000})
    proc.start()
    yield proc
    assert proc.stop() == 0, proc.log()


async def test_the_edge_relays_each_180_before_its_200(switch: SwitchProcess, tmp_path: Path) -> None:
    run = await run_sipp_uac(switch.sip_uri_host, CALLS, RATE, 50, tmp_path, "order", service=NUMBER,
                             from_prefix="order", trace=True)
    assert (run.successful, run.failed, run.last_error) == (CALLS, 0, "")
    responses: dict[str, list[str]] = {}
    for msg in read_messages(run.message_log):
        if not msg.sent and msg.first_line.startswith("SIP/2.0") and msg.cseq_method == "INVITE":
            code = msg.first_line.split()[1]
            if code != "100":  # Kamailio's own 100 Trying
                responses.setdefault(msg.from_user, []).append(code)
    assert len(responses) == CALLS
    out_of_order = {user: codes for user, codes in responses.items() if codes[:2] != ["180", "200"]}
    assert out_of_order == {}
