"""What a real peer sends on a live call is refused, never crashes the worker (issue 13, sections 2 and 4).

A sipp UAS answers the switch's call, then sends a re-INVITE whose SDP says `c=IN IP4 ::1` (pjsip would abort
negotiating it: refused 488 by `switch.worker.guard`) and a REFER (refused 403: a call without a
`<Dial referUrl>` takes no transfer), then hangs up.  The worker must survive with the same pid and the call end
with its whole callback sequence.
"""

from __future__ import annotations

from tests.peers.harness import SwitchProcess, WebhookSink, wait_until
from tests.peers.sipp_peer import SippPeer

ALL_EVENTS = ["initiated", "ringing", "answered", "completed"]


def test_bad_reinvite_and_refer_are_refused_and_the_call_goes_on(switch: SwitchProcess, sink: WebhookSink) -> None:
    pids = [w["pid"] for w in switch.healthz()[1]["workers"]]
    with SippPeer("uas_hostile.xml", timeout=20) as far:
        call = switch.client().calls.create(
            to=f"sip:bob@{far.uri_host}", from_="+15550199", twiml="<Response><Pause length='30'/></Response>",
            status_callback=sink.url("/hostile"), status_callback_event=ALL_EVENTS,
        )
        hooks = sink.wait_statuses("/hostile", str(call.sid), 4, timeout=20)
        assert far.wait_sync(10) == 0, far.describe()
    assert [h.params["CallStatus"] for h in hooks] == ["initiated", "ringing", "in-progress", "completed"]
    assert [h.params.get("SipResponseCode") for h in hooks] == [None, "180", "200", "200"]
    status, health = switch.healthz()
    assert status == 200
    assert [w["pid"] for w in health["workers"]] == pids  # no worker died
    wait_until(lambda: switch.healthz()[1]["in_use"] == 0, what="slots released")
