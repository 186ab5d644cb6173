"""API keys (Twilio's Keys resource): an SK... SID and a secret that stand in for the account SID and auth token on
the REST API, and that sign the access tokens of browser softphones (`switch.core.access_tokens`).

Keys made here are Twilio's *Standard* keys: they authenticate every REST resource except the Accounts and Keys
resources themselves (`switch.dialects.auth`).  The secret is shown once, in the answer to the create, and never
again (the REST edge renders a key without it).

The secret is kept **in clear** in the store, like the auth token and SIP passwords.  Hashing it is impossible:
an access token is signed with HMAC-SHA256 keyed by the secret itself (JWT ``HS256``), so checking a token needs
the secret, not a digest of it.  The database file must therefore be protected as the auth token is.  This is a
self-hosted lab switch; a deployment that cares should keep the data directory readable by the switch alone.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import secrets
import string
from dataclasses import dataclass

from switch.core.errors import InvalidArgument
from switch.core.model import new_sid, utcnow
from switch.core.paging import Cursor, PageKey
from switch.core.sip_domain_table import RecordTable, page_of
from switch.core.store import Store

log = logging.getLogger("switch.core.api_keys")

MAX_FRIENDLY_NAME = 64  # Twilio: "It can be up to 64 characters long."
SECRET_LENGTH = 32  # Twilio's secrets are 32 letters and digits
_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class ApiKey:
    """One API key (SK...) of the account.  `secret` never leaves the switch after the create."""

    sid: str
    account_sid: str
    friendly_name: str | None
    secret: str
    date_created: dt.datetime
    date_updated: dt.datetime


def new_secret() -> str:
    """A fresh secret: 32 random letters and digits (about 190 bits)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(SECRET_LENGTH))


def check_friendly_name(value: str | None) -> str | None:
    """A FriendlyName of at most 64 characters (empty means none)."""
    if value is not None and len(value) > MAX_FRIENDLY_NAME:
        raise InvalidArgument(f"FriendlyName must be at most {MAX_FRIENDLY_NAME} characters")
    return value or None


def _key(item: ApiKey) -> PageKey:
    return PageKey(item.date_created, item.sid)


class ApiKeys:
    """The account's API keys: SQLite table `api_keys`, kept in memory (every REST request with a key and every
    token check asks for a secret).

    Use it from the control plane's event loop (the store has its own lock).
    """

    def __init__(self, store: Store, account_sid: str) -> None:
        self._account_sid = account_sid
        self._keys = RecordTable(store, "api_keys", ApiKey, account_sid)

    @property
    def account_sid(self) -> str:
        return self._account_sid

    def get(self, sid: str) -> ApiKey | None:
        """The key `sid` of this account, or None."""
        return self._keys.get(sid)

    def secret_of(self, sid: str) -> str | None:
        """The secret of this account's key `sid`, or None when there is no such key (deleted, or never made)."""
        found = self._keys.get(sid)
        return None if found is None else found.secret

    def list_keys(self, offset: int = 0, limit: int = 50, cursor: Cursor | None = None) -> list[ApiKey]:
        """Oldest first: `limit` keys after `offset`, or on the `cursor`'s side (`switch.core.paging`)."""
        return page_of(self._keys.values(), _key, offset, limit, cursor)

    def create(self, friendly_name: str | None = None) -> ApiKey:
        """A new key with a fresh secret (the only time a caller sees it)."""
        now = utcnow()
        made = self._keys.insert(ApiKey(new_sid("SK"), self._account_sid, check_friendly_name(friendly_name),
                                        new_secret(), now, now))
        log.info("API key %s (%s) created", made.sid, made.friendly_name or "no name")
        return made

    def update(self, sid: str, friendly_name: str | None) -> ApiKey | None:
        """A new FriendlyName (the secret cannot change: make a new key); None for an unknown SID."""
        current = self._keys.get(sid)
        if current is None:
            return None
        return self._keys.replace(dataclasses.replace(
            current, friendly_name=check_friendly_name(friendly_name), date_updated=utcnow()))

    def delete(self, sid: str) -> bool:
        """Revoke a key: requests and access tokens signed with it are refused from now on.  False if unknown."""
        if not self._keys.delete([sid]):
            return False
        log.info("API key %s deleted", sid)
        return True
