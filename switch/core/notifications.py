"""Errors and warnings recorded against a call (Twilio's Notifications/Alerts), kept in the store.

The TwiML interpreter, media and recordings report here; `GET .../Calls/{Sid}/Notifications.json` lists
a call's, `GET .../Notifications.json` the account's.  Each is also logged with the call SID.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
from dataclasses import dataclass
from typing import Any

from switch.core.model import new_sid
from switch.core.paging import Cursor, in_list_order, keyset_sql
from switch.core.store import Store

log = logging.getLogger("switch.core.notifications")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS notifications (
    sid TEXT PRIMARY KEY, account_sid TEXT NOT NULL, call_sid TEXT NOT NULL, date_created TEXT NOT NULL,
    log INTEGER NOT NULL, error_code INTEGER NOT NULL, message_text TEXT NOT NULL,
    request_url TEXT, request_method TEXT
);
CREATE INDEX IF NOT EXISTS notifications_call ON notifications (call_sid, date_created);
"""

ERROR = 0
WARNING = 1


@dataclass(frozen=True)
class Notification:
    """One error (log 0) or warning (log 1) about a call."""

    sid: str
    account_sid: str
    call_sid: str
    date_created: dt.datetime
    log: int
    error_code: int
    message_text: str
    request_url: str | None
    request_method: str | None


class Notifications:
    """Adds and lists notifications; safe to call from anywhere on the event loop."""

    def __init__(self, store: Store, account_sid: str) -> None:
        self._store = store
        self._account_sid = account_sid
        store.executescript(_SCHEMA)

    def add(self, call_sid: str, error_code: int, message: str, url: str | None = None,
            method: str | None = None, level: int = ERROR) -> Notification:
        note = Notification(new_sid("NO"), self._account_sid, call_sid, dt.datetime.now(dt.UTC), level,
                            error_code, message, url, method)
        self._store.execute(
            "INSERT INTO notifications VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (note.sid, note.account_sid, call_sid, note.date_created.isoformat(), level, error_code, message,
             url, method),
        )
        (log.error if level == ERROR else log.warning)("%s: error %d: %s%s", call_sid, error_code, message,
                                                       f" ({method or ''} {url})" if url else "")
        return note

    def for_call(self, call_sid: str) -> list[Notification]:
        rows = self._store.execute(
            "SELECT * FROM notifications WHERE call_sid = ? ORDER BY date_created, rowid", (call_sid,)
        ).fetchall()
        return [_from_row(r) for r in rows]

    def get(self, sid: str) -> Notification | None:
        """One notification of the account, by SID."""
        row = self._store.execute("SELECT * FROM notifications WHERE sid = ? AND account_sid = ?",
                                  (sid, self._account_sid)).fetchone()
        return None if row is None else _from_row(row)

    def list_notifications(self, level: int | None = None, on: dt.date | None = None, before: dt.date | None = None,
                           after: dt.date | None = None, offset: int = 0, limit: int = 50,
                           cursor: Cursor | None = None) -> list[Notification]:
        """The account's notifications, oldest first: of one `level` (ERROR, WARNING), created on a UTC day,
        on or before one, on or after one (each None: any); skipping `offset`, or on the `cursor`'s side."""
        condition, keys, order = keyset_sql(cursor, descending=False)
        where: list[str] = ["account_sid = ?"]
        args: list[Any] = [self._account_sid]
        if level is not None:
            where.append("log = ?")
            args.append(level)
        for op, day in (("=", on), ("<=", before), (">=", after)):
            if day is not None:  # stored in UTC, ISO 8601: the first ten characters are the UTC day
                where.append(f"substr(date_created, 1, 10) {op} ?")
                args.append(day.isoformat())
        if condition is not None:
            where.append(condition)
            args += keys
            offset = 0
        rows = self._store.execute(
            f"SELECT * FROM notifications WHERE {' AND '.join(where)} ORDER BY {order} LIMIT ? OFFSET ?",
            [*args, limit, offset]).fetchall()
        return [_from_row(r) for r in in_list_order(rows, cursor)]


def _from_row(r: sqlite3.Row) -> Notification:
    return Notification(r["sid"], r["account_sid"], r["call_sid"], dt.datetime.fromisoformat(r["date_created"]),
                        r["log"], r["error_code"], r["message_text"], r["request_url"], r["request_method"])
