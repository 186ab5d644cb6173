"""Twilio access tokens (the JWTs of the Voice SDK), checked as Twilio checks them: pure, no I/O.

A token made by the official helper::

    token = AccessToken(account_sid, api_key_sid, api_key_secret, identity="alice", ttl=3600)
    token.add_grant(VoiceGrant(outgoing_application_sid="AP...", incoming_allow=True))
    token.to_jwt()

is a JWT signed with HMAC-SHA256 (``HS256``) keyed by the API key's secret.  Its header is
``{"typ": "JWT", "alg": "HS256", "cty": "twilio-fpa;v=1"}``; its payload carries ``iss`` (the API key SID: the
helper puts no ``kid`` in the header, so the key is named by ``iss``), ``sub`` (the account SID), ``exp``,
``nbf``, ``jti`` and ``grants`` (``identity`` and, for Voice, ``voice`` with ``incoming.allow`` and
``outgoing.application_sid`` / ``outgoing.params``).

`verify` checks, in this order, and raises `AccessTokenError` with Twilio's code for the first failure
(https://www.twilio.com/docs/api/errors/<code>):

* 20101 "Invalid Access Token": not three base64url parts of JSON objects, or a claim of the wrong type;
* 20102 "Invalid Access Token header": ``alg`` other than HS256 (``none`` included), ``cty`` other than
  ``twilio-fpa;v=1``, ``typ`` other than JWT, or a ``kid`` that is not the ``iss``;
* 20103 "Invalid Access Token issuer/subject": ``iss`` names no key of the account (unknown or deleted), or
  ``sub`` is another account;
* 20107 "Invalid Access Token signature": not signed with the key's secret (or altered since);
* 20104 "Access Token expired or expiration date invalid": ``exp`` past, missing, or more than 24 hours ahead;
* 20105 "Access Token not yet valid": ``nbf`` in the future;
* 20106 "Invalid Access Token grants": no identity, no voice grant, or a voice grant that allows nothing.

Nothing of the payload is trusted before the signature has been checked, except ``iss``, which picks the key.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from switch.core.errors import SwitchError

# Twilio's access token error codes (https://www.twilio.com/docs/api/errors/20101 ... 20107).
INVALID_TOKEN = 20101
INVALID_HEADER = 20102
INVALID_ISSUER_OR_SUBJECT = 20103
EXPIRED = 20104
NOT_YET_VALID = 20105
INVALID_GRANTS = 20106
INVALID_SIGNATURE = 20107

ALGORITHM = "HS256"
CONTENT_TYPE = "twilio-fpa;v=1"
MAX_LIFETIME = 24 * 3600  # Twilio: "Access Token expiration times can be set up to 24 hours in the future."

KeyLookup = Callable[[str], "str | None"]  # an API key SID -> its secret, None when the account has no such key

_PART = re.compile(r"[A-Za-z0-9_-]*")


class AccessTokenError(SwitchError):
    """A token refused: `code` is Twilio's (20101-20107), `message` says what was wrong."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class VerifiedToken:
    """What a valid token allows: who (`identity`, as ``client:<identity>``), for which account and key, until
    when, and its voice grant."""

    identity: str
    account_sid: str
    key_sid: str
    outgoing_application_sid: str | None
    outgoing_params: Mapping[str, str]
    incoming_allow: bool
    expires: dt.datetime  # UTC
    token_id: str | None  # the `jti`


def _b64decode(part: str) -> bytes:
    if not _PART.fullmatch(part):
        raise AccessTokenError(INVALID_TOKEN, "Access token is not base64url")
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError) as exc:
        raise AccessTokenError(INVALID_TOKEN, "Access token is not base64url") from exc


def _json_object(part: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64decode(part))
    except (ValueError, UnicodeDecodeError) as exc:
        raise AccessTokenError(INVALID_TOKEN, f"Access token {what} is not JSON") from exc
    if not isinstance(value, dict):
        raise AccessTokenError(INVALID_TOKEN, f"Access token {what} is not a JSON object")
    return value


def _check_header(header: Mapping[str, Any], issuer: str) -> None:
    alg = header.get("alg")
    if alg != ALGORITHM:
        raise AccessTokenError(INVALID_HEADER, f"Access token algorithm must be {ALGORITHM}, not {alg!r}")
    if header.get("cty") != CONTENT_TYPE:
        raise AccessTokenError(INVALID_HEADER, f"Access token content type (cty) must be {CONTENT_TYPE!r}")
    if header.get("typ", "JWT") != "JWT":
        raise AccessTokenError(INVALID_HEADER, "Access token type (typ) must be JWT")
    kid = header.get("kid")
    if kid is not None and kid != issuer:
        raise AccessTokenError(INVALID_HEADER, "Access token key id (kid) is not its issuer (iss)")


def _int_claim(payload: Mapping[str, Any], name: str, code: int, required: bool) -> int | None:
    value = payload.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AccessTokenError(code, f"Access token claim {name!r} must be a number of seconds")
    return int(value)


def _text(value: Any) -> str:
    """An outgoing parameter's value as the application's request will carry it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise AccessTokenError(INVALID_GRANTS, "Voice grant outgoing params must be strings or numbers")


def _voice_grant(payload: Mapping[str, Any]) -> tuple[str, str | None, dict[str, str], bool]:
    """(identity, outgoing application SID, outgoing params, incoming allowed) of the grants."""
    grants = payload.get("grants")
    if not isinstance(grants, dict):
        raise AccessTokenError(INVALID_GRANTS, "Access token has no grants")
    identity = grants.get("identity")
    if not isinstance(identity, str) or not identity:
        raise AccessTokenError(INVALID_GRANTS, "Access token has no identity")
    voice = grants.get("voice")
    if not isinstance(voice, dict):
        raise AccessTokenError(INVALID_GRANTS, "Access token has no voice grant")
    incoming = voice.get("incoming", {})
    allow = isinstance(incoming, dict) and incoming.get("allow") is True
    outgoing = voice.get("outgoing", {})
    if not isinstance(outgoing, dict):
        raise AccessTokenError(INVALID_GRANTS, "Voice grant outgoing must be an object")
    app_sid = outgoing.get("application_sid")
    if app_sid is not None and (not isinstance(app_sid, str) or not app_sid):
        raise AccessTokenError(INVALID_GRANTS, "Voice grant outgoing application_sid must be a SID")
    params = outgoing.get("params") or {}
    if not isinstance(params, dict):
        raise AccessTokenError(INVALID_GRANTS, "Voice grant outgoing params must be an object")
    if app_sid is None and not allow:
        raise AccessTokenError(INVALID_GRANTS, "Voice grant allows neither outgoing nor incoming calls")
    return identity, app_sid, {str(k): _text(v) for k, v in params.items()}, allow


def signature(signing_input: bytes, secret: str) -> bytes:
    """HS256: HMAC-SHA256 of ``header.payload`` keyed by the secret's UTF-8 bytes (as PyJWT signs)."""
    return hmac.new(secret.encode("utf-8"), signing_input, hashlib.sha256).digest()


def verify(token: str, keys: KeyLookup, account_sid: str, now: float | None = None,
           leeway: float = 0.0) -> VerifiedToken:
    """The grants of `token` if it is a valid Voice access token of `account_sid`, signed with the secret of
    one of its API keys (`keys`); else `AccessTokenError` with Twilio's code (see the module's docstring).

    `now` (seconds since the epoch, default the clock) and `leeway` (seconds of clock skew forgiven on ``exp``
    and ``nbf``) are for callers and tests that need them.
    """
    parts = token.strip().split(".") if isinstance(token, str) else []
    if len(parts) != 3 or not all(parts[:2]):
        raise AccessTokenError(INVALID_TOKEN, "Access token must be three dot-separated base64url parts")
    header = _json_object(parts[0], "header")
    payload = _json_object(parts[1], "payload")
    issuer = payload.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise AccessTokenError(INVALID_ISSUER_OR_SUBJECT, "Access token has no issuer (iss): the API key SID")
    _check_header(header, issuer)
    secret = keys(issuer)
    if secret is None:
        raise AccessTokenError(INVALID_ISSUER_OR_SUBJECT, f"API key {issuer} is not a key of this account")
    given = _b64decode(parts[2])
    expected = signature(f"{parts[0]}.{parts[1]}".encode("ascii"), secret)
    if not hmac.compare_digest(given, expected):
        raise AccessTokenError(INVALID_SIGNATURE, "Access token signature is invalid")
    subject = payload.get("sub")
    if not isinstance(subject, str) or not hmac.compare_digest(subject.encode(), account_sid.encode()):
        raise AccessTokenError(INVALID_ISSUER_OR_SUBJECT, "Access token subject (sub) is not this account")
    clock = time.time() if now is None else now
    expires = _int_claim(payload, "exp", EXPIRED, required=True)
    if expires is None or expires + leeway <= clock:
        raise AccessTokenError(EXPIRED, "Access token expired")
    if expires > clock + MAX_LIFETIME + leeway:
        raise AccessTokenError(EXPIRED, "Access token expiration is more than 24 hours ahead")
    not_before = _int_claim(payload, "nbf", NOT_YET_VALID, required=False)
    if not_before is not None and not_before > clock + leeway:
        raise AccessTokenError(NOT_YET_VALID, "Access token is not yet valid (nbf)")
    identity, app_sid, params, allow = _voice_grant(payload)
    jti = payload.get("jti")
    return VerifiedToken(identity, subject, issuer, app_sid, params, allow,
                         dt.datetime.fromtimestamp(expires, dt.UTC), jti if isinstance(jti, str) else None)
