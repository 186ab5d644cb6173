"""X-Twilio-Signature: HMAC-SHA1 over the URL and the sorted POST parameters, keyed by the auth token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import urllib.parse
from collections.abc import Iterable

_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")  # what quote_plus leaves as it is
# quote_plus of ASCII text, a character at a time: the others as %XX, space as +
_ASCII_PLUS = {c: "+" if c == 32 else f"%{c:02X}" for c in range(128) if not _UNRESERVED.fullmatch(chr(c))}


def compute_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]] = ()) -> str:
    """Twilio's request signature of `url` (with its query string, for GET) and form `params` (POST)."""
    payload = url + "".join(k + v for k, v in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def form_encode(params: Iterable[tuple[str, str]]) -> str:
    """`urllib.parse.urlencode(params)` for text pairs, quoting only what needs it (a webhook has ~30 pairs,
    most of them SIDs, words and numbers)."""
    return "&".join(_plus(k) + "=" + _plus(v) for k, v in params)


def _plus(text: str) -> str:
    return text.translate(_ASCII_PLUS) if text.isascii() else urllib.parse.quote_plus(text)
