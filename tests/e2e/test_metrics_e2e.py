"""GET /metrics end to end: one inbound call from a lab phone moves every counter by exactly what it did.

The phone calls a number whose TwiML records 2 s of its tone, then its action hangs up; the status callback
answers 500, so the dispatcher tries it 1 + 2 retries times.  The exposition text is parsed with
prometheus_client's own parser, before and after the call.
"""

from __future__ import annotations

import base64
import json
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.peers.harness import ACCOUNT_SID, AUTH_TOKEN, SwitchProcess, WebhookSink, wait_until
from tests.peers.phone import PhoneProcess

pytestmark = pytest.mark.e2e

NUMBER = "+15550142"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def switch(tmp_path_factory: pytest.TempPathFactory, sink: WebhookSink) -> Iterator[SwitchProcess]:
    sink.twiml("/voice", '<Response><Record maxLength="2" playBeep="false" timeout="0" '
                         f'action="{sink.url("/after")}"/></Response>')
    sink.twiml("/after", "<Response><Hangup/></Response>")
    sink.responses["/status"] = lambda _hook: (500, "no", "text/plain")
    proc = SwitchProcess(tmp_path_factory.mktemp("switch"), workers=1,
                         numbers=[{"number": NUMBER, "voice_url": sink.url("/voice"),
                                   "status_callback": sink.url("/status")}]).start()
    yield proc
    assert proc.stop() == 0, proc.log()


def scrape(switch: SwitchProcess) -> Samples:
    with urllib.request.urlopen(switch.base_url + "/metrics", timeout=5) as resp:  # loopback: no credentials
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def delta(before: Samples, after: Samples, prefix: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """What changed among the samples whose name starts with `prefix` (new series count from 0)."""
    return {key: after[key] - before.get(key, 0.0) for key in after
            if key[0].startswith(prefix) and after[key] != before.get(key, 0.0)}


def test_one_recorded_call_moves_the_counters_by_exactly_what_it_did(switch: SwitchProcess,
                                                                        sink: WebhookSink) -> None:
    before = scrape(switch)
    assert before[("softswitch_worker_up", (("worker", "0"),))] == 1
    capacity = before[("softswitch_worker_capacity", (("worker", "0"),))]
    assert capacity >= 1
    with PhoneProcess(["--call", f"sip:{NUMBER}@{switch.sip_uri_host}", "--tone", "800"]) as phone:
        phone.wait_for("answered", timeout=10)
        live = ("softswitch_calls_live", (("direction", "inbound"), ("status", "in-progress")))
        wait_until(lambda: scrape(switch)[live] == 1, 5, "the call in-progress (the switch has the phone's ACK)")
        during = scrape(switch)
        assert during[("softswitch_worker_legs", (("worker", "0"),))] == 1
        assert during[("softswitch_calls_live", (("direction", "inbound"), ("status", "ringing")))] == 0
        phone.wait_for("hangup", timeout=15)
    sink.wait_for(lambda hooks: len([h for h in hooks if h.path == "/status"]) == 3, timeout=15)
    wait_until(lambda: scrape(switch)[("softswitch_webhook_request_duration_seconds_count", ())]
               - before[("softswitch_webhook_request_duration_seconds_count", ())] == 3, 5, "three attempts")
    after = scrape(switch)
    calls = delta(before, after, "softswitch_calls_")
    assert calls == {("softswitch_calls_created_total", (("direction", "inbound"),)): 1,
                     ("softswitch_calls_ended_total", (("direction", "inbound"), ("status", "completed"))): 1}
    assert after[("softswitch_worker_legs", (("worker", "0"),))] == 0
    assert after[("softswitch_worker_restarts_total", (("worker", "0"),))] == 0
    # the TwiML document and the <Record> action: two requests, neither failed
    assert after[("softswitch_twiml_request_duration_seconds_count", ())] - \
        before[("softswitch_twiml_request_duration_seconds_count", ())] == 2
    assert delta(before, after, "softswitch_twiml_failures") == {}
    # the completed callback: answered 500 three times (1 + [webhooks] retries = 2)
    assert delta(before, after, "softswitch_webhook_failures") == {
        ("softswitch_webhook_failures_total", (("code", "11217"), ("status", "500"))): 3}
    # the recording: one, 2 s of 20 ms frames (maxLength), none dropped
    recorded = delta(before, after, "softswitch_recording")
    frames = recorded.pop(("softswitch_recording_frames_total", ()))
    assert recorded == {("softswitch_recordings_written_total", ()): 1}
    assert 90 <= frames <= 110
    # the call's RTP: one observation of loss and jitter, the tone's packets received, none lost
    rtp = delta(before, after, "softswitch_call_rtp")
    assert rtp[("softswitch_call_rtp_loss_ratio_count", ())] == 1
    assert rtp[("softswitch_call_rtp_jitter_max_seconds_count", ())] == 1
    assert rtp[("softswitch_call_rtp_loss_ratio_bucket", (("le", "0.0"),))] == 1  # no loss on loopback
    received = rtp[("softswitch_call_rtp_packets_total", (("kind", "received"),))]
    assert received >= 100  # 50 a second for the 2 s recording at least
    assert ("softswitch_call_rtp_packets_total", (("kind", "lost"),)) not in rtp
    # ... and the same figures on the Call resource, which the official client still parses
    sid = sink.for_path("/status")[0].params["CallSid"]
    call = switch.client().calls(sid).fetch()
    assert call.status == "completed" and call.direction == "inbound"
    with urllib.request.urlopen(urllib.request.Request(
            f"{switch.base_url}/2010-04-01/Accounts/{call.account_sid}/Calls/{sid}.json",
            headers=_auth()), timeout=5) as resp:
        quality = json.loads(resp.read())["softswitch_media_quality"]
    assert quality["packets_received"] == received
    assert quality["packets_lost"] == 0 and quality["packets_loss_percentage"] == 0.0
    assert quality["streams"] == 1 and quality["packets_sent"] > 0


def _auth() -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()}
