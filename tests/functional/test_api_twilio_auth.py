"""Functional tests of the Twilio Calls API, driven by the official `twilio` client: authentication (wrong
tokens, missing credentials), other accounts' paths and unknown routes (the setup is in twilio_api.py and
conftest.py)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

from switch.core.model import new_sid
from switch.core.status import CallStatus
from tests.functional.fake_service import FakeCallService
from tests.functional.twilio_api import URL, Http, Server, create, rest_error


def list_error(excinfo: pytest.ExceptionInfo[TwilioException]) -> tuple[int, int]:
    """(HTTP status, Twilio code) of a failed list: the client raises a bare TwilioException for pages."""
    response = excinfo.value.args[1]
    return response.status_code, json.loads(response.text)["code"]


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
