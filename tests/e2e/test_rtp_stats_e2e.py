"""RTP statistics per leg, end to end: a worker reads each leg's RTP counters as its audio stream ends
(`switch.worker.rtpstat`), sends them with the leg's `Ended`, and /healthz sums them per worker.

sipp streams a tone (`rtp_stream`, one 20 ms PCMU packet every 20 ms) to the switch for a known time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from switch.tools.bench.rtp_sipp import PACKETS_PER_SECOND, uac_rtp_scenario, write_tone
from tests.peers.harness import SwitchProcess, WebhookSink, wait_until
from tests.peers.sipp_peer import SippPeer

pytestmark = pytest.mark.e2e

NUMBER = "+15550100"  # answered and held (no voice_url)
HOLD_S = 3.0


@pytest.fixture(scope="module")
def switch(tmp_path_factory: pytest.TempPathFactory, sink: WebhookSink) -> Iterator[SwitchProcess]:
    proc = SwitchProcess(tmp_path_factory.mktemp("switch"), workers=1,
                         numbers=[{"number": NUMBER, "status_callback": sink.url("/rtp-status")}]).start()
    yield proc
    assert proc.stop() == 0, proc.log()


def _rtp(switch: SwitchProcess) -> dict[str, Any]:
    status, body = switch.healthz()
    assert status == 200, body
    return dict(body["workers"][0]["rtp"])


def test_a_plain_call_reports_the_rtp_it_received_and_sent(switch: SwitchProcess, sink: WebhookSink,
                                                           tmp_path: Path) -> None:
    before = _rtp(switch)
    scenario = tmp_path / "uac_rtp.xml"
    scenario.write_text(uac_rtp_scenario("rtp", write_tone(tmp_path / "tone.ul")))
    sipp = SippPeer(scenario, remote=switch.sip_uri_host, service=NUMBER, calls=1, timeout=20,
                    extra_args=["-d", str(int(HOLD_S * 1000))], workdir=tmp_path)
    started = time.monotonic()
    sipp.start()
    assert sipp.wait_sync(20) == 0, sipp.error_file.read_text(errors="replace") if sipp.error_file.exists() else ""
    elapsed = time.monotonic() - started
    wait_until(lambda: _rtp(switch)["legs"] == before["legs"] + 1, 5, "the leg's RTP in /healthz")
    after = _rtp(switch)
    got = {key: after[key] - before[key] for key in after}
    print("rtp of the leg:", got, f"call took {elapsed:.2f} s")
    expected = PACKETS_PER_SECOND * HOLD_S
    assert 0.9 * expected <= got["rx_packets"] <= PACKETS_PER_SECOND * elapsed + 2
    assert got["rx_lost"] == 0 and got["rx_discarded"] == 0
    assert got["tx_packets"] >= 0.9 * expected  # the switch sends too (silence: nothing is connected to the leg)
    # Nothing reads this leg's audio (no bridge, player or tap), so its jitter buffer overflows: `jb_discarded`
    # counts those frames here, not a fault.  A bridged leg is read every 20 ms (the bench's concurrent phase).
