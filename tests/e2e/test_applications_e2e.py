"""Applications, numbers routed to them, typed IncomingPhoneNumbers, the Account and account Notifications,
end to end: a real `softswitch serve`, the official `twilio` client, and sipp calling in over SIP.

Routing is checked by real INVITEs: which voice URL (and method) the switch fetched and which status callback
heard the call, for a number with its own URLs, the same number handed to an application, the application
changed, and the application deleted.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from twilio.base.exceptions import TwilioRestException

from tests.peers.harness import ACCOUNT_SID, AUTH_TOKEN, Hook, SwitchProcess, WebhookSink
from tests.peers.sipp_peer import SippPeer

PAUSE = '<?xml version="1.0" encoding="UTF-8"?><Response><Pause length="10"/></Response>'
APP_FIELDS = {
    "sid", "account_sid", "api_version", "friendly_name", "date_created", "date_updated", "voice_url",
    "voice_method", "voice_fallback_url", "voice_fallback_method", "voice_caller_id_lookup", "status_callback",
    "status_callback_method", "sms_url", "sms_method", "sms_fallback_url", "sms_fallback_method",
    "sms_status_callback", "message_status_callback", "public_application_connect_enabled", "uri",
}  # fmt: skip


@pytest.fixture(scope="module")
def sink() -> Iterator[WebhookSink]:
    hooks = WebhookSink().start()
    for path in ("/num-voice", "/app-voice", "/app2-voice"):
        hooks.responses[path] = lambda _h: (200, PAUSE, "text/xml")
    hooks.responses["/broken"] = lambda _h: (500, "oops", "text/plain")
    yield hooks
    hooks.stop()


@pytest.fixture(scope="module")
def switch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwitchProcess]:
    proc = SwitchProcess(tmp_path_factory.mktemp("applications"), workers=1)
    proc.start()
    yield proc
    code = proc.stop()
    assert code == 0, f"switch exited with {code}:\n{proc.log()}"


def _rest_error(call: Any) -> TwilioRestException:
    with pytest.raises(TwilioRestException) as info:
        call()
    return info.value


def _call_in(switch: SwitchProcess, sink: WebhookSink, service: str, status_path: str) -> list[Hook]:
    """sipp dials `service`, stays 0.5 s after the 200 and hangs up; every webhook about that call, in order,
    once its `completed` callback reached `status_path`."""
    before = {id(h) for h in sink.hooks}
    caller = SippPeer("uac_inbound.xml", remote=switch.sip_uri_host, service=service, timeout=20,
                      variables={"pause_ms": 500})
    with caller:
        assert caller.wait_sync(15) == 0, caller.describe() + "\n" + switch.log()[-3000:]
    assert caller.methods_sent() == ["INVITE", "ACK", "BYE"]
    sink.wait_for(lambda hs: any(id(h) not in before and h.path == status_path for h in hs))
    new = [h for h in sink.hooks if id(h) not in before]
    call_sids = {h.params["CallSid"] for h in new}
    assert len(call_sids) == 1, [(h.path, h.params.get("CallSid")) for h in new]
    return new


def test_application_crud_and_paging(switch: SwitchProcess, sink: WebhookSink) -> None:
    client = switch.client()
    app = client.applications.create(friendly_name="desk", voice_url=sink.url("/app-voice"),
                                     voice_method="get", status_callback=sink.url("/app-status"))
    assert app.sid.startswith("AP") and len(app.sid) == 34
    assert (app.friendly_name, app.voice_url, app.voice_method) == ("desk", sink.url("/app-voice"), "GET")
    assert (app.voice_fallback_url, app.voice_fallback_method) == (None, "POST")
    assert (app.status_callback, app.status_callback_method) == (sink.url("/app-status"), "POST")
    assert app.account_sid == ACCOUNT_SID and app.api_version == "2010-04-01"
    assert app.uri == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Applications/{app.sid}.json"
    raw = requests.get(switch.base_url + app.uri, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5).json()
    assert set(raw) == APP_FIELDS  # every field of Twilio's resource, and no other

    other = client.applications.create(friendly_name="desk", voice_url=sink.url("/app2-voice"))
    third = client.applications.create(friendly_name="other")
    assert [a.sid for a in client.applications.list(friendly_name="desk", page_size=1)] == [app.sid, other.sid]
    assert [a.sid for a in client.applications.list()] == [app.sid, other.sid, third.sid]  # oldest first

    fetched = client.applications(app.sid).fetch()
    assert (fetched.sid, fetched.voice_url, fetched.date_created) == (app.sid, app.voice_url, app.date_created)
    updated = client.applications(app.sid).update(voice_fallback_url=sink.url("/fallback"), friendly_name="front")
    assert (updated.friendly_name, updated.voice_fallback_url) == ("front", sink.url("/fallback"))
    assert updated.voice_url == sink.url("/app-voice")  # untouched
    cleared = client.applications(app.sid).update(voice_fallback_url="")
    assert cleared.voice_fallback_url is None
    assert client.applications(app.sid).fetch().friendly_name == "front"  # persisted

    for bad, code in [({"voice_url": "ftp://x"}, 21205), ({"voice_method": "PUT"}, 21209),
                      ({"friendly_name": "x" * 65}, 20001)]:
        err = _rest_error(lambda kw=bad: client.applications.create(**kw))
        assert (err.status, err.code) == (400, code), bad
    for sid in (other.sid, third.sid, app.sid):
        assert client.applications(sid).delete() is True
    err = _rest_error(client.applications(app.sid).fetch)
    assert (err.status, err.code) == (404, 20404)
    assert client.applications.list() == []


def test_a_number_answers_with_its_application(switch: SwitchProcess, sink: WebhookSink) -> None:
    client = switch.client()
    app = client.applications.create(friendly_name="ivr", voice_url=sink.url("/app-voice"), voice_method="GET",
                                     status_callback=sink.url("/app-status"))
    number = client.incoming_phone_numbers.create(phone_number="+15557101", voice_url=sink.url("/num-voice"),
                                                  status_callback=sink.url("/num-status"),
                                                  voice_application_sid=app.sid)
    assert number.voice_application_sid == app.sid
    assert number.voice_url == sink.url("/num-voice")  # kept, but the application's wins

    hooks = _call_in(switch, sink, "+15557101", "/app-status")
    # The whole sequence: the application's voice URL by its method, then its status callback, nothing else.
    assert [(h.path, h.method) for h in hooks] == [("/app-voice", "GET"), ("/app-status", "POST")]
    assert hooks[0].params["To"] == "+15557101" and hooks[0].params["CallStatus"] == "ringing"
    assert hooks[1].params["CallStatus"] == "completed" and hooks[1].params["Direction"] == "inbound"
    assert all(WebhookSink.valid(h, AUTH_TOKEN) for h in hooks)
    call = client.calls(hooks[0].params["CallSid"]).fetch()
    assert call.phone_number_sid == number.sid

    # The application changes: the number's next call follows it.
    client.applications(app.sid).update(voice_url=sink.url("/app2-voice"), voice_method="POST",
                                        status_callback_method="GET")
    hooks = _call_in(switch, sink, "15557101", "/app-status")
    assert [(h.path, h.method) for h in hooks] == [("/app2-voice", "POST"), ("/app-status", "GET")]

    # The number leaves the application (empty VoiceApplicationSid): its own URLs again.
    assert client.incoming_phone_numbers(number.sid).update(voice_application_sid="").voice_application_sid is None
    hooks = _call_in(switch, sink, "+15557101", "/num-status")
    assert [(h.path, h.method) for h in hooks] == [("/num-voice", "POST"), ("/num-status", "POST")]

    # Back on the application, which is then deleted: the number is detached from it.
    client.incoming_phone_numbers(number.sid).update(voice_application_sid=app.sid)
    assert client.incoming_phone_numbers(number.sid).fetch().voice_application_sid == app.sid
    client.applications(app.sid).delete()
    assert client.incoming_phone_numbers(number.sid).fetch().voice_application_sid is None
    hooks = _call_in(switch, sink, "+15557101", "/num-status")
    assert [h.path for h in hooks] == ["/num-voice", "/num-status"]

    err = _rest_error(lambda: client.incoming_phone_numbers.create(phone_number="+15557102",
                                                                   voice_application_sid="AP" + "0" * 32))
    assert (err.status, err.code) == (400, 21420)
    err = _rest_error(lambda: client.incoming_phone_numbers(number.sid).update(voice_application_sid=app.sid))
    assert (err.status, err.code) == (400, 22108)
    client.incoming_phone_numbers(number.sid).delete()


def test_typed_number_lists(switch: SwitchProcess, sink: WebhookSink) -> None:
    numbers = switch.client().incoming_phone_numbers
    local = numbers.local.create(phone_number="+15557201", voice_url=sink.url("/num-voice"))
    mobile = numbers.mobile.create(phone_number="+15557202")
    toll_free = numbers.toll_free.create(phone_number="+18005557203")
    plain = numbers.create(phone_number="+15557204")
    assert local.phone_number == "+15557201" and local.voice_url == sink.url("/num-voice")
    assert local.uri == f"/2010-04-01/Accounts/{ACCOUNT_SID}/IncomingPhoneNumbers/{local.sid}.json"
    assert [n.sid for n in numbers.local.list()] == [local.sid, plain.sid]  # created plainly: local
    assert [n.sid for n in numbers.mobile.list()] == [mobile.sid]
    assert [n.sid for n in numbers.toll_free.list()] == [toll_free.sid]
    assert [n.sid for n in numbers.local.list(phone_number="7204")] == [plain.sid]
    assert {n.sid for n in numbers.list()} >= {local.sid, mobile.sid, toll_free.sid, plain.sid}
    assert numbers(toll_free.sid).fetch().phone_number == "+18005557203"
    for bad in ("12 34", "sip:x@y", ""):
        err = _rest_error(lambda b=bad: numbers.local.create(phone_number=b))
        assert (err.status, err.code) == (400, 21421), bad
    err = _rest_error(lambda: numbers.toll_free.create(phone_number="+15557201"))
    assert (err.status, err.code) == (400, 21422)  # taken, whatever the type
    # A typed number answers calls like any other.
    hooks = _call_in(switch, sink, "+15557201", "/num-voice")
    assert [h.path for h in hooks] == ["/num-voice"]
    for number in (local, mobile, toll_free, plain):
        numbers(number.sid).delete()


def test_account_fetch_update_and_list(switch: SwitchProcess) -> None:
    client = switch.client()
    account = client.api.account.fetch()
    assert (account.sid, account.owner_account_sid, account.status, account.type) == (
        ACCOUNT_SID, ACCOUNT_SID, "active", "Full")
    assert account.auth_token == AUTH_TOKEN
    assert account.uri == f"/2010-04-01/Accounts/{ACCOUNT_SID}.json"
    assert account.subresource_uris["calls"] == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json"
    assert account.date_created <= dt.datetime.now(dt.UTC)

    renamed = client.api.account.update(friendly_name="lab switch")
    assert (renamed.friendly_name, renamed.status) == ("lab switch", "active")
    assert renamed.date_updated >= account.date_updated
    assert client.api.accounts(ACCOUNT_SID).fetch().friendly_name == "lab switch"
    assert client.api.account.update(status="active").status == "active"
    assert [a.sid for a in client.api.accounts.list()] == [ACCOUNT_SID]
    assert [a.sid for a in client.api.accounts.list(friendly_name="lab switch")] == [ACCOUNT_SID]
    assert client.api.accounts.list(friendly_name="nope") == []
    assert client.api.accounts.list(status="closed") == []

    for status, code in (("suspended", 20001), ("closed", 20001), ("bogus", 20001)):
        err = _rest_error(lambda s=status: client.api.account.update(status=s))
        assert (err.status, err.code) == (400, code), status
    err = _rest_error(lambda: client.api.account.update(friendly_name="x" * 65))
    assert (err.status, err.code) == (400, 20001)
    err = _rest_error(client.api.accounts("AC" + "2" * 32).fetch)
    assert (err.status, err.code) == (404, 20404)
    assert client.api.account.fetch().friendly_name == "lab switch"


def test_account_notifications(switch: SwitchProcess, sink: WebhookSink) -> None:
    client = switch.client()
    # The application's voice URL fails: its fallback answers (not the number's), and the failure is noted.
    app = client.applications.create(voice_url=sink.url("/broken"), voice_fallback_url=sink.url("/app-voice"),
                                     status_callback=sink.url("/broken-status"))
    number = client.incoming_phone_numbers.create(phone_number="+15557301", voice_url=sink.url("/num-voice"),
                                                  voice_fallback_url=sink.url("/num-voice"),
                                                  voice_application_sid=app.sid)
    hooks = _call_in(switch, sink, "+15557301", "/broken-status")
    assert [h.path for h in hooks] == ["/broken", "/app-voice", "/broken-status"]
    call_sid = hooks[0].params["CallSid"]

    notes = client.notifications.list()
    mine = [n for n in notes if n.call_sid == call_sid]
    assert mine, [(n.call_sid, n.error_code) for n in notes]
    note = mine[0]
    assert (note.log, note.error_code, note.request_url) == ("0", "11200", sink.url("/broken"))
    assert note.uri == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Notifications/{note.sid}.json"
    assert note.more_info == "https://www.twilio.com/docs/errors/11200"
    # The same notification as the call lists it, under the call's path.
    assert [n.sid for n in client.calls(call_sid).notifications.list()] == [n.sid for n in mine]

    fetched = client.notifications(note.sid).fetch()
    assert (fetched.sid, fetched.call_sid, fetched.message_text) == (note.sid, call_sid, note.message_text)
    assert note.sid in {n.sid for n in client.notifications.list(log=0)}
    assert note.sid not in {n.sid for n in client.notifications.list(log=1)}
    today = dt.datetime.now(dt.UTC).date()
    assert note.sid in {n.sid for n in client.notifications.list(message_date=today)}
    assert client.notifications.list(message_date_before=today - dt.timedelta(days=1)) == []
    assert [n.sid for n in client.notifications.list(page_size=1)] == [n.sid for n in notes]  # oldest first, paged
    err = _rest_error(client.notifications("NO" + "0" * 32).fetch)
    assert (err.status, err.code) == (404, 20404)
    client.incoming_phone_numbers(number.sid).delete()
    client.applications(app.sid).delete()
