"""Call Events and the SIP ladder end to end: a real `softswitch serve` with `sip_trace = true`, the official
`twilio` client, and a lab phone that rings, answers and is hung up on by TwiML.

The call's Events list every request the switch made, in the order they left: the status callbacks (one event
per attempt: a 500 and its retry), the first TwiML document, the `<Redirect>` it fetched, the last callback.
`SipTrace.json` lists the SIP messages of the call's leg: INVITE, 100, 180, 200, ACK, BYE, 200.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from twilio.twiml.voice_response import VoiceResponse

from tests.peers.harness import ACCOUNT_SID, AUTH_TOKEN, Hook, SwitchProcess, WebhookSink, wait_until
from tests.peers.phone import PhoneProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def switch(tmp_path_factory: pytest.TempPathFactory, sink: WebhookSink) -> Iterator[SwitchProcess]:
    proc = SwitchProcess(tmp_path_factory.mktemp("events"), workers=1, sip_trace=True).start()
    yield proc
    assert proc.stop() == 0, proc.log()


def _first_ringing_fails(sink: WebhookSink) -> None:
    seen: list[str] = []

    def respond(hook: Hook) -> tuple[int, str, str]:
        status = hook.params.get("CallStatus", "")
        seen.append(status)
        if status == "ringing" and seen.count("ringing") == 1:
            return 500, "try again", "text/plain"
        return 204, "", "text/plain"

    sink.responses["/ev-status"] = respond


def _ladder(switch: SwitchProcess, sid: str) -> list[dict[str, Any]]:
    """The call's SIP ladder (the switch's own resource: the official client has no method for it)."""
    request = urllib.request.Request(f"{switch.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{sid}/SipTrace.json")
    token = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=5) as resp:
        return list(json.loads(resp.read())["messages"])


def _step(first_line: str) -> str:
    """A SIP message as its method (a request) or status code (a response)."""
    parts = first_line.split(" ")
    return parts[1] if parts[0] == "SIP/2.0" else parts[0]


def test_a_calls_events_list_every_request_in_order_and_its_sip_ladder(switch: SwitchProcess,
                                                                       sink: WebhookSink) -> None:
    _first_ringing_fails(sink)
    first = VoiceResponse()
    first.pause(length=1)
    first.redirect(sink.url("/ev-next"))
    voice = sink.twiml("/ev-voice", str(first))
    last = VoiceResponse()
    last.hangup()
    sink.twiml("/ev-next", str(last))
    client = switch.client()
    with PhoneProcess(["--answer", "auto", "--answer-after", "1.5", "--exit-after-calls", "1"]) as phone:
        call = client.calls.create(to=phone.uri("bob"), from_="+15550001", url=voice,
                                   status_callback=sink.url("/ev-status"),
                                   status_callback_event=["initiated", "ringing", "completed"])
        sink.wait_for(lambda hooks: any(h.path == "/ev-status" and h.params.get("CallStatus") == "completed"
                                        and h.params.get("CallSid") == call.sid for h in hooks), timeout=20)
        phone.wait_for("hangup", timeout=10)
    assert call.sid is not None
    wait_until(lambda: len(client.calls(call.sid).events.list()) >= 6, 5, "the completed callback's event")
    events = client.calls(call.sid).events.list()
    got = [(e.request["method"], urllib.parse.urlsplit(e.request["url"]).path,  # type: ignore[index]
            e.request["parameters"].get("call_status"), e.response["response_code"])  # type: ignore[index, union-attr]
           for e in events]
    assert got == [
        ("POST", "/ev-status", "initiated", 204),
        ("POST", "/ev-status", "ringing", 500),
        ("POST", "/ev-status", "ringing", 204),  # the retry: one event per attempt
        ("POST", "/ev-voice", "in-progress", 200),
        ("POST", "/ev-next", "in-progress", 200),
        ("POST", "/ev-status", "completed", 204),
    ]
    fetch = events[3]
    assert fetch.request["parameters"]["call_sid"] == call.sid  # type: ignore[index]
    assert fetch.request["parameters"]["account_sid"] == ACCOUNT_SID  # type: ignore[index]
    assert fetch.response["content_type"].startswith("text/xml")  # type: ignore[index, union-attr]
    assert "<Redirect>" in fetch.response["response_body"]  # type: ignore[index]
    assert events[1].response["response_body"] == "try again"  # type: ignore[index]
    assert all(isinstance(e.response["request_duration"], int) for e in events)  # type: ignore[index]
    assert all(e.response["date_created"].endswith("+0000") for e in events)  # type: ignore[index, union-attr]

    ladder = _ladder(switch, call.sid)
    assert [(m["direction"], _step(m["first_line"])) for m in ladder] == [
        ("sent", "INVITE"), ("received", "100"), ("received", "180"), ("received", "200"), ("sent", "ACK"),
        ("sent", "BYE"), ("received", "200"),
    ]
    assert ladder[0]["message"].startswith("INVITE sip:bob@") and "Call-ID:" in ladder[0]["message"]
    assert {m["leg"] for m in ladder} == {ladder[0]["leg"]}
    assert all(m["peer"].endswith(f":{phone.port}") for m in ladder)
