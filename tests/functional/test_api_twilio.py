"""Functional tests of the Twilio Calls API, driven by the official `twilio` client.

The aiohttp application runs on 127.0.0.1 in a background thread (the client is synchronous) over an
in-memory `FakeCallService`, so these tests check HTTP compatibility, not SIP.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import json
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from aiohttp import web
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

from switch.core.model import Call, CallbackEvent, Direction, new_sid
from switch.core.service import NewCall
from switch.core.status import CallStatus
from switch.dialects.errors import error_middleware
from switch.dialects.twilio.api import add_twilio_routes
from tests.functional.fake_service import FakeCallService

CALL_FIELDS = {
    "sid", "date_created", "date_updated", "parent_call_sid", "account_sid", "to", "to_formatted", "from",
    "from_formatted", "phone_number_sid", "status", "start_time", "end_time", "duration", "price",
    "price_unit", "direction", "answered_by", "api_version", "forwarded_from", "group_sid", "caller_name",
    "queue_time", "stir_verstat", "trunk_sid", "uri", "subresource_uris",
    "softswitch_media_quality",  # not Twilio's: the finished leg's RTP (null until then)
}  # fmt: skip
SUBRESOURCES = {
    "notifications": "Notifications", "recordings": "Recordings", "payments": "Payments", "events": "Events",
    "siprec": "Siprec", "streams": "Streams", "transcriptions": "Transcriptions",
    "user_defined_message_subscriptions": "UserDefinedMessageSubscriptions",
    "user_defined_messages": "UserDefinedMessages",
}  # fmt: skip
LIST_FIELDS = {
    "calls", "uri", "first_page_uri", "next_page_uri", "previous_page_uri",
    "page", "page_size", "start", "end",
}  # fmt: skip
RFC2822 = re.compile(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000")
TWIML = "<Response><Say>Hello</Say></Response>"
URL = "https://app.example.com/voice"


class Server:
    """An aiohttp app served on 127.0.0.1:<free port> by its own event loop in a daemon thread."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="twilio-api-test", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        runner = web.AppRunner(self.app)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = runner.addresses[0][1]
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())
        self.loop.close()

    def __enter__(self) -> Server:
        self._thread.start()
        assert self._ready.wait(10), "server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def service() -> FakeCallService:
    return FakeCallService()


@pytest.fixture
def server(service: FakeCallService) -> Iterator[Server]:
    app = web.Application(middlewares=[error_middleware])
    add_twilio_routes(app, service, "https://pbx.example.com/")
    with Server(app) as running:
        yield running


@pytest.fixture
def client(server: Server, service: FakeCallService) -> Client:
    client = Client(service.account_sid, service.auth_token)
    client.api.base_url = server.base_url
    return client


@pytest.fixture
def http(server: Server, service: FakeCallService) -> Iterator[Http]:
    with requests.Session() as session:
        session.trust_env = False  # never route 127.0.0.1 through a proxy from the environment
        session.auth = (service.account_sid, service.auth_token)
        yield Http(session, f"{server.base_url}/2010-04-01/Accounts/{service.account_sid}")


class Http:
    """Raw requests for what the official client cannot send (or hides)."""

    def __init__(self, session: requests.Session, account_url: str) -> None:
        self.session = session
        self.account_url = account_url

    def __call__(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, self.account_url + path, timeout=10, **kwargs)


def create(client: Client, **kwargs: Any) -> Any:
    params: dict[str, Any] = {"to": "+14155551212", "from_": "+15017122661", "url": URL}
    params.update(kwargs)
    return client.calls.create(**params)


def rest_error(excinfo: pytest.ExceptionInfo[TwilioRestException]) -> tuple[int, int]:
    return excinfo.value.status, excinfo.value.code


def list_error(excinfo: pytest.ExceptionInfo[TwilioException]) -> tuple[int, int]:
    """(HTTP status, Twilio code) of a failed list: the client raises a bare TwilioException for pages."""
    response = excinfo.value.args[1]
    return response.status_code, json.loads(response.text)["code"]


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


# --- list ------------------------------------------------------------------------------------------------


def test_list_filters(client: Client, service: FakeCallService) -> None:
    early = dt.datetime(2026, 1, 10, 12, 0, tzinfo=dt.UTC)
    late = dt.datetime(2026, 2, 20, 12, 0, tzinfo=dt.UTC)
    a = create(client, to="+14155550001").sid
    b = create(client, to="+14155550002").sid
    c = create(client, to="+14155550002").sid
    service.advance(a, CallStatus.RINGING, at=early)
    service.advance(b, CallStatus.RINGING, at=late)
    service.advance(b, CallStatus.BUSY, at=late)
    child = service.add(
        Call(
            sid=new_sid("CA"),
            account_sid=service.account_sid,
            to="sip:bob@127.0.0.1",
            from_="+14155550001",
            direction=Direction.OUTBOUND_DIAL,
            status=CallStatus.RINGING,
            parent_call_sid=a,
            start_time=early,
        )
    )

    def sids(**kwargs: Any) -> list[str | None]:
        return [call.sid for call in client.calls.list(**kwargs)]

    assert sids() == [child.sid, c, b, a]
    assert sids(to="+14155550002") == [c, b]
    assert sids(from_="+14155550001") == [child.sid]
    assert sids(status="busy") == [b]
    assert sids(status="queued") == [c]
    assert sids(parent_call_sid=a) == [child.sid]
    assert sids(start_time=dt.date(2026, 1, 10)) == [child.sid, a]
    assert sids(start_time_after=dt.date(2026, 2, 1)) == [b]
    assert sids(start_time_before=dt.date(2026, 2, 1)) == [child.sid, a]
    assert sids(start_time_after=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), to="+14155550001") == [a]
    assert sids(end_time=dt.date(2026, 2, 20)) == [b]
    assert sids(end_time_before=dt.date(2026, 2, 1)) == []
    assert sids(status="completed") == []


def test_paging_returns_every_call_once(client: Client, service: FakeCallService) -> None:
    sids = [create(client, to=f"+1415555{i:04d}").sid for i in range(7)]
    newest_first = sids[::-1]
    assert [c.sid for c in client.calls.list(page_size=2)] == newest_first
    assert [c.sid for c in client.calls.stream(page_size=3)] == newest_first
    assert [c.sid for c in client.calls.list(limit=3, page_size=2)] == newest_first[:3]
    assert [c.sid for c in client.calls.list(page_size=1000)] == newest_first

    # Filters survive into next_page_uri.
    for sid in sids[:5]:
        service.advance(sid, CallStatus.RINGING)
    assert [c.sid for c in client.calls.list(status="ringing", page_size=2)] == sids[:5][::-1]

    # Walk pages forward and back by hand.
    page = client.calls.page(page_size=3)
    assert [c.sid for c in page] == newest_first[:3]
    page2 = page.next_page()
    assert page2 is not None and [c.sid for c in page2] == newest_first[3:6]
    back = page2.previous_page()
    assert back is not None and [c.sid for c in back] == newest_first[:3]
    page3 = page2.next_page()
    assert page3 is not None and [c.sid for c in page3] == newest_first[6:]
    assert page3.next_page() is None


def test_list_envelope(http: Http, client: Client, service: FakeCallService) -> None:
    for _ in range(5):
        create(client)
    newest_first = sorted(service.calls.values(), key=lambda c: (c.date_created, c.sid), reverse=True)

    def token(prefix: str, n: int) -> str:
        """The cursor of the n-th call newest first: its SID and date_created in µs since the epoch."""
        call = newest_first[n]
        return f"{prefix}{call.sid}-{int(call.date_created.timestamp() * 1_000_000)}"

    path = f"/2010-04-01/Accounts/{service.account_sid}/Calls.json"
    body = http("GET", "/Calls.json", params={"PageSize": "2", "To": "+14155551212"}).json()
    assert set(body) == LIST_FIELDS
    assert (body["page"], body["page_size"], body["start"], body["end"]) == (0, 2, 0, 1)
    assert body["uri"] == body["first_page_uri"] == f"{path}?To=%2B14155551212&PageSize=2&Page=0"
    assert body["previous_page_uri"] is None
    assert body["next_page_uri"] == f"{path}?To=%2B14155551212&PageSize=2&Page=1&PageToken={token('PA', 1)}"
    assert all(set(c) == CALL_FIELDS for c in body["calls"])

    second = http("GET", "/Calls.json", params={"PageSize": "2", "Page": "1", "PageToken": token("PA", 1)}).json()
    assert [c["sid"] for c in second["calls"]] == [newest_first[2].sid, newest_first[3].sid]
    assert (second["page"], second["start"], second["end"]) == (1, 2, 3)
    assert second["uri"] == f"{path}?PageSize=2&Page=1&PageToken={token('PA', 1)}"
    assert second["previous_page_uri"] == f"{path}?PageSize=2&Page=0&PageToken={token('PB', 2)}"
    assert second["next_page_uri"] == f"{path}?PageSize=2&Page=2&PageToken={token('PA', 3)}"

    last = http("GET", "/Calls.json", params={"PageSize": "2", "Page": "2", "PageToken": token("PA", 3)}).json()
    assert (last["page"], last["start"], last["end"], len(last["calls"])) == (2, 4, 4, 1)
    assert last["next_page_uri"] is None
    assert last["previous_page_uri"] == f"{path}?PageSize=2&Page=1&PageToken={token('PB', 4)}"
    back = http("GET", "/Calls.json", params={"PageSize": "2", "Page": "1", "PageToken": token("PB", 4)}).json()
    assert [c["sid"] for c in back["calls"]] == [newest_first[2].sid, newest_first[3].sid]
    assert back["next_page_uri"] == second["next_page_uri"]
    assert back["previous_page_uri"] == second["previous_page_uri"]

    # Offset tokens from older next_page_uris still work.
    old = http("GET", "/Calls.json", params={"PageSize": "2", "Page": "2", "PageToken": "PT4"}).json()
    assert [c["sid"] for c in old["calls"]] == [newest_first[4].sid]
    assert (old["page"], old["start"], old["next_page_uri"]) == (2, 4, None)

    default = http("GET", "/Calls.json").json()
    assert default["page_size"] == 50 and len(default["calls"]) == 5 and default["next_page_uri"] is None
    assert http("GET", "/Calls.json", params={"PageSize": "5000"}).json()["page_size"] == 1000

    empty = http("GET", "/Calls.json", params={"To": "+10000000000"}).json()
    assert (empty["calls"], empty["start"], empty["end"], empty["next_page_uri"]) == ([], 0, 0, None)


@pytest.mark.parametrize(
    "params",
    [
        {"Status": "bogus"},
        {"StartTime>": "yesterday"},
        {"EndTime": "2026-13-01"},
        {"PageSize": "0"},
        {"PageSize": "two"},
        {"Page": "-1"},
        {"PageToken": "PAxyz"},
        {"PageToken": "PACA123"},
        {"PageToken": "PXCA123-5"},
        {"PageToken": "PACA123-9999999999999999999"},
    ],
)
def test_list_rejects_bad_parameters(http: Http, params: dict[str, str]) -> None:
    resp = http("GET", "/Calls.json", params=params)
    assert resp.status_code == 400
    assert resp.json()["code"] == 20001


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


# --- authentication and routing --------------------------------------------------------------------------


def test_wrong_token_is_401(server: Server, service: FakeCallService) -> None:
    for user, token in [(service.account_sid, "wrong"), (new_sid("AC"), service.auth_token)]:
        client = Client(user, token, account_sid=service.account_sid)
        client.api.base_url = server.base_url
        with pytest.raises(TwilioRestException) as excinfo:
            create(client)
        assert rest_error(excinfo) == (401, 20003)
        with pytest.raises(TwilioRestException) as excinfo:
            client.calls(new_sid("CA")).fetch()
        assert rest_error(excinfo) == (401, 20003)
        with pytest.raises(TwilioException) as list_excinfo:
            client.calls.list()
        assert list_error(list_excinfo) == (401, 20003)
    assert service.created == []


def test_missing_credentials_get_a_basic_challenge(server: Server, service: FakeCallService) -> None:
    url = f"{server.base_url}/2010-04-01/Accounts/{service.account_sid}/Calls.json"
    for headers in [{}, {"Authorization": "Basic !!!"}, {"Authorization": "Bearer x"}]:
        resp = requests.get(url, headers=headers, timeout=10)
        assert resp.status_code == 401
        assert resp.headers["WWW-Authenticate"] == 'Basic realm="softswitch"'
        assert resp.json() == {
            "code": 20003,
            "message": "Authenticate",
            "more_info": "https://www.twilio.com/docs/errors/20003",
            "status": 401,
        }
    resp = requests.get(url, auth=("AC\u00e9", "t\u00f6ken"), timeout=10)  # non-ASCII must not crash
    assert resp.status_code == 401


def test_other_account_in_path_is_404(client: Client, service: FakeCallService) -> None:
    sid = create(client).sid
    service.advance(sid, CallStatus.FAILED)
    other = client.api.v2010.accounts(new_sid("AC"))
    attempts: list[Callable[[], object]] = [
        lambda: other.calls(sid).fetch(),
        lambda: other.calls(sid).delete(),
        lambda: other.calls(sid).update(status="completed"),
        lambda: other.calls.create(to="+14155551212", from_="+15017122661", url=URL),
    ]
    for attempt in attempts:
        with pytest.raises(TwilioRestException) as excinfo:
            attempt()
        assert rest_error(excinfo) == (404, 20404)
    with pytest.raises(TwilioException) as list_excinfo:
        other.calls.list()
    assert list_error(list_excinfo) == (404, 20404)
    assert list(service.calls) == [sid] and len(service.created) == 1 and service.updates == []


def test_unknown_routes_are_twilio_404s(http: Http, server: Server) -> None:
    for path in ["/Recordings.json", "/Calls/CA123/Nope.json", "/Calls/not-a-sid.json"]:
        resp = http("GET", path)
        assert resp.status_code == 404
        assert resp.json()["code"] == 20404 and resp.json()["more_info"].endswith("/20404")
    resp = requests.get(f"{server.base_url}/2010-04-01/Nothing", timeout=10)
    assert (resp.status_code, resp.json()["code"]) == (404, 20404)
    resp = http("PUT", "/Calls.json")
    assert (resp.status_code, resp.json()["code"]) == (405, 20004)


def test_paths_outside_the_api_keep_aiohttp_errors(server: Server) -> None:
    resp = requests.get(f"{server.base_url}/health", timeout=10)
    assert resp.status_code == 404 and "json" not in resp.headers["Content-Type"]
