"""Functional tests of the Twilio Calls API, driven by the official `twilio` client: creating a call, the Call
document and fetching it, updating and deleting calls.  Listing calls is in test_api_twilio_list.py, authentication
and routing in test_api_twilio_auth.py.

The aiohttp application runs on 127.0.0.1 in a background thread (the client is synchronous) over an
in-memory `FakeCallService` (twilio_api.py, fixtures in conftest.py), so these tests check HTTP compatibility,
not SIP.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from typing import Any

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from switch.core.model import CallbackEvent, new_sid
from switch.core.service import NewCall
from switch.core.status import CallStatus
from tests.functional.fake_service import FakeCallService
from tests.functional.twilio_api import (
    CALL_FIELDS,
    URL,
    Http,
    Server as Server,  # re-exported: other modules import it from here
    create,
    rest_error,
)

SUBRESOURCES = {
    "notifications": "Notifications", "recordings": "Recordings", "payments": "Payments", "events": "Events",
    "siprec": "Siprec", "streams": "Streams", "transcriptions": "Transcriptions",
    "user_defined_message_subscriptions": "UserDefinedMessageSubscriptions",
    "user_defined_messages": "UserDefinedMessages",
}  # fmt: skip
RFC2822 = re.compile(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000")
TWIML = "<Response><Say>Hello</Say></Response>"


def parse_date(value: str) -> dt.datetime:
    assert RFC2822.fullmatch(value), value
    return email.utils.parsedate_to_datetime(value)


# --- create ----------------------------------------------------------------------------------------------


def test_create_passes_every_parameter(client: Client, service: FakeCallService) -> None:
    call = client.calls.create(
        to="sip:alice@127.0.0.1:5070",
        from_="+15017122661",
        url=URL,
        method="get",
        fallback_url="https://app.example.com/fallback",
        fallback_method="GET",
        status_callback="https://app.example.com/status",
        status_callback_event=["initiated", "ringing", "answered", "completed"],
        status_callback_method="get",
        send_digits="1234#*wW",
        timeout=30,
        time_limit=600,
        sip_auth_username="alice",
        sip_auth_password="s3cret pass",
        caller_id="client:bob",
    )
    assert call.sid is not None and re.fullmatch(r"CA[0-9a-f]{32}", call.sid)
    assert call.status == "queued"
    assert call.direction == "outbound-api"
    assert call.to == "sip:alice@127.0.0.1:5070" and call._from == "+15017122661"
    assert service.created == [
        NewCall(
            to="sip:alice@127.0.0.1:5070",
            from_="+15017122661",
            url=URL,
            method="GET",
            fallback_url="https://app.example.com/fallback",
            fallback_method="GET",
            twiml=None,
            status_callback="https://app.example.com/status",
            status_callback_method="GET",
            status_callback_events=frozenset(CallbackEvent),
            timeout=30,
            time_limit=600,
            send_digits="1234#*wW",
            sip_auth_username="alice",
            sip_auth_password="s3cret pass",
            caller_id="client:bob",
        )
    ]


def test_create_defaults_and_twiml(client: Client, service: FakeCallService) -> None:
    create(client, to="client:alice", url=None, twiml=TWIML)
    assert service.created == [NewCall(to="client:alice", from_="+15017122661", twiml=TWIML)]


def test_create_url_wins_over_twiml(client: Client, service: FakeCallService) -> None:
    create(client, twiml=TWIML)
    assert service.created[0].url == URL and service.created[0].twiml is None


def test_create_answers_201_with_location(http: Http, service: FakeCallService) -> None:
    resp = http("POST", "/Calls.json", data={"To": "+14155551212", "From": "+15017122661", "Twiml": TWIML})
    assert resp.status_code == 201
    sid = resp.json()["sid"]
    assert (
        resp.headers["Location"]
        == f"https://pbx.example.com/2010-04-01/Accounts/{service.account_sid}/Calls/{sid}.json"
    )


def test_status_callback_event_repeated_or_space_separated(http: Http, service: FakeCallService) -> None:
    base = {"To": "+14155551212", "From": "+15017122661", "Url": URL}
    forms: list[list[tuple[str, str]]] = [
        [*base.items(), ("StatusCallbackEvent", "initiated ringing")],
        [*base.items(), ("StatusCallbackEvent", "Answered"), ("StatusCallbackEvent", "completed initiated")],
        list(base.items()),
    ]
    for form in forms:
        assert http("POST", "/Calls.json", data=form).status_code == 201
    assert [r.status_callback_events for r in service.created] == [
        {CallbackEvent.INITIATED, CallbackEvent.RINGING},
        {CallbackEvent.ANSWERED, CallbackEvent.COMPLETED, CallbackEvent.INITIATED},
        {CallbackEvent.COMPLETED},
    ]


def test_timeout_clamped_to_600(client: Client, service: FakeCallService) -> None:
    create(client, timeout=3600)
    assert service.created[0].timeout == 600


@pytest.mark.parametrize(
    ("kwargs", "code", "message"),
    [
        ({"to": ""}, 21201, "No 'To' number is specified"),
        ({"from_": ""}, 21213, "No 'From' number is specified"),
        ({"to": "alice"}, 21211, "Invalid 'To'"),
        ({"to": "+1 415 555"}, 21211, "Invalid 'To'"),
        ({"from_": "http://x"}, 21212, "Invalid 'From'"),
        ({"url": None}, 21205, "Url parameter is required"),
        ({"url": "/relative/voice"}, 21205, "Url must be an absolute"),
        ({"url": "ftp://example.com/voice"}, 21205, "Url must be an absolute"),
        ({"status_callback": "example.com/status"}, 21205, "StatusCallback must be an absolute"),
        ({"method": "PUT"}, 21209, "Method must be GET or POST"),
        ({"fallback_method": "DELETE"}, 21209, "FallbackMethod must be GET or POST"),
        ({"status_callback_method": "HEAD"}, 21209, "StatusCallbackMethod must be GET or POST"),
        ({"timeout": 0}, 21208, "Timeout"),
        ({"timeout": -5}, 21208, "Timeout"),
        ({"time_limit": 0}, 20001, "TimeLimit"),
        ({"send_digits": "12x"}, 21206, "SendDigits"),
        ({"status_callback_event": ["ringing", "busy"]}, 21626, "StatusCallbackEvent 'busy'"),
        ({"url": None, "twiml": "<Response>" + "x" * 4000 + "</Response>"}, 32018, "Twiml"),
        ({"caller_id": "not a number"}, 21212, "CallerId"),
    ],
)
def test_create_rejects(
    client: Client, service: FakeCallService, kwargs: dict[str, Any], code: int, message: str
) -> None:
    with pytest.raises(TwilioRestException) as excinfo:
        create(client, **kwargs)
    assert rest_error(excinfo) == (400, code)
    assert message in excinfo.value.msg
    assert service.created == []


def test_twiml_of_4000_characters_is_accepted(client: Client, service: FakeCallService) -> None:
    twiml = "<Response><Say>" + "x" * (4000 - 32) + "</Say></Response>"
    assert len(twiml) == 4000
    create(client, url=None, twiml=twiml)
    assert service.created[0].twiml == twiml


def test_timeout_not_an_integer(http: Http) -> None:
    form = {"To": "+14155551212", "From": "+15017122661", "Url": URL, "Timeout": "ten"}
    resp = http("POST", "/Calls.json", data=form)
    assert resp.status_code == 400
    assert resp.json() == {
        "code": 21208,
        "message": "Timeout must be an integer, not 'ten'",
        "more_info": "https://www.twilio.com/docs/errors/21208",
        "status": 400,
    }


# --- the Call document -----------------------------------------------------------------------------------


def test_call_json_has_every_field(http: Http, service: FakeCallService) -> None:
    created = http("POST", "/Calls.json", data={"To": "+14155551212", "From": "+442071838750", "Url": URL})
    body = created.json()
    assert set(body) == CALL_FIELDS
    sid = body["sid"]
    uri = f"/2010-04-01/Accounts/{service.account_sid}/Calls/{sid}"
    assert body["uri"] == uri + ".json"
    assert body["subresource_uris"] == {k: f"{uri}/{v}.json" for k, v in SUBRESOURCES.items()}
    assert body["to_formatted"] == "(415) 555-1212" and body["from_formatted"] == "+442071838750"
    assert body["account_sid"] == service.account_sid
    assert body["api_version"] == "2010-04-01" and body["queue_time"] == "0"
    assert body["price"] is None and body["price_unit"] == "USD"
    assert body["start_time"] is None and body["end_time"] is None and body["duration"] is None
    created_at = parse_date(body["date_created"])
    assert abs(created_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)

    ringing = dt.datetime(2026, 3, 1, 9, 5, 7, tzinfo=dt.UTC)
    service.advance(sid, CallStatus.RINGING, at=ringing)
    service.advance(sid, CallStatus.IN_PROGRESS, at=ringing + dt.timedelta(seconds=3))
    service.advance(sid, CallStatus.COMPLETED, at=ringing + dt.timedelta(seconds=18))
    body = http("GET", f"/Calls/{sid}.json").json()
    assert set(body) == CALL_FIELDS
    assert body["status"] == "completed"
    assert body["start_time"] == "Sun, 01 Mar 2026 09:05:07 +0000"
    assert parse_date(body["end_time"]) == ringing + dt.timedelta(seconds=18)
    assert body["duration"] == "15"


def test_fetch(client: Client, service: FakeCallService) -> None:
    sid = create(client).sid
    service.advance(sid, CallStatus.RINGING)
    call = client.calls(sid).fetch()
    assert (call.sid, call.status, call.account_sid) == (sid, "ringing", service.account_sid)
    assert isinstance(call.date_created, dt.datetime) and isinstance(call.start_time, dt.datetime)
    assert call.to_formatted == "(415) 555-1212"


def test_fetch_unknown_call(client: Client) -> None:
    with pytest.raises(TwilioRestException) as excinfo:
        client.calls(new_sid("CA")).fetch()
    assert rest_error(excinfo) == (404, 20404)


# --- update ----------------------------------------------------------------------------------------------


def test_update_redirects_a_live_call(client: Client, service: FakeCallService) -> None:
    sid = create(client).sid
    service.advance(sid, CallStatus.RINGING)
    service.advance(sid, CallStatus.IN_PROGRESS)
    call = client.calls(sid).update(url="https://app.example.com/next", method="GET")
    assert call.status == "in-progress"
    ((update_sid, update),) = service.updates
    assert update_sid == sid
    assert (update.url, update.method) == ("https://app.example.com/next", "GET")
    assert update.twiml is None and update.status is None
    client.calls(sid).update(twiml=TWIML, status_callback="https://app.example.com/s2")
    assert service.updates[-1][1].twiml == TWIML
    assert service.calls[sid].status_callback == "https://app.example.com/s2"


def test_update_status_completed_hangs_up(client: Client, service: FakeCallService) -> None:
    sid = create(client).sid
    service.advance(sid, CallStatus.IN_PROGRESS)
    call = client.calls(sid).update(status="completed")
    assert call.status == "completed" and call.end_time is not None and call.duration is not None


def test_update_status_canceled_cancels_a_ringing_call(client: Client, service: FakeCallService) -> None:
    sid = create(client).sid
    service.advance(sid, CallStatus.RINGING)
    assert client.calls(sid).update(status="canceled").status == "canceled"
    assert service.updates[0][1].status is CallStatus.CANCELED
    # An ended call takes no more updates (the service's 21220 comes through).
    with pytest.raises(TwilioRestException) as excinfo:
        client.calls(sid).update(url=URL)
    assert rest_error(excinfo) == (400, 21220)


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"status": "busy"}, 20001),
        ({"status": "in-progress"}, 20001),
        ({"url": "nope"}, 21205),
        ({"method": "PATCH"}, 21209),
        ({"twiml": "x" * 4001}, 32018),
    ],
)
def test_update_rejects(client: Client, service: FakeCallService, kwargs: dict[str, Any], code: int) -> None:
    sid = create(client).sid
    with pytest.raises(TwilioRestException) as excinfo:
        client.calls(sid).update(**kwargs)
    assert rest_error(excinfo) == (400, code)
    assert service.updates == []


def test_update_unknown_call(client: Client) -> None:
    with pytest.raises(TwilioRestException) as excinfo:
        client.calls(new_sid("CA")).update(status="completed")
    assert rest_error(excinfo) == (404, 20404)


# --- delete ----------------------------------------------------------------------------------------------


def test_delete(client: Client, service: FakeCallService, http: Http) -> None:
    sid = create(client).sid
    with pytest.raises(TwilioRestException) as excinfo:
        client.calls(sid).delete()  # still live: Twilio's "Cannot delete this resource before it is complete"
    assert rest_error(excinfo) == (400, 20009)
    service.advance(sid, CallStatus.NO_ANSWER)
    resp = http("DELETE", f"/Calls/{sid}.json")
    assert (resp.status_code, resp.content) == (204, b"")
    with pytest.raises(TwilioRestException) as excinfo:
        client.calls(sid).fetch()
    assert rest_error(excinfo) == (404, 20404)
    with pytest.raises(TwilioRestException) as excinfo:
        client.calls(sid).delete()
    assert rest_error(excinfo) == (404, 20404)

    other = create(client).sid
    service.advance(other, CallStatus.FAILED)
    assert client.calls(other).delete() is True
    assert service.calls == {}
