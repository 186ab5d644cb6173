"""HTTP Basic authentication with the account SID and auth token, as Twilio's REST API does it.

A request must carry `Authorization: Basic base64(AccountSid:AuthToken)`; anything else is a 401 with code
20003.  An authenticated request whose path names another account is a 404 (20404): there is only one
account here, and the answer must not reveal whether some other account exists.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
from typing import Protocol

from aiohttp import web
from aiohttp.typedefs import Handler

from switch.core.errors import NotFound
from switch.dialects.errors import Unauthorized


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
    """Raise `Unauthorized` unless the request carries our account SID and auth token.

    Then raise `NotFound` when the path's `{AccountSid}` (if the route has one) is not ours.
    """
    parsed = parse_basic_auth(request.headers.get("Authorization"))
    if parsed is None:
        raise Unauthorized()
    user, password = parsed
    # Evaluate both comparisons so timing does not tell which half was wrong.
    user_ok = _same(user, creds.account_sid)
    password_ok = _same(password, creds.auth_token)
    if not (user_ok and password_ok):
        raise Unauthorized()
    check_path_account(request, creds)


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
