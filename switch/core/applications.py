"""TwiML applications (Twilio's Applications, "TwiML Apps"): a voice URL, its fallback and a status callback under
one SID (AP...), kept in the store.

A phone number that names an application (`voice_application_sid`) is answered with the application's URLs and
reports to the application's status callback instead of its own (`switch.core.numbers.NumberRegistry.lookup`).
Deleting an application detaches it from its numbers, which go back to their own URLs (`on_delete`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from switch.core.model import check_changes, new_sid, utcnow
from switch.core.paging import Cursor, in_list_order, keyset_sql
from switch.core.store import Store

log = logging.getLogger("switch.core.applications")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS applications (
    sid TEXT PRIMARY KEY, account_sid TEXT NOT NULL, friendly_name TEXT, voice_url TEXT,
    voice_method TEXT NOT NULL, voice_fallback_url TEXT, voice_fallback_method TEXT NOT NULL,
    status_callback TEXT, status_callback_method TEXT NOT NULL,
    date_created TEXT NOT NULL, date_updated TEXT NOT NULL
);
"""

# The fields `ApplicationRegistry.update` may change; the methods cannot be cleared.
UPDATABLE = (
    "friendly_name",
    "voice_url",
    "voice_method",
    "voice_fallback_url",
    "voice_fallback_method",
    "status_callback",
    "status_callback_method",
)
_NOT_NULL = frozenset({"voice_method", "voice_fallback_method", "status_callback_method"})
_COLUMNS = ("sid", "account_sid", *UPDATABLE, "date_created", "date_updated")


@dataclass(frozen=True)
class Application:
    """One TwiML application: where a call to one of its numbers fetches TwiML, and where it reports."""

    sid: str
    account_sid: str
    friendly_name: str | None
    voice_url: str | None
    voice_method: str
    voice_fallback_url: str | None
    voice_fallback_method: str
    status_callback: str | None
    status_callback_method: str
    date_created: dt.datetime
    date_updated: dt.datetime


def _from_row(row: sqlite3.Row) -> Application:
    values: dict[str, Any] = {name: row[name] for name in _COLUMNS}
    for name in ("date_created", "date_updated"):
        values[name] = dt.datetime.fromisoformat(values[name])
    return Application(**values)


def _to_row(app: Application) -> list[Any]:
    return [v.isoformat() if isinstance(v, dt.datetime) else v for v in (getattr(app, n) for n in _COLUMNS)]


class ApplicationRegistry:
    """The account's applications: SQLite table `applications`, and an in-memory copy for call routing.

    Use it from the control plane's event loop (the store has its own lock).
    """

    def __init__(self, store: Store, account_sid: str) -> None:
        self._store = store
        self._account_sid = account_sid
        store.executescript(_SCHEMA)
        rows = store.execute("SELECT * FROM applications WHERE account_sid = ?", (account_sid,)).fetchall()
        self._by_sid: dict[str, Application] = {r["sid"]: _from_row(r) for r in rows}
        # Called with the SID of a deleted application (the numbers registry detaches its numbers).
        self.on_delete: list[Callable[[str], None]] = []

    @property
    def account_sid(self) -> str:
        return self._account_sid

    def get(self, sid: str) -> Application | None:
        """The application `sid`, from memory (routing asks on every inbound call)."""
        return self._by_sid.get(sid)

    def create(
        self,
        friendly_name: str | None = None,
        voice_url: str | None = None,
        voice_method: str = "POST",
        voice_fallback_url: str | None = None,
        voice_fallback_method: str = "POST",
        status_callback: str | None = None,
        status_callback_method: str = "POST",
    ) -> Application:
        """Add an application (arguments already validated by the edge)."""
        now = utcnow()
        app = Application(new_sid("AP"), self._account_sid, friendly_name, voice_url, voice_method,
                          voice_fallback_url, voice_fallback_method, status_callback, status_callback_method,
                          now, now)
        marks = ", ".join("?" for _ in _COLUMNS)
        self._store.execute(f"INSERT INTO applications ({', '.join(_COLUMNS)}) VALUES ({marks})", _to_row(app))
        self._by_sid[app.sid] = app
        log.info("application %s (%s) created", app.sid, friendly_name or "no name")
        return app

    def list_applications(self, friendly_name: str | None = None, offset: int = 0, limit: int = 50,
                          cursor: Cursor | None = None) -> list[Application]:
        """Oldest first; `friendly_name` matches exactly (as Twilio's FriendlyName filter does).  Skips `offset`,
        or pages by `cursor` (`switch.core.paging`)."""
        condition, keys, order = keyset_sql(cursor, descending=False)
        where, args = ["account_sid = ?"], [self._account_sid]
        if friendly_name is not None:
            where.append("friendly_name = ?")
            args.append(friendly_name)
        if condition is not None:
            where.append(condition)
            args += keys
            offset = 0
        rows = self._store.execute(
            f"SELECT * FROM applications WHERE {' AND '.join(where)} ORDER BY {order} LIMIT ? OFFSET ?",
            [*args, limit, offset]).fetchall()
        return [_from_row(r) for r in in_list_order(rows, cursor)]

    def update(self, sid: str, changes: Mapping[str, str | None]) -> Application | None:
        """Change the `UPDATABLE` fields named in `changes` (None clears a URL or the name); None for an unknown SID.

        Calls to the application's numbers use the new URLs from their next INVITE on.
        """
        check_changes(changes, UPDATABLE, _NOT_NULL)
        current = self._by_sid.get(sid)
        if current is None:
            return None
        fields: dict[str, Any] = dict(changes)
        updated = dataclasses.replace(current, date_updated=utcnow(), **fields)
        assignments = ", ".join(f"{name} = ?" for name in _COLUMNS[2:])
        self._store.execute(f"UPDATE applications SET {assignments} WHERE sid = ?", [*_to_row(updated)[2:], sid])
        self._by_sid[sid] = updated
        return updated

    def delete(self, sid: str) -> bool:
        """Remove an application; its numbers are detached from it.  False for an unknown SID."""
        if self._by_sid.pop(sid, None) is None:
            return False
        self._store.execute("DELETE FROM applications WHERE sid = ?", (sid,))
        for hook in self.on_delete:
            hook(sid)
        log.info("application %s deleted", sid)
        return True
