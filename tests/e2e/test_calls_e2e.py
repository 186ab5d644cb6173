"""End to end: the official twilio client drives the switch, sipp is the far end, webhooks are recorded.

Each test asserts the whole story: every status callback in order with its sequence numbers and
signature, and every SIP response the peer sent or received.
"""

from __future__ import annotations

import socket
import time

import pytest
from twilio.base.exceptions import TwilioRestException

from tests.e2e.conftest import INBOUND_NUMBER
from tests.peers.harness import Hook, SwitchProcess, WebhookSink, wait_until
from tests.peers.phone import PhoneProcess
from tests.peers.sipp_peer import SippPeer

ALL_EVENTS = ["initiated", "ringing", "answered", "completed"]


def _create(switch: SwitchProcess, sink: WebhookSink, to: str, **kwargs: object) -> str:
    call = switch.client().calls.create(
        to=to, from_="+15550199", twiml="<Response><Pause length='30'/></Response>",
        status_callback=sink.url("/status"), status_callback_event=ALL_EVENTS, **kwargs,
    )
    assert call.status == "queued"
    assert call.direction == "outbound-api"
    return str(call.sid)


def _check_sequence(hooks: list[Hook], statuses: list[str], sip_codes: list[str | None]) -> None:
    """The callbacks are exactly `statuses`, numbered 0..n-1, signed, with the standard parameters."""
    assert [h.params["CallStatus"] for h in hooks] == statuses
    assert [h.params["SequenceNumber"] for h in hooks] == [str(i) for i in range(len(statuses))]
    assert [h.params.get("SipResponseCode") for h in hooks] == sip_codes
    for hook in hooks:
        assert WebhookSink.valid(hook), f"bad signature on {hook.params}"
        assert hook.params["CallbackSource"] == "call-progress-events"
        assert hook.params["ApiVersion"] == "2010-04-01"
        assert hook.params["Direction"] == "outbound-api"
        assert hook.params["From"] == "+15550199"
        assert hook.params["Timestamp"].endswith("+0000")
    final = hooks[-1].params
    assert "CallDuration" in final and "Duration" in final


def test_answered_call_hung_up_by_api(switch: SwitchProcess, sink: WebhookSink) -> None:
    with SippPeer("uas_answer.xml", timeout=20) as far:
        sid = _create(switch, sink, f"sip:bob@{far.uri_host}")
        sink.wait_statuses("/status", sid, 3)
        fetched = switch.client().calls(sid).fetch()
        assert fetched.status == "in-progress"
        # Twilio: canceled "will not affect calls already in progress", and is no error.
        assert switch.client().calls(sid).update(status="canceled").status == "in-progress"
        assert switch.client().calls(sid).update(status="completed").status == "completed"
        hooks = sink.wait_statuses("/status", sid, 4)
        assert far.wait_sync(10) == 0, far.describe()
    _check_sequence(hooks, ["initiated", "ringing", "in-progress", "completed"], [None, "180", "200", "200"])
    assert far.codes_sent() == [100, 180, 200, 200]  # the last answers our BYE
    assert far.methods_received() == ["INVITE", "ACK", "BYE"]
    call = switch.client().calls(sid).fetch()
    assert call.status == "completed"
    assert call.start_time is not None and call.end_time is not None


def test_busy(switch: SwitchProcess, sink: WebhookSink) -> None:
    with SippPeer("uas_busy.xml", timeout=20) as far:
        sid = _create(switch, sink, f"sip:bob@{far.uri_host}")
        hooks = sink.wait_statuses("/status", sid, 3)
        assert far.wait_sync(10) == 0, far.describe()
    _check_sequence(hooks, ["initiated", "ringing", "busy"], [None, "180", "486"])
    assert hooks[-1].params["CallDuration"] == "0"
    assert far.codes_sent() == [100, 180, 486]
    assert far.methods_received() == ["INVITE", "ACK"]
    assert switch.client().calls(sid).fetch().status == "busy"


def test_no_answer_after_timeout(switch: SwitchProcess, sink: WebhookSink) -> None:
    with SippPeer("uas_noanswer.xml", timeout=20) as far:
        started = time.monotonic()
        sid = _create(switch, sink, f"sip:bob@{far.uri_host}", timeout=2)
        hooks = sink.wait_statuses("/status", sid, 3)
        elapsed = time.monotonic() - started
        assert far.wait_sync(10) == 0, far.describe()
    _check_sequence(hooks, ["initiated", "ringing", "no-answer"], [None, "180", "487"])
    assert 1.5 < elapsed < 6, elapsed
    assert far.codes_sent() == [100, 180, 200, 487]
    assert far.methods_received() == ["INVITE", "CANCEL", "ACK"]


def test_not_found_fails(switch: SwitchProcess, sink: WebhookSink) -> None:
    with SippPeer("uas_404.xml", timeout=20) as far:
        sid = _create(switch, sink, f"sip:nobody@{far.uri_host}")
        hooks = sink.wait_statuses("/status", sid, 2)
        assert far.wait_sync(10) == 0, far.describe()
    _check_sequence(hooks, ["initiated", "failed"], [None, "404"])
    assert far.codes_sent() == [404]
    assert switch.client().calls(sid).fetch().status == "failed"


def test_cancel_through_api_while_ringing(switch: SwitchProcess, sink: WebhookSink) -> None:
    with SippPeer("uas_noanswer.xml", timeout=20) as far:
        sid = _create(switch, sink, f"sip:bob@{far.uri_host}")
        sink.wait_statuses("/status", sid, 2)
        updated = switch.client().calls(sid).update(status="canceled")
        assert (updated.sid, updated.status) == (sid, "canceled")
        hooks = sink.wait_statuses("/status", sid, 3)
        assert far.wait_sync(10) == 0, far.describe()
    _check_sequence(hooks, ["initiated", "ringing", "canceled"], [None, "180", "487"])
    assert far.methods_received() == ["INVITE", "CANCEL", "ACK"]
    assert far.codes_sent() == [100, 180, 200, 487]


def test_far_end_hangs_up(switch: SwitchProcess, sink: WebhookSink) -> None:
    with SippPeer("uas_answer_bye.xml", timeout=20, variables={"pause_ms": 1200}) as far:
        sid = _create(switch, sink, f"sip:bob@{far.uri_host}")
        hooks = sink.wait_statuses("/status", sid, 4)
        assert far.wait_sync(10) == 0, far.describe()
    _check_sequence(hooks, ["initiated", "ringing", "in-progress", "completed"], [None, "180", "200", "200"])
    assert hooks[-1].params["CallDuration"] in ("1", "2")
    assert hooks[-1].params["Duration"] == "1"
    assert far.methods_sent() == ["BYE"]
    assert far.codes_received() == [200]


def test_early_media_is_ringing(switch: SwitchProcess, sink: WebhookSink) -> None:
    with SippPeer("uas_early_media.xml", timeout=20) as far:
        sid = _create(switch, sink, f"sip:bob@{far.uri_host}")
        sink.wait_statuses("/status", sid, 3)
        switch.client().calls(sid).update(status="completed")
        hooks = sink.wait_statuses("/status", sid, 4)
        assert far.wait_sync(10) == 0, far.describe()
    _check_sequence(hooks, ["initiated", "ringing", "in-progress", "completed"], [None, "183", "200", "200"])
    assert far.codes_sent() == [100, 183, 200, 200]


def test_default_events_are_completed_only(switch: SwitchProcess, sink: WebhookSink) -> None:
    with SippPeer("uas_busy.xml", timeout=20) as far:
        call = switch.client().calls.create(to=f"sip:bob@{far.uri_host}", from_="+15550199",
                                            url=sink.url("/voice"), status_callback=sink.url("/only-completed"))
        hooks = sink.wait_statuses("/only-completed", call.sid, 1)
        assert far.wait_sync(10) == 0
    time.sleep(0.3)  # nothing else may follow
    assert [h.params["CallStatus"] for h in sink.for_path("/only-completed")
            if h.params["CallSid"] == call.sid] == ["busy"]
    assert hooks[0].params["SequenceNumber"] == "0"


def test_digest_auth_with_sip_auth_params(switch: SwitchProcess, sink: WebhookSink) -> None:
    with SippPeer("uas_auth.xml", timeout=20, auth=("alice", "s3cret")) as far:
        sid = _create(switch, sink, f"sip:bob@{far.uri_host}", sip_auth_username="alice",
                      sip_auth_password="s3cret")
        sink.wait_statuses("/status", sid, 3)
        switch.client().calls(sid).update(status="completed")
        hooks = sink.wait_statuses("/status", sid, 4)
        assert far.wait_sync(10) == 0, far.describe()
    assert [h.params["CallStatus"] for h in hooks] == ["initiated", "ringing", "in-progress", "completed"]
    assert far.codes_sent() == [401, 100, 180, 200, 200]
    assert far.methods_received() == ["INVITE", "ACK", "INVITE", "ACK", "BYE"]


def test_inbound_call_to_a_number(switch: SwitchProcess, sink: WebhookSink) -> None:
    caller = SippPeer("uac_inbound.xml", remote=switch.sip_uri_host, service=INBOUND_NUMBER, timeout=20,
                      variables={"pause_ms": 500})
    with caller:
        assert caller.wait_sync(15) == 0, caller.describe()
    assert 200 in caller.codes_received()
    assert caller.methods_sent() == ["INVITE", "ACK", "BYE"]
    hooks = sink.wait_for(lambda hs: any(h.path == "/inbound-status" for h in hs))
    hook = next(h for h in hooks if h.path == "/inbound-status")
    assert hook.params["CallStatus"] == "completed"
    assert hook.params["Direction"] == "inbound"
    assert hook.params["To"] == INBOUND_NUMBER
    assert WebhookSink.valid(hook)
    calls = switch.client().calls.list(to=INBOUND_NUMBER)
    assert [c.sid for c in calls] == [hook.params["CallSid"]]
    assert calls[0].direction == "inbound"


def test_inbound_unknown_number_gets_404(switch: SwitchProcess) -> None:
    with SippPeer("uac_inbound_404.xml", remote=switch.sip_uri_host, service="+19999999", timeout=20) as caller:
        assert caller.wait_sync(15) == 0, caller.describe()
    assert caller.codes_received()[-1] == 404
    assert switch.client().calls.list(to="+19999999") == []


def test_unroutable_number_is_a_clear_error(switch: SwitchProcess) -> None:
    with pytest.raises(TwilioRestException) as info:
        switch.client().calls.create(to="+15557654321", from_="+15550199", url="http://127.0.0.1:1/x")
    assert info.value.status == 400
    assert info.value.code == 21215
    assert "trunk" in str(info.value.msg)


def test_list_filters_by_status(switch: SwitchProcess, sink: WebhookSink) -> None:
    with SippPeer("uas_busy.xml", timeout=20) as far:
        sid = _create(switch, sink, f"sip:listed@{far.uri_host}")
        sink.wait_statuses("/status", sid, 3)
        far.wait_sync(10)
    busy = switch.client().calls.list(status="busy", to=f"sip:listed@{far.uri_host}")
    assert [c.sid for c in busy] == [sid]
    wait_until(lambda: switch.healthz()[1]["in_use"] == 0, what="slots released")


def test_time_limit_hangs_up(switch: SwitchProcess, sink: WebhookSink) -> None:
    with SippPeer("uas_answer.xml", timeout=20) as far:
        sid = _create(switch, sink, f"sip:bob@{far.uri_host}", time_limit=1)
        hooks = sink.wait_statuses("/status", sid, 4, timeout=10)
        assert far.wait_sync(10) == 0, far.describe()
    _check_sequence(hooks, ["initiated", "ringing", "in-progress", "completed"], [None, "180", "200", "200"])
    assert hooks[-1].params["CallDuration"] == "1"
    assert far.methods_received() == ["INVITE", "ACK", "BYE"]


MALFORMED = [
    b"\x00\x01garbage that is not SIP at all\r\n\r\n",
    b"INVITE sip:x@127.0.0.1 SIP/2.0\r\nVia: broken\r\n\r\n",  # no Call-ID, CSeq, From, To
    b"SIP/2.0 200 OK\r\nContent-Length: 99999\r\n\r\nshort",  # a response to nothing, lying length
    b"INVITE sip:+15550100@127.0.0.1 SIP/2.0\r\n" + b"X-Long: " + b"a" * 3000 + b"\r\n\r\n",
]


def test_malformed_sip_is_dropped_and_calls_go_on(switch: SwitchProcess, sink: WebhookSink) -> None:
    before = switch.healthz()[1]["workers"][0]["pid"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for datagram in MALFORMED:
            sock.sendto(datagram, ("127.0.0.1", switch.sip_port))
    time.sleep(0.3)
    status, health = switch.healthz()
    assert status == 200 and health["workers"][0]["pid"] == before  # the worker did not die
    assert health["live_calls"] == 0  # and no half-call was created
    test_busy(switch, sink)  # a real call still works end to end


def test_send_digits_reach_the_far_end(switch: SwitchProcess, sink: WebhookSink) -> None:
    with PhoneProcess(["--answer", "auto", "--exit-after-calls", "1"]) as phone:
        sid = _create(switch, sink, phone.uri("bob"), send_digits="12w#")
        sink.wait_statuses("/status", sid, 3)
        digits = [phone.wait_for("dtmf", timeout=10, count=n)["digit"] for n in (1, 2, 3)]
        switch.client().calls(sid).update(status="completed")
        sink.wait_statuses("/status", sid, 4)
        phone.wait_for("hangup", timeout=10)
    assert digits == ["1", "2", "#"]
    dtmf = phone.events("dtmf")
    assert all(e["method"] == "rfc2833" for e in dtmf)
    assert dtmf[2]["t"] - dtmf[1]["t"] >= 0.45  # the `w` is a half-second pause
    assert phone.names()[:3] == ["ready", "incoming", "answered"]


def _sip_events(switch: SwitchProcess, sid: str) -> list[str]:
    import sqlite3

    with sqlite3.connect(f"file:{switch.workdir / 'data' / 'softswitch.db'}?mode=ro", uri=True) as db:
        return [row[0] for row in db.execute(
            "SELECT detail FROM call_events WHERE call_sid = ? AND kind = 'sip' ORDER BY id", (sid,))]


def test_far_end_hold_and_unhold_are_events_of_the_leg(switch: SwitchProcess, sink: WebhookSink) -> None:
    """A re-INVITE with sendonly (hold), then sendrecv (unhold): both answered 200, recorded on the leg, and the
    call goes on to its normal end."""
    with SippPeer("uas_hold.xml", timeout=20) as far:
        sid = _create(switch, sink, f"sip:bob@{far.uri_host}")
        hooks = sink.wait_statuses("/status", sid, 4, timeout=20)
        assert far.wait_sync(10) == 0, far.describe()
    _check_sequence(hooks, ["initiated", "ringing", "in-progress", "completed"], [None, "180", "200", "200"])
    assert far.methods_sent() == ["INVITE", "ACK", "INVITE", "ACK", "BYE"]
    assert far.codes_received() == [200, 200, 200]
    wait_until(lambda: "taken off hold" in _sip_events(switch, sid), 5, "the unhold event")
    events = _sip_events(switch, sid)
    assert [e for e in events if e in ("held by the far end", "taken off hold")] == [
        "held by the far end", "taken off hold"]
