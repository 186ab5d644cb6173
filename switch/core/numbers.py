"""The phone numbers (and SIP users) the switch answers: Twilio's IncomingPhoneNumbers, kept in the store.

`NumberRegistry.lookup` is what `CallManager.lookup_number` calls for every inbound INVITE: it maps the
dialed user part to the `Number` (app URLs) that answers it, or None (the INVITE gets a 404).

Numbers come from two places:

* the config file's `[[numbers]]`, loaded at every start-up.  The config wins for the numbers it names:
  their URLs are reset to the config's, whatever the REST API changed since; a number the config no longer
  names is removed, unless it was created through the API.
* `POST .../IncomingPhoneNumbers.json`; these persist across restarts.

A number matches with or without one leading '+' ("+15550100" answers a call to "15550100" and the other
way round), so the two spellings of a number cannot both be registered.  Everything else is matched
exactly (SIP user parts are case-sensitive).

A number that names a TwiML application (`voice_application_sid`) is answered with the application's voice
URLs and status callback, not its own (`switch.core.applications`).  Each number also has a type (local,
mobile, toll-free: the IncomingPhoneNumbers subresource it was created under; local otherwise).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from switch.core.applications import ApplicationRegistry
from switch.core.config import Number
from switch.core.errors import InvalidArgument, Problem
from switch.core.model import check_changes, new_sid, utcnow
from switch.core.paging import Cursor, in_list_order, keyset_sql
from switch.core.store import Store

log = logging.getLogger("switch.core.numbers")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS phone_numbers (
    sid TEXT PRIMARY KEY, account_sid TEXT NOT NULL, phone_number TEXT NOT NULL, match_key TEXT NOT NULL,
    friendly_name TEXT, voice_url TEXT, voice_method TEXT NOT NULL, voice_fallback_url TEXT,
    voice_fallback_method TEXT NOT NULL, status_callback TEXT, status_callback_method TEXT NOT NULL,
    date_created TEXT NOT NULL, date_updated TEXT NOT NULL, from_config INTEGER NOT NULL DEFAULT 0,
    UNIQUE (account_sid, match_key)
);
"""
# Columns later releases added, and their definitions (`_migrate` adds them to an older table).
_ADDED_COLUMNS = {"voice_application_sid": "TEXT", "number_type": "TEXT NOT NULL DEFAULT 'local'"}
NUMBER_TYPES = ("local", "mobile", "toll-free")

# The fields `NumberRegistry.update` may change (the number itself is fixed, as on Twilio).
UPDATABLE = (
    "friendly_name",
    "voice_url",
    "voice_method",
    "voice_fallback_url",
    "voice_fallback_method",
    "status_callback",
    "status_callback_method",
    "voice_application_sid",
)
_APP_FIELDS = UPDATABLE[1:7]  # the fields a config `Number` sets
_NOT_NULL = frozenset({"voice_method", "voice_fallback_method", "status_callback_method"})


def match_key(number: str) -> str:
    """What two spellings of one number have in common: the number without one leading '+'."""
    return number.removeprefix("+")


class NumberTaken(InvalidArgument):
    """The account already has this number (with or without its leading '+')."""

    def __init__(self, number: str, sid: str) -> None:
        super().__init__(f"PhoneNumber {number} is already in use by {sid}", Problem.NUMBER_TAKEN)


@dataclass(frozen=True)
class PhoneNumber:
    """One IncomingPhoneNumber: a number or SIP user and the app that answers it."""

    sid: str
    account_sid: str
    phone_number: str
    friendly_name: str | None
    voice_url: str | None
    voice_method: str
    voice_fallback_url: str | None
    voice_fallback_method: str
    status_callback: str | None
    status_callback_method: str
    date_created: dt.datetime
    date_updated: dt.datetime
    from_config: bool = False
    voice_application_sid: str | None = None  # an application's URLs answer the number instead of its own
    number_type: str = "local"

    def to_number(self) -> Number:
        """The call manager's view: what answers a call to this number (its own URLs)."""
        return Number(self.phone_number, self.voice_url, self.voice_method, self.voice_fallback_url,
                      self.voice_fallback_method, self.status_callback, self.status_callback_method, self.sid)


def _from_row(row: sqlite3.Row) -> PhoneNumber:
    return PhoneNumber(
        sid=row["sid"], account_sid=row["account_sid"], phone_number=row["phone_number"],
        friendly_name=row["friendly_name"], voice_url=row["voice_url"], voice_method=row["voice_method"],
        voice_fallback_url=row["voice_fallback_url"], voice_fallback_method=row["voice_fallback_method"],
        status_callback=row["status_callback"], status_callback_method=row["status_callback_method"],
        date_created=dt.datetime.fromisoformat(row["date_created"]),
        date_updated=dt.datetime.fromisoformat(row["date_updated"]), from_config=bool(row["from_config"]),
        voice_application_sid=row["voice_application_sid"], number_type=row["number_type"],
    )


def _like_pattern(pattern: str) -> str:
    """Twilio's PhoneNumber filter: a part of the number, '*' standing for any one character."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_").replace("*", "_")
    return f"%{escaped}%"


class NumberRegistry:
    """The account's numbers: SQLite table `phone_numbers`, with an in-memory index for `lookup`.

    Not thread-safe beyond the store's own lock: use it from the control plane's event loop.
    """

    def __init__(self, store: Store, account_sid: str, config_numbers: list[Number],
                 applications: ApplicationRegistry | None = None) -> None:
        self._store = store
        self._account_sid = account_sid
        self.applications = applications or ApplicationRegistry(store, account_sid)
        self.applications.on_delete.append(self._application_deleted)
        store.executescript(_SCHEMA)
        present = {row["name"] for row in store.execute("PRAGMA table_info(phone_numbers)")}
        for column, definition in _ADDED_COLUMNS.items():
            if column not in present:
                store.executescript(f"ALTER TABLE phone_numbers ADD COLUMN {column} {definition};")
        self._by_key: dict[str, PhoneNumber] = {}
        self._load_config(config_numbers)
        self._reindex()

    @property
    def account_sid(self) -> str:
        return self._account_sid

    # -- start-up -----------------------------------------------------------------------------
    def _load_config(self, config_numbers: list[Number]) -> None:
        wanted: dict[str, Number] = {}
        for number in config_numbers:  # a number named twice: the last entry wins, as before the registry
            wanted[match_key(number.number)] = number
        existing = {match_key(p.phone_number): p for p in self._all()}
        now = utcnow()
        for key, number in wanted.items():
            current = existing.get(key)
            if current is None:
                self._insert(PhoneNumber(
                    new_sid("PN"), self._account_sid, number.number, number.number, number.voice_url,
                    number.voice_method, number.voice_fallback_url, number.voice_fallback_method,
                    number.status_callback, number.status_callback_method, now, now, from_config=True,
                ))
                continue
            fields: dict[str, Any] = {name: getattr(number, name) for name in _APP_FIELDS}
            fields.update(phone_number=number.number, from_config=True, voice_application_sid=None)
            if any(getattr(current, name) != value for name, value in fields.items()):
                if not current.from_config:
                    log.info("number %s (%s) is now set by the config file", number.number, current.sid)
                self._write(dataclasses.replace(current, date_updated=now, **fields))
        for key, current in existing.items():
            if current.from_config and key not in wanted:
                log.info("number %s (%s) left the config file: removed", current.phone_number, current.sid)
                self._store.execute("DELETE FROM phone_numbers WHERE sid = ?", (current.sid,))

    def _all(self) -> list[PhoneNumber]:
        rows = self._store.execute(
            "SELECT * FROM phone_numbers WHERE account_sid = ? ORDER BY date_created, rowid", (self._account_sid,)
        ).fetchall()
        return [_from_row(r) for r in rows]

    def _reindex(self) -> None:
        self._by_key = {match_key(p.phone_number): p for p in self._all()}

    def _insert(self, number: PhoneNumber) -> None:
        self._store.execute(
            "INSERT INTO phone_numbers (sid, account_sid, phone_number, match_key, friendly_name, voice_url, "
            "voice_method, voice_fallback_url, voice_fallback_method, status_callback, status_callback_method, "
            "date_created, date_updated, from_config, voice_application_sid, number_type) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (number.sid, number.account_sid, number.phone_number, match_key(number.phone_number),
             number.friendly_name, number.voice_url, number.voice_method, number.voice_fallback_url,
             number.voice_fallback_method, number.status_callback, number.status_callback_method,
             number.date_created.isoformat(), number.date_updated.isoformat(), int(number.from_config),
             number.voice_application_sid, number.number_type),
        )

    def _write(self, number: PhoneNumber) -> None:
        self._store.execute(
            "UPDATE phone_numbers SET phone_number = ?, match_key = ?, friendly_name = ?, voice_url = ?, "
            "voice_method = ?, voice_fallback_url = ?, voice_fallback_method = ?, status_callback = ?, "
            "status_callback_method = ?, date_updated = ?, from_config = ?, voice_application_sid = ? WHERE sid = ?",
            (number.phone_number, match_key(number.phone_number), number.friendly_name, number.voice_url,
             number.voice_method, number.voice_fallback_url, number.voice_fallback_method,
             number.status_callback, number.status_callback_method, number.date_updated.isoformat(),
             int(number.from_config), number.voice_application_sid, number.sid),
        )

    # -- routing ------------------------------------------------------------------------------
    def find(self, dialed: str) -> PhoneNumber | None:
        """The number a call to `dialed` (a Request-URI user part) reaches, with or without a leading '+'."""
        return self._by_key.get(match_key(dialed)) if dialed else None

    def lookup(self, dialed: str) -> Number | None:
        """`CallManager.lookup_number`: the app answering `dialed`, or None for a 404.

        A number with an application is answered with the application's voice URLs and reports to its status
        callback; one whose application is gone (deleted by another switch sharing the store) uses its own.
        """
        found = self.find(dialed)
        if found is None:
            return None
        app = self.applications.get(found.voice_application_sid) if found.voice_application_sid else None
        if app is None:
            return found.to_number()
        return Number(found.phone_number, app.voice_url, app.voice_method, app.voice_fallback_url,
                      app.voice_fallback_method, app.status_callback, app.status_callback_method, found.sid)

    def _application_deleted(self, app_sid: str) -> None:
        """An application is gone: its numbers answer with their own URLs again."""
        for number in list(self._by_key.values()):
            if number.voice_application_sid == app_sid:
                self.update(number.sid, {"voice_application_sid": None})

    # -- CRUD ---------------------------------------------------------------------------------
    def create(
        self,
        phone_number: str,
        friendly_name: str | None = None,
        voice_url: str | None = None,
        voice_method: str = "POST",
        voice_fallback_url: str | None = None,
        voice_fallback_method: str = "POST",
        status_callback: str | None = None,
        status_callback_method: str = "POST",
        voice_application_sid: str | None = None,
        number_type: str = "local",
    ) -> PhoneNumber:
        """Add a number (already validated by the edge); `NumberTaken` when the account has it already.

        The friendly name defaults to the number itself.
        """
        taken = self.find(phone_number)
        if taken is not None:
            raise NumberTaken(phone_number, taken.sid)
        now = utcnow()
        number = PhoneNumber(new_sid("PN"), self._account_sid, phone_number, friendly_name or phone_number,
                             voice_url, voice_method, voice_fallback_url, voice_fallback_method, status_callback,
                             status_callback_method, now, now, voice_application_sid=voice_application_sid,
                             number_type=number_type)
        try:
            self._insert(number)
        except sqlite3.IntegrityError:  # another process (an older switch?) wrote the same number meanwhile
            self._reindex()
            existing = self.find(phone_number)
            raise NumberTaken(phone_number, existing.sid if existing else "another number") from None
        self._by_key[match_key(phone_number)] = number
        log.info("number %s added as %s", phone_number, number.sid)
        return number

    def get(self, sid: str) -> PhoneNumber | None:
        row = self._store.execute(
            "SELECT * FROM phone_numbers WHERE sid = ? AND account_sid = ?", (sid, self._account_sid)
        ).fetchone()
        return None if row is None else _from_row(row)

    def list_numbers(self, phone_number: str | None = None, friendly_name: str | None = None, offset: int = 0,
                     limit: int = 50, number_type: str | None = None, cursor: Cursor | None = None
                     ) -> list[PhoneNumber]:
        """Oldest first (date_created, then sid).  `phone_number` matches any part of the number ('*' is any one
        character); `friendly_name` matches exactly; `number_type` (local, mobile, toll-free) too.  A `cursor`
        (`switch.core.paging`) replaces `offset`."""
        where = ["account_sid = ?"]
        args: list[Any] = [self._account_sid]
        if number_type is not None:
            where.append("number_type = ?")
            args.append(number_type)
        if phone_number is not None:
            where.append("phone_number LIKE ? ESCAPE '\\'")
            args.append(_like_pattern(phone_number))
        if friendly_name is not None:
            where.append("friendly_name = ?")
            args.append(friendly_name)
        condition, keys, order = keyset_sql(cursor, descending=False)
        if condition is not None:
            where.append(condition)
            args += keys
            offset = 0
        rows = self._store.execute(
            f"SELECT * FROM phone_numbers WHERE {' AND '.join(where)} ORDER BY {order} LIMIT ? OFFSET ?",
            [*args, limit, offset],
        ).fetchall()
        return [_from_row(r) for r in in_list_order(rows, cursor)]

    def update(self, sid: str, changes: Mapping[str, str | None]) -> PhoneNumber | None:
        """Change the `UPDATABLE` fields named in `changes` (None clears a URL); None for an unknown SID.

        A number from the config file can be changed too, until the next start-up sets it back.
        """
        check_changes(changes, UPDATABLE, _NOT_NULL)
        current = self.get(sid)
        if current is None:
            return None
        if current.from_config:
            log.warning("number %s (%s) is set by the config file: the change lasts until the next start",
                        current.phone_number, sid)
        fields: dict[str, Any] = dict(changes)  # checked against UPDATABLE above
        updated = dataclasses.replace(current, date_updated=utcnow(), **fields)
        self._write(updated)
        self._by_key[match_key(updated.phone_number)] = updated
        return updated

    def delete(self, sid: str) -> bool:
        """Remove a number: calls to it get a 404 from now on.  False for an unknown SID."""
        current = self.get(sid)
        if current is None:
            return False
        self._store.execute("DELETE FROM phone_numbers WHERE sid = ?", (sid,))
        self._by_key.pop(match_key(current.phone_number), None)
        log.info("number %s (%s) removed%s", current.phone_number, sid,
                 " (the config file brings it back at the next start)" if current.from_config else "")
        return True
