"""IncomingPhoneNumbers and call Notifications end to end: a real `softswitch serve`, the official `twilio`
client, and sipp calling in over SIP.

Numbers are created, changed and deleted through the REST API and each change is checked by a real INVITE
(answered, then the number's StatusCallback; or a 404 once the number is gone).  Config `[[numbers]]` and
persistence across restarts are checked on the API; notifications are written into the running switch's
store by a second `Notifications` (as the TwiML interpreter does) and by a failing voice URL on a real call.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twilio.base.exceptions import TwilioRestException

from switch.core.notifications import WARNING, Notifications
from switch.core.store import Store
from tests.peers.harness import ACCOUNT_SID, AUTH_TOKEN, SwitchProcess, WebhookSink, wait_until
from tests.peers.sipp_peer import SippPeer

CONFIG_NUMBER = "+15550170"
PAUSE = '<?xml version="1.0" encoding="UTF-8"?><Response><Pause length="10"/></Response>'
RFC2822 = re.compile(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000")
SID = re.compile(r"PN[0-9a-f]{32}")
NUMBER_FIELDS = {
    "sid", "account_sid", "friendly_name", "phone_number", "voice_url", "voice_method", "voice_fallback_url",
    "voice_fallback_method", "voice_caller_id_lookup", "status_callback", "status_callback_method",
    "date_created", "date_updated", "capabilities", "api_version", "uri", "origin", "status", "beta",
}  # fmt: skip
NOTIFICATION_FIELDS = {
    "sid", "account_sid", "call_sid", "api_version", "date_created", "error_code", "log", "message_date",
    "message_text", "more_info", "request_method", "request_url", "uri",
}  # fmt: skip


@pytest.fixture(scope="module")
def sink() -> Iterator[WebhookSink]:
    hooks = WebhookSink().start()
    hooks.responses["/pause"] = lambda _h: (200, PAUSE, "text/xml")
    hooks.responses["/broken"] = lambda _h: (500, "oops", "text/plain")
    yield hooks
    hooks.stop()


@pytest.fixture(scope="module")
def switch(tmp_path_factory: pytest.TempPathFactory, sink: WebhookSink) -> Iterator[SwitchProcess]:
    proc = SwitchProcess(tmp_path_factory.mktemp("numbers"), workers=1,
                         numbers=[{"number": CONFIG_NUMBER, "voice_url": sink.url("/pause"),
                                   "status_callback": sink.url("/config-status")}])
    proc.start()
    yield proc
    code = proc.stop()
    assert code == 0, f"switch exited with {code}:\n{proc.log()}"


def _get(switch: SwitchProcess, path: str, auth: tuple[str, str] = (ACCOUNT_SID, AUTH_TOKEN)) -> tuple[int, Any]:
    """GET `path` (absolute, or relative to the account) with HTTP Basic; (status, JSON body)."""
    if not path.startswith("/"):
        path = f"/2010-04-01/Accounts/{ACCOUNT_SID}/{path}"
    request = urllib.request.Request(switch.base_url + path)
    token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _call_in(switch: SwitchProcess, service: str) -> SippPeer:
    """sipp dials `service` at the switch, stays 0.5 s after the 200 and hangs up."""
    caller = SippPeer("uac_inbound.xml", remote=switch.sip_uri_host, service=service, timeout=20,
                      variables={"pause_ms": 500})
    with caller:
        assert caller.wait_sync(15) == 0, caller.describe() + "\n" + switch.log()[-3000:]
    assert 200 in caller.codes_received()
    assert caller.methods_sent() == ["INVITE", "ACK", "BYE"]
    return caller


def _completed(sink: WebhookSink, path: str, seen: int = 0) -> dict[str, str]:
    """The first `completed` callback at `path` after the `seen` that had arrived before."""
    sink.wait_for(lambda hs: len([h for h in hs if h.path == path]) > seen)
    hook = sink.for_path(path)[seen]
    assert hook.params["CallStatus"] == "completed"
    assert WebhookSink.valid(hook)
    return hook.params


def _rest_error(call: Any) -> TwilioRestException:
    with pytest.raises(TwilioRestException) as info:
        call()
    return info.value


# -- the number lifecycle, checked over SIP ------------------------------------------------------------------
def test_create_call_update_call_delete_404(switch: SwitchProcess, sink: WebhookSink) -> None:
    client = switch.client()
    number = client.incoming_phone_numbers.create(phone_number="+15557001", voice_url=sink.url("/pause"),
                                                  status_callback=sink.url("/a-status"))
    assert SID.fullmatch(number.sid)
    assert number.phone_number == "+15557001"
    assert number.voice_url == sink.url("/pause")
    assert number.voice_method == "POST"
    assert number.friendly_name == "+15557001"  # not a North American number: shown as is

    _call_in(switch, "+15557001")
    first = _completed(sink, "/a-status")
    assert first["Direction"] == "inbound"
    assert first["To"] == "+15557001"
    voice = [h for h in sink.for_path("/pause") if h.params.get("CallSid") == first["CallSid"]]
    assert voice and voice[0].params["To"] == "+15557001"

    updated = client.incoming_phone_numbers(number.sid).update(status_callback=sink.url("/b-status"),
                                                               status_callback_method="GET")
    assert updated.status_callback == sink.url("/b-status")
    assert updated.status_callback_method == "GET"
    assert updated.voice_url == sink.url("/pause")  # untouched
    assert updated.date_updated >= number.date_updated
    _call_in(switch, "15557001")  # dialed without the '+': the same number
    second = sink.wait_for(lambda hs: any(h.path == "/b-status" for h in hs))
    hook = next(h for h in second if h.path == "/b-status")
    assert hook.method == "GET"
    assert hook.params["CallStatus"] == "completed"
    assert hook.params["To"] == "+15557001"
    assert hook.params["CallSid"] != first["CallSid"]
    assert len(sink.for_path("/a-status")) == 1  # the old callback heard nothing more

    assert client.incoming_phone_numbers(number.sid).delete() is True
    with SippPeer("uac_inbound_404.xml", remote=switch.sip_uri_host, service="+15557001", timeout=20) as caller:
        assert caller.wait_sync(15) == 0, caller.describe()
    assert caller.codes_received()[-1] == 404
    err = _rest_error(client.incoming_phone_numbers(number.sid).fetch)
    assert (err.status, err.code) == (404, 20404)


def test_sip_user_number(switch: SwitchProcess, sink: WebhookSink) -> None:
    number = switch.client().incoming_phone_numbers.create(phone_number="alice", friendly_name="Alice's desk",
                                                           status_callback=sink.url("/alice-status"))
    assert number.friendly_name == "Alice's desk"
    _call_in(switch, "alice")  # no voice URL: answered and held until the caller hangs up
    params = _completed(sink, "/alice-status")
    assert params["To"] == "alice"
    assert params["Direction"] == "inbound"
    with SippPeer("uac_inbound_404.xml", remote=switch.sip_uri_host, service="Alice", timeout=20) as caller:
        assert caller.wait_sync(15) == 0, caller.describe()  # SIP user parts are case-sensitive
    assert caller.codes_received()[-1] == 404


def test_config_number_is_listed_and_answers(switch: SwitchProcess, sink: WebhookSink) -> None:
    numbers = switch.client().incoming_phone_numbers.list(phone_number=CONFIG_NUMBER)
    assert [n.phone_number for n in numbers] == [CONFIG_NUMBER]
    assert numbers[0].voice_url == sink.url("/pause")
    assert numbers[0].status_callback == sink.url("/config-status")
    status, body = _get(switch, f"IncomingPhoneNumbers/{numbers[0].sid}.json")
    assert status == 200
    assert set(body) >= NUMBER_FIELDS
    assert body["capabilities"] == {"voice": True, "sms": False, "mms": False, "fax": False}
    assert body["voice_caller_id_lookup"] is False
    assert (body["origin"], body["status"], body["api_version"]) == ("softswitch", "in-use", "2010-04-01")
    assert body["account_sid"] == ACCOUNT_SID
    assert body["uri"] == f"/2010-04-01/Accounts/{ACCOUNT_SID}/IncomingPhoneNumbers/{numbers[0].sid}.json"
    assert RFC2822.fullmatch(body["date_created"]) and RFC2822.fullmatch(body["date_updated"])
    _call_in(switch, CONFIG_NUMBER)
    assert _completed(sink, "/config-status")["To"] == CONFIG_NUMBER


# -- the REST surface ---------------------------------------------------------------------------------------
def test_list_filters_and_paging(switch: SwitchProcess) -> None:
    client = switch.client()
    made = [client.incoming_phone_numbers.create(phone_number=f"+1415555{i:04d}", friendly_name="pager")
            for i in range(5)]
    assert made[0].friendly_name == "pager"
    listed = client.incoming_phone_numbers.list(friendly_name="pager", page_size=2)
    assert [n.sid for n in listed] == [n.sid for n in made]  # oldest first, over three pages
    assert [n.sid for n in client.incoming_phone_numbers.list(phone_number="4155550003")] == [made[3].sid]
    assert len(client.incoming_phone_numbers.list(phone_number="+1415555000*")) == 5
    assert client.incoming_phone_numbers.list(origin="twilio") == []

    status, page = _get(switch, "IncomingPhoneNumbers.json?FriendlyName=pager&PageSize=2")
    assert status == 200
    assert [n["sid"] for n in page["incoming_phone_numbers"]] == [n.sid for n in made[:2]]
    assert (page["page"], page["page_size"], page["start"], page["end"]) == (0, 2, 0, 1)
    assert page["previous_page_uri"] is None
    # The cursor of the next page: the last number's SID and creation time (PA<sid>-<µs>).
    assert "FriendlyName=pager" in page["next_page_uri"] and f"PageToken=PA{made[1].sid}-" in page["next_page_uri"]
    status, middle = _get(switch, page["next_page_uri"])
    assert [n["sid"] for n in middle["incoming_phone_numbers"]] == [n.sid for n in made[2:4]]
    assert f"PageToken=PB{made[2].sid}-" in middle["previous_page_uri"]
    status, last = _get(switch, middle["next_page_uri"])
    assert [n["sid"] for n in last["incoming_phone_numbers"]] == [made[4].sid]
    assert last["next_page_uri"] is None
    assert (last["start"], last["end"]) == (4, 4)

    nanp = client.incoming_phone_numbers.create(phone_number="+14155551234")
    assert nanp.friendly_name == "(415) 555-1234"  # Twilio's default name for a North American number
    for number in [*made, nanp]:
        client.incoming_phone_numbers(number.sid).delete()
    assert client.incoming_phone_numbers.list(friendly_name="pager") == []


def test_update_clears_and_keeps(switch: SwitchProcess, sink: WebhookSink) -> None:
    client = switch.client()
    number = client.incoming_phone_numbers.create(
        phone_number="+15557002", voice_url=sink.url("/pause"), voice_fallback_url=sink.url("/fallback"),
        voice_fallback_method="GET", status_callback=sink.url("/s"))
    assert (number.voice_fallback_url, number.voice_fallback_method) == (sink.url("/fallback"), "GET")
    updated = client.incoming_phone_numbers(number.sid).update(voice_fallback_url="", friendly_name="renamed",
                                                               voice_method="get")
    assert updated.voice_fallback_url is None
    assert updated.voice_fallback_method == "GET"
    assert updated.voice_method == "GET"
    assert updated.friendly_name == "renamed"
    assert updated.status_callback == sink.url("/s")
    assert client.incoming_phone_numbers(number.sid).fetch().friendly_name == "renamed"
    client.incoming_phone_numbers(number.sid).delete()


def test_bad_input(switch: SwitchProcess, sink: WebhookSink) -> None:
    numbers = switch.client().incoming_phone_numbers
    cases: list[tuple[dict[str, str], int]] = [
        ({"voice_url": sink.url("/pause")}, 21421),  # no PhoneNumber
        ({"phone_number": "12 34"}, 21421),
        ({"phone_number": "sip:bob@example.com"}, 21421),  # the user part only
        ({"phone_number": "+15557003", "voice_url": "ftp://example.com/x"}, 21205),
        ({"phone_number": "+15557003", "status_callback": "not a url"}, 21205),
        ({"phone_number": "+15557003", "voice_method": "PUT"}, 21209),
        ({"phone_number": "+15557003", "friendly_name": "x" * 65}, 20001),
        ({"phone_number": CONFIG_NUMBER}, 21422),  # the config's number
        ({"phone_number": CONFIG_NUMBER.removeprefix("+")}, 21422),  # the same number without '+'
    ]
    for kwargs, code in cases:
        err = _rest_error(lambda kw=kwargs: numbers.create(**kw))
        assert (err.status, err.code) == (400, code), (kwargs, err.msg)
    assert numbers.list(phone_number="+15557003") == []

    unknown = "PN" + "0" * 32
    for call in (numbers(unknown).fetch, numbers(unknown).delete, lambda: numbers(unknown).update(voice_url="")):
        err = _rest_error(call)
        assert (err.status, err.code) == (404, 20404)
    config_sid = numbers.list(phone_number=CONFIG_NUMBER)[0].sid
    err = _rest_error(lambda: numbers(config_sid).update(voice_url="gopher://x"))
    assert (err.status, err.code) == (400, 21205)

    status, body = _get(switch, "IncomingPhoneNumbers.json", auth=(ACCOUNT_SID, "wrong"))
    assert (status, body["code"]) == (401, 20003)
    status, body = _get(switch, f"/2010-04-01/Accounts/AC{'1' * 32}/IncomingPhoneNumbers.json")
    assert (status, body["code"]) == (404, 20404)


# -- notifications -----------------------------------------------------------------------------------------
def test_notifications_listed_and_paged(switch: SwitchProcess, sink: WebhookSink) -> None:
    _call_in(switch, CONFIG_NUMBER)
    call_sid = switch.client().calls.list(to=CONFIG_NUMBER, limit=1)[0].sid
    status, body = _get(switch, f"Calls/{call_sid}/Notifications.json")
    assert (status, body["notifications"]) == (200, [])

    # A second Notifications on the switch's database, as the interpreter in the switch writes them.
    store = Store(switch.workdir / "data" / "softswitch.db")
    try:
        notes = Notifications(store, ACCOUNT_SID)
        first = notes.add(call_sid, 11200, "HTTP retrieval failure", "http://app.example.com/voice", "POST")
        second = notes.add(call_sid, 12200, "Schema validation warning", level=WARNING)
        third = notes.add(call_sid, 13520, "Say: invalid text")
    finally:
        store.close()

    status, page = _get(switch, f"Calls/{call_sid}/Notifications.json?PageSize=2")
    assert status == 200
    assert [n["sid"] for n in page["notifications"]] == [first.sid, second.sid]
    assert f"PageToken=PA{second.sid}-" in page["next_page_uri"]
    assert (page["start"], page["end"], page["page_size"]) == (0, 1, 2)
    record = page["notifications"][0]
    assert set(record) >= NOTIFICATION_FIELDS
    assert (record["error_code"], record["log"], record["call_sid"]) == ("11200", "0", call_sid)
    assert record["more_info"] == "https://www.twilio.com/docs/errors/11200"
    assert (record["request_url"], record["request_method"]) == ("http://app.example.com/voice", "POST")
    assert RFC2822.fullmatch(record["message_date"])
    assert record["uri"] == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{call_sid}/Notifications/{first.sid}.json"
    assert page["notifications"][1]["log"] == "1"
    status, rest = _get(switch, page["next_page_uri"])
    assert [n["sid"] for n in rest["notifications"]] == [third.sid]
    assert rest["next_page_uri"] is None

    status, warnings = _get(switch, f"Calls/{call_sid}/Notifications.json?Log=1")
    assert [n["sid"] for n in warnings["notifications"]] == [second.sid]
    status, body = _get(switch, f"Calls/{call_sid}/Notifications.json?Log=7")
    assert (status, body["code"]) == (400, 20001)

    # The official client has the subresource (twilio 9.x): list with paging, filter, fetch.
    client_notes = switch.client().calls(call_sid).notifications
    assert [n.sid for n in client_notes.list(page_size=2)] == [first.sid, second.sid, third.sid]
    assert [n.sid for n in client_notes.list(log=0)] == [first.sid, third.sid]
    today = first.date_created.date()
    assert len(client_notes.list(message_date=today)) == 3
    assert client_notes.list(message_date_before=today - dt.timedelta(days=1)) == []
    assert len(client_notes.list(message_date_after=today)) == 3
    fetched = client_notes(second.sid).fetch()
    assert (fetched.error_code, fetched.log, fetched.message_text) == ("12200", "1", "Schema validation warning")

    status, body = _get(switch, f"Calls/{call_sid}/Notifications/NO{'0' * 32}.json")
    assert (status, body["code"]) == (404, 20404)
    status, body = _get(switch, f"Calls/CA{'0' * 32}/Notifications.json")
    assert (status, body["code"]) == (404, 20404)


def test_failing_voice_url_leaves_a_notification(switch: SwitchProcess, sink: WebhookSink) -> None:
    number = switch.client().incoming_phone_numbers.create(
        phone_number="+15557004", voice_url=sink.url("/broken"), voice_fallback_url=sink.url("/pause"),
        status_callback=sink.url("/broken-status"))
    _call_in(switch, "+15557004")  # the fallback's <Pause> answers it
    call_sid = _completed(sink, "/broken-status")["CallSid"]
    notes = switch.client().calls(call_sid).notifications
    wait_until(lambda: len(notes.list()) > 0, what="a notification for the failed voice URL")
    note = notes.list()[0]
    assert note.error_code == "11200"
    assert note.request_url == sink.url("/broken")
    switch.client().incoming_phone_numbers(number.sid).delete()


# -- persistence -------------------------------------------------------------------------------------------
def test_numbers_survive_a_restart_and_config_wins(tmp_path: Path, sink: WebhookSink) -> None:
    proc = SwitchProcess(tmp_path, workers=1, numbers=[
        {"number": "+15557100", "voice_url": sink.url("/pause")},
        {"number": "+15557101"},
    ])
    proc.start()
    try:
        client = proc.client()
        kept = client.incoming_phone_numbers.create(phone_number="+15557102", friendly_name="from the API",
                                                    status_callback=sink.url("/restart-status"))
        configured = {n.phone_number: n for n in client.incoming_phone_numbers.list()}
        assert set(configured) == {"+15557100", "+15557101", "+15557102"}
        client.incoming_phone_numbers(configured["+15557100"].sid).update(voice_url=sink.url("/changed"))
        assert proc.stop() == 0

        proc.numbers = [{"number": "+15557100", "voice_url": sink.url("/pause")}]  # +15557101 left the config
        proc.start()
        after = {n.phone_number: n for n in client.incoming_phone_numbers.list()}
        assert set(after) == {"+15557100", "+15557102"}
        assert after["+15557100"].sid == configured["+15557100"].sid  # same number, same SID
        assert after["+15557100"].voice_url == sink.url("/pause")  # the config set it back
        assert after["+15557102"].sid == kept.sid
        assert after["+15557102"].friendly_name == "from the API"
        assert after["+15557102"].date_created == kept.date_created

        _call_in(proc, "+15557102")
        assert _completed(sink, "/restart-status")["To"] == "+15557102"
        with SippPeer("uac_inbound_404.xml", remote=proc.sip_uri_host, service="+15557101", timeout=20) as caller:
            assert caller.wait_sync(15) == 0, caller.describe()
        assert caller.codes_received()[-1] == 404
    finally:
        code = proc.stop()
    assert code == 0, proc.log()
