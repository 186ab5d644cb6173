"""Twilio's Keys resource and REST authentication with an API key, driven by the official `twilio` client against
real `ApiKeys`, `ApplicationRegistry` and `Accounts` on a real SQLite store, over HTTP (the aiohttp application
runs as in `test_api_twilio`).

The client makes keys with `new_keys.create` (whose answer alone carries the secret) and manages them with `keys`;
`Client(key_sid, key_secret, account_sid)` then authenticates with the key, as Twilio's clients allow.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from aiohttp import web
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

from switch.core.accounts import Accounts
from switch.core.api_keys import ApiKeys
from switch.core.applications import ApplicationRegistry
from switch.core.store import Store
from switch.dialects.errors import error_middleware
from switch.dialects.twilio.accounts import add_twilio_account_routes
from switch.dialects.twilio.applications import add_twilio_application_routes
from switch.dialects.twilio.keys import add_twilio_key_routes
from tests.functional.test_api_twilio import Server

ACCOUNT_SID = "AC" + "7" * 32
AUTH_TOKEN = "keys-api-token"
BASE = "https://pbx.example.com/"
KEY_FIELDS = {"sid", "friendly_name", "date_created", "date_updated"}


@dataclass(frozen=True)
class Account:
    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN


class Switch:
    """Keys, Applications and Accounts over a store in `path`; `restart` opens it again on the same file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._start()

    def _start(self) -> None:
        self.store = Store(self.path)
        self.store.ensure_account(ACCOUNT_SID, AUTH_TOKEN)
        self.keys = ApiKeys(self.store, ACCOUNT_SID)
        app = web.Application(middlewares=[error_middleware])
        add_twilio_key_routes(app, Account(), self.keys, BASE)
        add_twilio_application_routes(app, Account(), ApplicationRegistry(self.store, ACCOUNT_SID), BASE)
        add_twilio_account_routes(app, Account(), Accounts(self.store, ACCOUNT_SID))
        self.server = Server(app).__enter__()
        self.client = self.client_as(ACCOUNT_SID, AUTH_TOKEN)
        self.http = requests.Session()
        self.http.trust_env = False  # never route 127.0.0.1 through a proxy from the environment

    def client_as(self, username: str, password: str) -> Client:
        """The official client with these credentials, on this account (as `Client(key, secret, account)`)."""
        client = Client(username, password, ACCOUNT_SID)
        client.api.base_url = self.server.base_url
        return client

    def stop(self) -> None:
        self.http.close()
        self.server.__exit__()
        self.store.close()

    def restart(self) -> None:
        self.stop()
        self._start()

    def raw(self, method: str, path: str, auth: tuple[str, str] = (ACCOUNT_SID, AUTH_TOKEN),
            **kwargs: Any) -> requests.Response:
        """A request to `path` under the account ("Keys.json" -> /2010-04-01/Accounts/AC.../Keys.json)."""
        url = f"{self.server.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/{path}"
        return self.http.request(method, url, auth=auth, timeout=5, **kwargs)


@pytest.fixture
def switch(tmp_path: Path) -> Iterator[Switch]:
    running = Switch(tmp_path / "switch.db")
    yield running
    running.stop()


def _rest_error(call: Callable[[], Any]) -> TwilioRestException:
    with pytest.raises(TwilioRestException) as info:
        call()
    return info.value


def _refused(call: Callable[[], Any]) -> None:
    """`call` is answered 401 / 20003 (a list page raises a plain TwilioException carrying the response)."""
    with pytest.raises(TwilioException) as info:
        call()
    error = info.value
    if isinstance(error, TwilioRestException):
        assert (error.status, error.code) == (401, 20003), error
    else:
        response = error.args[1]
        assert (response.status_code, json.loads(response.text)["code"]) == (401, 20003), error


def test_create_shows_the_secret_once(switch: Switch) -> None:
    made = switch.client.new_keys.create(friendly_name="browser")
    assert made.sid.startswith("SK") and len(made.sid) == 34
    assert made.friendly_name == "browser" and made.date_created is not None
    secret = made.secret
    assert secret is not None and len(secret) == 32 and secret.isalnum()

    fetched = switch.client.keys(made.sid).fetch()
    assert (fetched.sid, fetched.friendly_name) == (made.sid, "browser")
    assert not hasattr(fetched, "secret")
    assert [k.sid for k in switch.client.keys.list()] == [made.sid]

    raw = switch.raw("POST", "Keys.json", data={"FriendlyName": "second"})
    assert raw.status_code == 201 and set(raw.json()) == KEY_FIELDS | {"secret"}
    assert raw.headers["Location"] == f"https://pbx.example.com/2010-04-01/Accounts/{ACCOUNT_SID}/Keys/" \
                                      f"{raw.json()['sid']}.json"
    second_secret = raw.json()["secret"]
    assert second_secret != secret
    for response in (switch.raw("GET", f"Keys/{made.sid}.json"), switch.raw("GET", "Keys.json"),
                     switch.raw("POST", f"Keys/{made.sid}.json", data={"FriendlyName": "renamed"})):
        assert response.status_code == 200
        assert secret not in response.text and second_secret not in response.text
        assert "secret" not in response.text
    assert set(switch.raw("GET", f"Keys/{made.sid}.json").json()) == KEY_FIELDS
    assert [k["friendly_name"] for k in switch.raw("GET", "Keys.json").json()["keys"]] == ["renamed", "second"]


def test_list_pages_update_and_delete(switch: Switch) -> None:
    sids = [switch.client.new_keys.create(friendly_name=f"k{i}").sid for i in range(3)]
    assert [k.sid for k in switch.client.keys.list(page_size=2)] == sids  # oldest first, over two pages
    updated = switch.client.keys(sids[1]).update(friendly_name="desk")
    assert updated.friendly_name == "desk" and updated.date_updated >= updated.date_created
    assert switch.client.keys(sids[1]).update().friendly_name == "desk"  # no FriendlyName: unchanged
    assert switch.client.keys(sids[0]).delete() is True
    error = _rest_error(lambda: switch.client.keys(sids[0]).fetch())
    assert (error.status, error.code) == (404, 20404)
    assert _rest_error(lambda: switch.client.keys(sids[0]).delete()).status == 404
    assert [k.sid for k in switch.client.keys.list()] == sids[1:]
    too_long = _rest_error(lambda: switch.client.new_keys.create(friendly_name="x" * 65))
    assert (too_long.status, too_long.code) == (400, 20001)


def test_basic_auth_with_a_key_on_the_account_resources(switch: Switch) -> None:
    made = switch.client.new_keys.create(friendly_name="server")
    assert made.secret is not None
    with_key = switch.client_as(made.sid, made.secret)
    app = with_key.applications.create(friendly_name="softphone", voice_url="https://app.example.com/voice")
    assert app.account_sid == ACCOUNT_SID
    assert [a.sid for a in with_key.applications.list()] == [app.sid]
    assert with_key.applications(app.sid).fetch().friendly_name == "softphone"
    assert switch.client.applications(app.sid).fetch().sid == app.sid  # the same account's resource

    wrong = made.secret[:-1] + ("X" if made.secret[-1] != "X" else "Y")  # one in 62 secrets ends with X
    _refused(lambda: switch.client_as(made.sid, wrong).applications.list())  # wrong secret
    _refused(lambda: switch.client_as(made.sid, "").applications.list())
    _refused(lambda: switch.client_as("SK" + "0" * 32, made.secret).applications.list())  # unknown key
    _refused(lambda: switch.client_as(made.sid, AUTH_TOKEN).applications.list())  # the auth token is no secret
    _refused(lambda: switch.client_as(ACCOUNT_SID, made.secret).applications.list())  # nor the secret a token

    # A Standard key manages neither keys nor accounts (Twilio: those need a Main key, made in its Console).
    _refused(lambda: with_key.new_keys.create(friendly_name="another"))
    _refused(lambda: with_key.keys.list())
    _refused(lambda: with_key.keys(made.sid).fetch())
    _refused(lambda: with_key.keys(made.sid).delete())
    _refused(lambda: with_key.api.accounts(ACCOUNT_SID).fetch())
    assert switch.raw("GET", "Applications.json", auth=(made.sid, made.secret)).status_code == 200
    other = switch.http.get(f"{switch.server.base_url}/2010-04-01/Accounts/{'AC' + '8' * 32}/Applications.json",
                            auth=(made.sid, made.secret), timeout=5)
    assert (other.status_code, other.json()["code"]) == (404, 20404)  # another account's path, as with the token

    assert switch.client.keys(made.sid).delete() is True
    _refused(lambda: with_key.applications.list())  # a deleted key authenticates nothing
    assert [a.sid for a in switch.client.applications.list()] == [app.sid]  # the auth token still works


def test_keys_survive_a_restart(switch: Switch) -> None:
    made = switch.client.new_keys.create(friendly_name="kept")
    assert made.secret is not None
    switch.restart()
    assert [k.friendly_name for k in switch.client.keys.list()] == ["kept"]
    assert switch.client_as(made.sid, made.secret).applications.list() == []
    assert switch.keys.secret_of(made.sid) == made.secret
