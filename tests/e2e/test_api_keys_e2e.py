"""API keys on a real `softswitch serve`: made with the account's auth token through the official client, then
used as `Client(key_sid, key_secret, account_sid)` on the account's resources, refused once wrong or deleted.

Every REST resource that takes the auth token takes a key (the wiring in `switch.app`), except the Keys and
Accounts resources, which Twilio keeps for Main keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

from tests.peers.harness import ACCOUNT_SID, AUTH_TOKEN, SwitchProcess

# Collections of the account, each GET with the auth token or a key (the console's API is under the same auth).
LISTS = ("Calls.json", "Applications.json", "IncomingPhoneNumbers.json", "Recordings.json", "Conferences.json",
         "Queues.json", "Notifications.json", "Transcriptions.json", "SIP/Domains.json",
         "SIP/CredentialLists.json", "SIP/IpAccessControlLists.json")


@pytest.fixture(scope="module")
def switch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwitchProcess]:
    proc = SwitchProcess(tmp_path_factory.mktemp("api-keys"), workers=1)
    proc.start()
    yield proc
    code = proc.stop()
    assert code == 0, f"switch exited with {code}:\n{proc.log()}"


def _client(switch: SwitchProcess, username: str, password: str) -> Client:
    client = Client(username, password, ACCOUNT_SID)
    client.api.base_url = switch.base_url
    return client


def _get(switch: SwitchProcess, path: str, auth: tuple[str, str]) -> requests.Response:
    with requests.Session() as http:
        http.trust_env = False  # never through a proxy from the environment
        url = switch.base_url + (path if path.startswith("/") else f"/2010-04-01/Accounts/{ACCOUNT_SID}/{path}")
        return http.get(url, auth=auth, timeout=10)


def _status(call: Callable[[], Any]) -> int:
    """The HTTP status `call` failed with (a list page raises a plain TwilioException carrying the response)."""
    with pytest.raises(TwilioException) as info:
        call()
    error = info.value
    return error.status if isinstance(error, TwilioRestException) else int(error.args[1].status_code)


def test_a_key_authenticates_the_official_client_until_deleted(switch: SwitchProcess) -> None:
    account = switch.client()
    made = account.new_keys.create(friendly_name="e2e")
    secret = made.secret
    assert made.sid.startswith("SK") and secret
    assert not hasattr(account.keys(made.sid).fetch(), "secret")
    key_auth = (made.sid, secret)

    with_key = _client(switch, *key_auth)
    app = with_key.applications.create(friendly_name="browser", voice_url="https://app.example.com/voice")
    assert with_key.applications(app.sid).fetch().voice_url == "https://app.example.com/voice"
    assert with_key.calls.list() == []
    for path in (*LISTS, "/console/api/health"):
        assert _get(switch, path, key_auth).status_code == 200, path
        assert _get(switch, path, (made.sid, secret + "x")).status_code == 401, path

    assert _status(lambda: _client(switch, made.sid, "wrong-secret").applications.list()) == 401
    assert _status(lambda: _client(switch, made.sid, AUTH_TOKEN).calls.list()) == 401
    assert _status(lambda: with_key.new_keys.create(friendly_name="more")) == 401  # a Standard key
    assert _status(lambda: with_key.api.accounts(ACCOUNT_SID).fetch()) == 401
    assert _get(switch, f"/2010-04-01/Accounts/{'AC' + '0' * 32}/Calls.json", key_auth).status_code == 404

    account.keys(made.sid).delete()
    assert _status(lambda: with_key.applications.list()) == 401
    assert _status(lambda: with_key.applications(app.sid).fetch()) == 401
    for path in LISTS:
        assert _get(switch, path, key_auth).status_code == 401, path
        assert _get(switch, path, (ACCOUNT_SID, AUTH_TOKEN)).status_code == 200, path
