"""Call Events: the request log kept per call, its Twilio rendering, and the SIP ladder (switch.core.call_events,
switch.dialects.twilio.events, switch.worker.siptrace's parsing)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from switch.core.call_events import BODY_EXCERPT, CallRequests, HttpExchange, SipLadder, SipLine, first_line
from switch.core.store import Store
from switch.dialects.twilio.events import event_to_json, parameters, sip_to_json, snake_case
from switch.workers.protocol import Ended, Event, SipMessage

SID = "CA" + "1" * 32
AT = dt.datetime(2026, 12, 6, 3, 4, 5, 678000, tzinfo=dt.UTC)

INVITE = ("INVITE sip:+15550100@127.0.0.1:5080 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK1\r\n"
          "Call-ID: abc@127.0.0.1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")


def _exchange(**overrides: object) -> HttpExchange:
    values: dict[str, object] = dict(
        call_sid=SID, at=AT, kind="twiml", method="POST", url="http://127.0.0.1:9/voice",
        params=[("CallSid", SID), ("AccountSid", "AC" + "2" * 32), ("StatusCallbackEvent", "initiated"),
                ("StatusCallbackEvent", "ringing"), ("SipResponseCode", "200")],
        status=200, content_type="text/xml", body="<Response><Hangup/></Response>", duration_ms=12)
    values.update(overrides)
    return HttpExchange(**values)  # type: ignore[arg-type]


def test_parameter_names_are_twilio_snake_case() -> None:
    assert [snake_case(n) for n in ("CallSid", "AccountSid", "SipResponseCode", "AddOns", "CallSID", "To",
                                    "ForwardedFrom", "Caller-Id")] == [
        "call_sid", "account_sid", "sip_response_code", "add_ons", "call_sid", "to", "forwarded_from", "caller_id"]


def test_a_repeated_parameter_keeps_every_value_in_order() -> None:
    assert parameters([("A", "1"), ("B", "x"), ("A", "2")]) == {"a": "1,2", "b": "x"}


def test_an_event_renders_as_twilios_request_and_response() -> None:
    assert event_to_json(_exchange()) == {
        "request": {
            "url": "http://127.0.0.1:9/voice",
            "method": "POST",
            "parameters": {"call_sid": SID, "account_sid": "AC" + "2" * 32,
                           "status_callback_event": "initiated,ringing", "sip_response_code": "200"},
        },
        "response": {
            "date_created": "Sun, 06 Dec 2026 03:04:05 +0000",
            "request_duration": 12,
            "response_code": 200,
            "content_type": "text/xml",
            "response_body": "<Response><Hangup/></Response>",
        },
    }


def test_a_request_without_a_response_has_a_null_code() -> None:
    rendered = event_to_json(_exchange(status=None, content_type=None, body="", error="ClientConnectorError: x"))
    assert rendered["response"]["response_code"] is None
    assert rendered["response"]["content_type"] is None


def test_the_store_keeps_requests_per_call_in_order_with_the_body_cut(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    requests = CallRequests(store)
    other = "CA" + "3" * 32
    requests.record(_exchange(url="http://a/1"))
    requests.record(_exchange(call_sid=other, url="http://a/other"))
    requests.record(_exchange(kind="webhook", url="http://a/2", status=500, body="x" * 5000, error="HTTP 500"))
    got = requests.for_call(SID)
    assert [(e.kind, e.url, e.status, e.error) for e in got] == [
        ("twiml", "http://a/1", 200, None), ("webhook", "http://a/2", 500, "HTTP 500")]
    assert len(got[1].body) == BODY_EXCERPT
    assert got[0].params == _exchange().params and got[0].at == AT
    requests.add_sip(SipLine(SID, "in0-1", AT, "received", "127.0.0.1:5090", first_line(INVITE), INVITE))
    store.delete_call(SID)  # a deleted call's requests and SIP ladder go with it
    assert requests.for_call(SID) == [] and requests.sip_ladder(SID) == [] and len(requests.for_call(other)) == 1
    store.close()


def test_the_sip_ladder_keeps_a_legs_messages_after_its_end(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    requests = CallRequests(store)
    live = {"in0-1": SID}
    passed: list[Event] = []
    on_event = SipLadder(requests, live.get).wrap(lambda _w, e: passed.append(e))
    ended = Ended(leg="in0-1", code=200, reason="OK", answered=True, t=1.0)
    on_event(0, SipMessage(leg="in0-1", direction="received", peer="127.0.0.1:5090", text=INVITE, t=1.0))
    on_event(0, ended)
    del live["in0-1"]  # the call manager forgot the leg: its last messages still find the call
    on_event(0, SipMessage(leg="in0-1", direction="sent", peer="127.0.0.1:5090", text="SIP/2.0 200 OK\r\n\r\n",
                           t=2.0))
    on_event(0, SipMessage(leg="in0-9", direction="sent", peer="", text="SIP/2.0 200 OK\r\n\r\n", t=2.0))
    assert passed == [ended]
    ladder = requests.sip_ladder(SID)
    assert [(m.direction, m.first_line) for m in ladder] == [
        ("received", "INVITE sip:+15550100@127.0.0.1:5080 SIP/2.0"), ("sent", "SIP/2.0 200 OK")]
    assert sip_to_json(ladder[0]) == {
        "date_created": "1970-01-01T00:00:01.000+00:00", "leg": "in0-1", "direction": "received",
        "peer": "127.0.0.1:5090", "first_line": "INVITE sip:+15550100@127.0.0.1:5080 SIP/2.0", "message": INVITE}
    store.close()


def test_first_line() -> None:
    assert first_line(INVITE) == "INVITE sip:+15550100@127.0.0.1:5080 SIP/2.0"
    assert first_line("SIP/2.0 180 Ringing\n") == "SIP/2.0 180 Ringing"


def test_the_worker_reads_pjsuas_message_log_lines() -> None:
    from switch.worker.siptrace import call_id, parse_message

    rx = (f"03:52:16.595 pjsua_core.c  .RX {len(INVITE)} bytes Request msg INVITE/cseq=1 (rdata0x7f12) from UDP "
          f"127.0.0.1:5090:\n{INVITE}\n--end msg--\n")
    assert parse_message(rx) == ("received", "127.0.0.1:5090", INVITE)
    ok = "SIP/2.0 200 OK\r\ni: abc@127.0.0.1\r\nContent-Length: 0\r\n\r\n"
    tx = (f"03:52:16.601 pjsua_core.c  .TX 61 bytes Response msg 200/INVITE/cseq=1 (tdta0x55) to UDP [::1]:5090:\n"
          f"{ok}\n--end msg--")
    assert parse_message(tx) == ("sent", "[::1]:5090", ok)
    assert parse_message("03:52:16.601 pjsua_call.c  .Call 0 state changed to CONFIRMED") is None
    assert parse_message("RX 10 bytes Request msg INVITE from UDP 127.0.0.1:5090:\nINVITE") is None  # truncated
    assert call_id(INVITE) == "abc@127.0.0.1" and call_id(ok) == "abc@127.0.0.1"
    assert call_id("OPTIONS sip:x SIP/2.0\r\n\r\n") is None


def test_the_worker_holds_a_call_ids_messages_until_its_leg_is_named() -> None:
    from switch.worker.siptrace import MAX_PENDING, SipTracer

    sent: list[Event] = []
    tracer = SipTracer(sent.append, log_level=1)
    tracer.log_line(4, f"RX 1 bytes Request msg INVITE from UDP 127.0.0.1:5090:\n{INVITE}\n--end msg--")
    tracer.log_line(4, "TX 1 bytes Response msg 100/INVITE to UDP 127.0.0.1:5090:\n"
                       "SIP/2.0 100 Trying\r\nCall-ID: abc@127.0.0.1\r\n\r\n\n--end msg--")
    assert sent == []
    tracer.bind("abc@127.0.0.1", "in0-1")
    tracer.log_line(4, "TX 1 bytes Response msg 180/INVITE to UDP 127.0.0.1:5090:\n"
                       "SIP/2.0 180 Ringing\r\nCall-ID: abc@127.0.0.1\r\n\r\n\n--end msg--")
    assert [(e.leg, e.direction, first_line(e.text)) for e in sent if isinstance(e, SipMessage)] == [
        ("in0-1", "received", "INVITE sip:+15550100@127.0.0.1:5080 SIP/2.0"),
        ("in0-1", "sent", "SIP/2.0 100 Trying"), ("in0-1", "sent", "SIP/2.0 180 Ringing")]
    for n in range(MAX_PENDING + 5):  # Call-IDs no leg ever takes (OPTIONS pings) are forgotten
        tracer.log_line(4, f"RX 1 bytes Request msg OPTIONS from UDP 127.0.0.1:5090:\n"
                           f"OPTIONS sip:x SIP/2.0\r\nCall-ID: ping{n}\r\n\r\n\n--end msg--")
    assert len(tracer.pending) == MAX_PENDING
