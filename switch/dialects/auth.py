"""HTTP Basic authentication with the account SID and auth token, as Twilio's REST API does it.

A request must carry `Authorization: Basic base64(AccountSid:AuthToken)`; anything else is a 401 with code
20003.  An authenticated request whose path names another account is a 404 (20404): there is only one
account here, and the answer must not reveal whether some other account exists.

An API key works as Twilio's official clients use it (`Client(api_key_sid, api_key_secret, account_sid)`):
`Authorization: Basic base64(SKxxx:secret)` on `/2010-04-01/Accounts/{AccountSid}/...`, the account coming from
the path.  The application's `API_KEYS` (set by `switch.app`) looks the secret up; without it only the auth token
works.  Keys are Twilio's Standard keys: refused (401) on the Accounts and Keys resources, as Twilio refuses them.
Webhooks stay signed with the auth token whatever authenticated the request.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import re
from collections.abc import Callable
from typing import Protocol

from aiohttp import web
from aiohttp.typedefs import Handler

from switch.core.errors import NotFound
from switch.dialects.errors import Unauthorized

KeySecrets = Callable[[str], "str | None"]  # an API key SID -> its secret, None when the account has no such key
API_KEYS: web.AppKey[KeySecrets] = web.AppKey("api_keys")
API_KEY_PREFIX = "SK"
# The resources a Standard key may not use: the Accounts and the Keys (https://www.twilio.com/docs/iam/api-keys).
_MAIN_KEY_ONLY = re.compile(r"/2010-04-01/Accounts(\.json|/[^/]+\.json|/[^/]+/Keys(\.json|/[^/]+\.json))")
_NO_SECRET = "-" * 32  # compared against when the key is unknown, so that timing does not tell


class Credentials(Protocol):
    """The account a REST edge serves (a `CallService` is one)."""

    @property
    def account_sid(self) -> str: ...

    @property
    def auth_token(self) -> str: ...


def parse_basic_auth(header: str | None) -> tuple[str, str] | None:
    """The (user, password) of a Basic `Authorization` header, or None when absent or malformed."""
    if not header:
        return None
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep:
        return None
    return user, password


def _same(given: str, expected: str) -> bool:
    # Bytes, because compare_digest refuses non-ASCII str; constant time either way.
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def check_credentials(request: web.Request, creds: Credentials) -> None:
    """Raise `Unauthorized` unless the request carries our account SID and auth token, or an API key's SID and
    secret (`check_api_key`).

    Then raise `NotFound` when the path's `{AccountSid}` (if the route has one) is not ours.
    """
    parsed = parse_basic_auth(request.headers.get("Authorization"))
    if parsed is None:
        raise Unauthorized()
    user, password = parsed
    keys = request.config_dict.get(API_KEYS)
    if keys is not None and user.startswith(API_KEY_PREFIX):
        check_api_key(request, keys, user, password)
    else:
        # Evaluate both comparisons so timing does not tell which half was wrong.
        user_ok = _same(user, creds.account_sid)
        password_ok = _same(password, creds.auth_token)
        if not (user_ok and password_ok):
            raise Unauthorized()
    check_path_account(request, creds)


def check_api_key(request: web.Request, keys: KeySecrets, key_sid: str, password: str) -> None:
    """Raise `Unauthorized` unless `key_sid` is a key of the account, `password` its secret, and the resource one
    a Standard key may use."""
    secret = keys(key_sid)
    password_ok = _same(password, _NO_SECRET if secret is None else secret)
    if secret is None or not password_ok or _MAIN_KEY_ONLY.fullmatch(request.path):
        raise Unauthorized()


def check_path_account(request: web.Request, creds: Credentials) -> None:
    """Raise `NotFound` when the path's `{AccountSid}` (if the route has one) is not ours."""
    path_account = request.match_info.get("AccountSid")
    if path_account is not None and not _same(path_account, creds.account_sid):
        raise NotFound(request.path)


def authenticated(creds: Credentials, handler: Handler) -> Handler:
    """Wrap `handler` so it runs only for requests that pass `check_credentials`."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        check_credentials(request, creds)
        return await handler(request)

    return guarded


def account_path_only(creds: Credentials, handler: Handler) -> Handler:
    """Wrap `handler` for a public resource: no credentials asked, but a path naming another account is still
    404, as with them."""

    @functools.wraps(handler)
    async def open_(request: web.Request) -> web.StreamResponse:
        check_path_account(request, creds)
        return await handler(request)

    return open_
