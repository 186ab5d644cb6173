"""The switch's one account as a resource: its SID and token (the store's `accounts` table) with the name and
status the REST API shows and lets one change (table `account_profiles`).

There are no subaccounts: the account the credentials name is the only one, and it stays active (a switch whose
only account were suspended or closed could not be reactivated through its own API).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from switch.core.errors import InvalidArgument
from switch.core.model import utcnow
from switch.core.store import Store

_SCHEMA = """
CREATE TABLE IF NOT EXISTS account_profiles (
    sid TEXT PRIMARY KEY, friendly_name TEXT NOT NULL, status TEXT NOT NULL, date_updated TEXT NOT NULL
);
"""

DEFAULT_NAME = "softswitch"
ACTIVE = "active"
STATUSES = ("active", "suspended", "closed")
MAX_FRIENDLY_NAME = 64


@dataclass(frozen=True)
class Account:
    """The account: what `GET .../Accounts/{Sid}.json` shows."""

    sid: str
    auth_token: str
    friendly_name: str
    status: str
    date_created: dt.datetime
    date_updated: dt.datetime


class Accounts:
    """Reads and updates the account (use it from the event loop; the store has its own lock)."""

    def __init__(self, store: Store, account_sid: str) -> None:
        self._store = store
        self.account_sid = account_sid
        store.executescript(_SCHEMA)

    def get(self) -> Account:
        row = self._store.execute("SELECT * FROM accounts WHERE sid = ?", (self.account_sid,)).fetchone()
        if row is None:
            raise LookupError(f"account {self.account_sid} is not in the store")
        created = dt.datetime.fromisoformat(row["date_created"])
        profile = self._store.execute("SELECT * FROM account_profiles WHERE sid = ?", (self.account_sid,)).fetchone()
        if profile is None:
            return Account(self.account_sid, row["auth_token"], DEFAULT_NAME, ACTIVE, created, created)
        return Account(self.account_sid, row["auth_token"], profile["friendly_name"], profile["status"], created,
                       dt.datetime.fromisoformat(profile["date_updated"]))

    def update(self, friendly_name: str | None = None, status: str | None = None) -> Account:
        """Rename the account; `status` may only say what it is (active): `InvalidArgument` otherwise."""
        current = self.get()
        if status is not None and status != ACTIVE:
            if status not in STATUSES:
                raise InvalidArgument(f"Status must be one of {', '.join(STATUSES)}, not {status!r}")
            raise InvalidArgument(f"The switch's only account cannot be {status}")
        if friendly_name is not None and len(friendly_name) > MAX_FRIENDLY_NAME:
            raise InvalidArgument(f"FriendlyName must be at most {MAX_FRIENDLY_NAME} characters")
        name = current.friendly_name if friendly_name is None else friendly_name
        now = utcnow()
        self._store.execute(
            "INSERT INTO account_profiles (sid, friendly_name, status, date_updated) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(sid) DO UPDATE SET friendly_name = excluded.friendly_name, status = excluded.status, "
            "date_updated = excluded.date_updated",
            (self.account_sid, name, ACTIVE, now.isoformat()))
        return self.get()
