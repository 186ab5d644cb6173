"""Errors and warnings recorded against a call (Twilio's Notifications/Alerts), kept in the store.

The TwiML interpreter, media and recordings report here; `GET .../Calls/{Sid}/Notifications.json` lists
them.  Each is also logged with the call SID.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from switch.core.model import new_sid
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
        return [Notification(r["sid"], r["account_sid"], r["call_sid"], dt.datetime.fromisoformat(r["date_created"]),
                             r["log"], r["error_code"], r["message_text"], r["request_url"], r["request_method"])
                for r in rows]
