"""SQLite (WAL) store in the data dir: accounts, calls, call events and webhooks.

Calls are written on every change, so the store is the record that survives a crash; the call manager keeps
live calls in memory for speed and writes through.  Columns of `calls` follow `switch.core.model.Call` field for
field, converted by `_to_row`/`_from_row`, so a new field needs no hand-written SQL.

`webhooks` is the one record of what was sent: every webhook, keyed by the call it is about, its URL and the
event it reports (`event`, in the words of the dialect that rendered it).  It answers "was this already sent to
this URL?" (`webhook_sent`) and "how many went to this URL?" (`count_webhooks`, Twilio's SequenceNumber), and
keeps the pending ones for the next start.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import enum
import json
import logging
import operator
import sqlite3
import threading
import time
import typing
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from switch.core.model import Call, CallbackEvent, Direction
from switch.core.paging import Cursor, in_list_order, keyset_sql, stored_time
from switch.core.service import CallFilter
from switch.core.status import TERMINAL, CallStatus

log = logging.getLogger("switch.core.store")

_CALL_FIELDS = [f.name for f in dataclasses.fields(Call)]
_CALL_HINTS = typing.get_type_hints(Call)
_CALL_COLUMNS = ", ".join(f'"{name}"' for name in _CALL_FIELDS)  # quoted: "to" is an SQL keyword
_SAVE_CALL = f"INSERT OR REPLACE INTO calls ({_CALL_COLUMNS}) VALUES ({', '.join('?' * len(_CALL_FIELDS))})"

COMMIT_DELAY = 0.1  # seconds from a transaction's first write to its commit, at most (see `Store`)
CHECKPOINT_SECONDS = 1.0  # between WAL checkpoints off the loop
AUTOCHECKPOINT_PAGES = 10_000  # SQLite's own (inline) checkpoint, a safety net: ~40 MB of WAL

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS accounts (
    sid TEXT PRIMARY KEY, auth_token TEXT NOT NULL, date_created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS calls ({", ".join(f'"{name}"' + (" TEXT PRIMARY KEY" if name == "sid" else "")
                                             for name in _CALL_FIELDS)});
CREATE INDEX IF NOT EXISTS calls_created ON calls (date_created);
CREATE INDEX IF NOT EXISTS calls_parent ON calls (parent_call_sid);
CREATE TABLE IF NOT EXISTS call_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, call_sid TEXT NOT NULL, at TEXT NOT NULL,
    kind TEXT NOT NULL, detail TEXT NOT NULL, sip_code INTEGER
);
CREATE INDEX IF NOT EXISTS call_events_sid ON call_events (call_sid);
CREATE TABLE IF NOT EXISTS webhooks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, call_sid TEXT NOT NULL, url TEXT NOT NULL, method TEXT NOT NULL,
    params TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT, created TEXT NOT NULL, delivered TEXT,
    body_format TEXT NOT NULL DEFAULT 'form', retries INTEGER, event TEXT
);
CREATE INDEX IF NOT EXISTS webhooks_pending ON webhooks (state, call_sid);
CREATE INDEX IF NOT EXISTS webhooks_sent ON webhooks (call_sid, url);
"""
# Columns added to `webhooks` after databases existed: (name, definition) for `ALTER TABLE ... ADD COLUMN`.
_WEBHOOK_COLUMNS = (("body_format", "TEXT NOT NULL DEFAULT 'form'"), ("retries", "INTEGER"), ("event", "TEXT"))


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


_PLAIN = frozenset({str, int, float, bool, bytes})


def to_column(value: Any) -> Any:
    """A dataclass field as an SQLite value: datetimes as ISO text, sets (sorted) and tuples as space-separated
    words, enums as their value; the rest as it is."""
    if value is None or type(value) in _PLAIN:  # most fields, first: a row is written at every status change
        return value
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, frozenset):
        return " ".join(sorted(str(v) for v in value))
    if isinstance(value, tuple):
        return " ".join(str(v) for v in value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return value


_CALL_VALUES = operator.attrgetter(*_CALL_FIELDS)


def _to_row(values: tuple[Any, ...]) -> list[Any]:
    """A call's row from its field values (`_CALL_VALUES`).  Most fields are plain: they skip the call to
    `to_column` (a row is built at every status change of every call)."""
    return [v if v is None or type(v) in _PLAIN else to_column(v) for v in values]


def _from_row(row: sqlite3.Row) -> Call:
    values: dict[str, Any] = {}
    for name in _CALL_FIELDS:
        value = row[name]
        hint = str(_CALL_HINTS[name])
        if value is not None:
            if "datetime" in hint:
                value = dt.datetime.fromisoformat(value)
            elif "frozenset" in hint:
                value = frozenset(CallbackEvent(v) for v in value.split())
            elif "tuple" in hint:
                value = tuple(value.split())
            elif hint == "<class 'bool'>":
                value = bool(value)
            elif hint.startswith("dict"):
                value = json.loads(value)
            elif name == "status":
                value = CallStatus(value)
            elif name == "direction":
                value = Direction(value)
        values[name] = value
    return Call(**values)


@dataclass(frozen=True)
class PendingWebhook:
    """A webhook to deliver.  `body_format` is "form" (Twilio's), "multipart" (`params` as multipart/form-data)
    or "json" (`document` as the body, `params` empty); `retries` overrides the dispatcher's when set."""

    id: int
    call_sid: str
    url: str
    method: str
    params: list[tuple[str, str]]
    attempts: int
    body_format: str = "form"
    retries: int | None = None
    document: dict[str, Any] | None = None


@dataclass(frozen=True)
class CallEvent:
    call_sid: str
    at: dt.datetime
    kind: str  # "sip" or "status" or "error"
    detail: str
    sip_code: int | None


class Store:
    """Thread-safe access to the SQLite database (the control plane uses it from its event loop).

    Group commit: a write made on a thread that runs an event loop opens a transaction that is committed
    `COMMIT_DELAY` s later, so the many small writes of a burst of events (calls' rows, their SIP events, their
    webhooks) share one commit, and the pages they touch are written once.  Anything that shows the outside
    world what the store holds commits first (`commit`): a webhook or TwiML request before it goes out
    (`switch.core.http_client.HttpTransport`'s `before`), an HTTP response before its headers (app.py).  So a
    crash loses at most the writes of the last `COMMIT_DELAY` s that nobody was told of.  The same connection
    reads its own writes at once.  Writes from other threads commit as they go.

    A live call's row is written whole once and then by UPDATEs of the columns that changed (the row last
    written is kept until the call ends): an INSERT OR REPLACE would delete and re-insert it, index entries and
    all, at every status change.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._path = path
        self._lock = threading.Lock()
        self._checkpoint_at = 0.0  # monotonic time of the last checkpoint started off the loop
        self._checkpointing = False
        self._commit_timer: asyncio.TimerHandle | None = None  # the group's commit at the latest
        self._call_tables: list[str] = []  # other modules' tables of per-call rows (`call_sid`), deleted with it
        # a live call's fields and row as last written (see the class doc)
        self._rows: dict[str, tuple[tuple[Any, ...], list[Any]]] = {}
        self._appended: dict[str, list[tuple[Any, ...]]] = {}  # `append`'s rows not in the database yet, by SQL
        self._unsaved: dict[str, Call] = {}  # calls whose `save_call` waits for the group's commit (or a read)
        self.writes = 0  # statements that wrote (INSERT, UPDATE, DELETE, ...) since start-up: /healthz, the bench
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            # The loop's commits leave checkpoints (the only fsyncs) to a thread (`_checkpoint_soon`); SQLite's own,
            # inline in a commit, is kept for writes made without a loop, and for a WAL grown past ~40 MB.
            self._db.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
            self._db.executescript(_SCHEMA)
            present = {row["name"] for row in self._db.execute("PRAGMA table_info(webhooks)")}
            for name, definition in _WEBHOOK_COLUMNS:  # a database from before the column existed
                if name not in present:
                    self._db.execute(f"ALTER TABLE webhooks ADD COLUMN {name} {definition}")
            columns = {row["name"] for row in self._db.execute("PRAGMA table_info(calls)")}
            for name in _CALL_FIELDS:  # a Call field newer than the database (media_quality)
                if name not in columns:
                    self._db.execute(f'ALTER TABLE calls ADD COLUMN "{name}"')

    def close(self) -> None:
        self.commit()
        with self._lock:
            self._db.close()

    def _execute(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> sqlite3.Cursor:
        with self._lock:
            verb = sql.lstrip()[:6].upper()
            if (self._appended or self._unsaved) and verb not in ("INSERT", "UPDATE"):
                self._flush_appended()  # a read or a delete sees every row appended and every call saved
            if verb not in ("SELECT", "PRAGMA"):
                self.writes += 1
                if not self._db.in_transaction:
                    self._begin_group()
            return self._db.execute(sql, args)

    def append(self, sql: str, args: tuple[Any, ...]) -> None:
        """An INSERT into a table of records nobody updates and whose row id nobody needs (call events, HTTP
        exchanges, SIP traces).  With a loop running, the row waits in memory for the group's commit, or for
        the next read or delete, whichever comes first, and goes in with the others of its statement in one
        `executemany`: a call's events cost one statement per commit instead of one each."""
        with self._lock:
            if not self._grouped():  # no loop on this thread: as it comes
                self.writes += 1
                self._db.execute(sql, args)
                return
            self._appended.setdefault(sql, []).append(args)

    def _grouped(self) -> bool:
        """Whether a group's transaction is open, opening one if a loop runs on this thread (lock held)."""
        if not self._db.in_transaction:
            self._begin_group()
        return self._db.in_transaction

    def _flush_appended(self) -> None:
        """Write the calls `save_call` kept and the rows `append` kept (lock held), each statement's rows in the
        order they came."""
        unsaved, self._unsaved = self._unsaved, {}
        for call in unsaved.values():
            try:
                self._write_call(call, self._written)
            except sqlite3.Error as exc:  # as for a bad appended row: it must not fail an unrelated commit
                log.error("call %s not stored: %s", call.sid, exc)
        appended, self._appended = self._appended, {}
        for sql, rows in appended.items():
            self.writes += len(rows)
            try:
                self._db.executemany(sql, rows)
            except sqlite3.Error as exc:  # a bad row is the appender's bug: it must not fail an unrelated commit
                log.error("%d rows not stored (%s): %s", len(rows), exc, sql[:60])

    def _begin_group(self) -> None:
        """Open a transaction committed at the running loop's next turn (lock held; none running: no-op)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._db.execute("BEGIN")
        self._commit_timer = loop.call_later(COMMIT_DELAY, self.commit)

    def commit(self) -> None:
        """Commit the writes made so far (see the class doc for when)."""
        with self._lock:
            if self._appended or self._unsaved:
                self._flush_appended()
            if not self._db.in_transaction:
                return
            self._db.execute("COMMIT")
            if self._commit_timer is not None:  # committed early (something is about to leave): not again
                self._commit_timer.cancel()
                self._commit_timer = None
        self._checkpoint_soon()

    def _checkpoint_soon(self) -> None:
        """At most every CHECKPOINT_SECONDS, copy the WAL into the database in the loop's executor, on a
        connection of its own: the fsync never stalls the loop (PASSIVE: it never blocks a writer either)."""
        now = time.monotonic()
        if self._checkpointing or now - self._checkpoint_at < CHECKPOINT_SECONDS:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # SQLite's own checkpoint covers commits made without a loop
        self._checkpointing, self._checkpoint_at = True, now
        loop.run_in_executor(None, self._checkpoint).add_done_callback(self._checkpointed)

    def _checkpoint(self) -> None:
        db = sqlite3.connect(self._path, timeout=1.0)
        try:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            db.close()

    def _checkpointed(self, done: asyncio.Future[None]) -> None:
        self._checkpointing = False
        if not done.cancelled() and done.exception() is not None:
            log.warning("WAL checkpoint failed: %s", done.exception())

    def execute(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> sqlite3.Cursor:
        """One statement, for modules that keep their own tables (numbers, recordings, notifications)."""
        return self._execute(sql, args)

    def executescript(self, script: str) -> None:
        with self._lock:
            self._db.executescript(script)

    # -- accounts -----------------------------------------------------------------------------
    def ensure_account(self, sid: str, auth_token: str) -> None:
        self._execute(
            "INSERT INTO accounts (sid, auth_token, date_created) VALUES (?, ?, ?) "
            "ON CONFLICT(sid) DO UPDATE SET auth_token = excluded.auth_token",
            (sid, auth_token, dt.datetime.now(dt.UTC).isoformat()),
        )

    # -- calls --------------------------------------------------------------------------------
    def save_call(self, call: Call) -> None:
        """Write the call's row: whole the first time, then only the columns that changed (class doc).

        With a loop running, as `append` does, the row is written when the group commits, or before the next read
        or delete, whichever comes first, as the call is then (a request that reports the call commits first, so
        the row is on disk before it leaves); several saves in a group are one write."""
        with self._lock:
            if self._grouped():
                self._unsaved[call.sid] = call
                return
        self._write_call(call, self._execute)  # no loop on this thread: as it comes

    def _written(self, sql: str, args: tuple[Any, ...] | list[Any]) -> sqlite3.Cursor:
        """One write in the open transaction (lock held)."""
        self.writes += 1
        return self._db.execute(sql, args)

    def _write_call(self, call: Call, execute: Callable[[str, tuple[Any, ...] | list[Any]], sqlite3.Cursor]) -> None:
        values = _CALL_VALUES(call)
        before = self._rows.get(call.sid)
        if before is None:
            row = _to_row(values)
            execute(_SAVE_CALL, row)
        else:  # a field still holding the object last written is unchanged (a dict may change in place)
            old_values, old_row = before
            row = list(old_row)
            changed = []
            for i, value in enumerate(values):
                if value is old_values[i] and type(value) is not dict:
                    continue
                column = value if value is None or type(value) in _PLAIN else to_column(value)
                if column != row[i]:
                    row[i] = column
                    changed.append(i)
            if changed:
                assignments = ", ".join(f'"{_CALL_FIELDS[i]}" = ?' for i in changed)
                execute(f"UPDATE calls SET {assignments} WHERE sid = ?", [*(row[i] for i in changed), call.sid])
        if call.status in TERMINAL:
            self._rows.pop(call.sid, None)
        else:
            self._rows[call.sid] = (values, row)

    def get_call(self, sid: str) -> Call | None:
        row = self._execute("SELECT * FROM calls WHERE sid = ?", (sid,)).fetchone()
        return None if row is None else _from_row(row)

    def delete_call(self, sid: str) -> None:
        with self._lock:
            self._unsaved.pop(sid, None)
        self._rows.pop(sid, None)
        self._execute("DELETE FROM calls WHERE sid = ?", (sid,))
        self._execute("DELETE FROM call_events WHERE call_sid = ?", (sid,))
        for table in self._call_tables:
            self._execute(f"DELETE FROM {table} WHERE call_sid = ?", (sid,))

    def delete_with_calls(self, table: str) -> None:
        """Delete `table`'s rows of a call (its `call_sid` column) when the call is deleted."""
        if table not in self._call_tables:
            self._call_tables.append(table)

    def list_calls(self, account_sid: str, flt: CallFilter, offset: int, limit: int,
                   cursor: Cursor | None = None) -> list[Call]:
        """Newest first, `limit` at most: after `offset` rows, or on the `cursor`'s side of its key."""
        where = ["account_sid = ?"]
        args: list[Any] = [account_sid]
        for column, value in (("to", flt.to), ("from_", flt.from_), ("parent_call_sid", flt.parent_call_sid)):
            if value is not None:
                where.append(f'"{column}" = ?')
                args.append(value)
        if flt.status is not None:
            where.append("status = ?")
            args.append(str(flt.status))
        # Times are stored as ISO text in UTC, so text comparison is time order (see `paging.stored_time`).
        for column, op, bound in (
            ("start_time", ">=", flt.start_time_after), ("start_time", "<", flt.start_time_before),
            ("end_time", ">=", flt.end_time_after), ("end_time", "<", flt.end_time_before),
        ):
            if bound is not None:
                where.append(f"{column} {op} ?")
                args.append(stored_time(bound))
        condition, keys, order = keyset_sql(cursor, descending=True)
        if condition is not None:
            where.append(condition)
            args += keys
            offset = 0
        sql = f"SELECT * FROM calls WHERE {' AND '.join(where)} ORDER BY {order} LIMIT ? OFFSET ?"
        rows = self._execute(sql, [*args, limit, offset]).fetchall()
        return [_from_row(r) for r in in_list_order(rows, cursor)]

    def live_calls(self) -> list[Call]:
        marks = ", ".join("?" for _ in TERMINAL)
        rows = self._execute(
            f"SELECT * FROM calls WHERE status NOT IN ({marks}) ORDER BY date_created", [str(s) for s in TERMINAL]
        ).fetchall()
        return [_from_row(r) for r in rows]

    # -- call events --------------------------------------------------------------------------
    def add_event(self, call_sid: str, kind: str, detail: str, sip_code: int | None = None) -> None:
        self.append(
            "INSERT INTO call_events (call_sid, at, kind, detail, sip_code) VALUES (?, ?, ?, ?, ?)",
            (call_sid, dt.datetime.now(dt.UTC).isoformat(), kind, detail, sip_code),
        )

    def events(self, call_sid: str) -> list[CallEvent]:
        rows = self._execute(
            "SELECT * FROM call_events WHERE call_sid = ? ORDER BY id", (call_sid,)
        ).fetchall()
        return [CallEvent(r["call_sid"], dt.datetime.fromisoformat(r["at"]), r["kind"], r["detail"], r["sip_code"])
                for r in rows]

    # -- webhooks -----------------------------------------------------------------------------
    def add_webhook(self, call_sid: str, url: str, method: str, params: list[tuple[str, str]],
                    body_format: str = "form", retries: int | None = None,
                    document: dict[str, Any] | None = None, event: str | None = None) -> int:
        """Persist a pending webhook; a "json" one keeps its `document` where the others keep `params`.

        `event` names what it reports (`webhook_sent` finds it again)."""
        payload = document if body_format == "json" else params
        cur = self._execute(
            "INSERT INTO webhooks (call_sid, url, method, params, created, body_format, retries, event) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (call_sid, url, method, msgspec.json.encode(payload).decode(), dt.datetime.now(dt.UTC).isoformat(),
             body_format, retries, event),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def webhook_done(self, hook_id: int, delivered: bool, attempts: int, error: str | None) -> None:
        self._execute(
            "UPDATE webhooks SET state = ?, attempts = ?, last_error = ?, delivered = ? WHERE id = ?",
            ("delivered" if delivered else "failed", attempts, error,
             dt.datetime.now(dt.UTC).isoformat() if delivered else None, hook_id),
        )

    def pending_webhooks(self) -> Iterator[PendingWebhook]:
        rows = self._execute("SELECT * FROM webhooks WHERE state = 'pending' ORDER BY id").fetchall()
        for r in rows:
            payload = json.loads(r["params"])
            if r["body_format"] == "json":
                yield PendingWebhook(r["id"], r["call_sid"], r["url"], r["method"], [], r["attempts"], "json",
                                     r["retries"], payload)
                continue
            params = [(str(k), str(v)) for k, v in payload]
            yield PendingWebhook(r["id"], r["call_sid"], r["url"], r["method"], params, r["attempts"],
                                 r["body_format"], r["retries"])

    def count_webhooks(self, call_sid: str, url: str | None, events: Collection[str] | None = None) -> int:
        """How many webhooks about `call_sid` went (or are going) to `url` (None: to any URL), whatever they
        report, or only those reporting one of `events`."""
        where, args = ["call_sid = ?"], [call_sid]
        if url is not None:
            where.append("url = ?")
            args.append(url)
        if events is not None:
            where.append(f"event IN ({', '.join('?' * len(events))})")
            args += events
        row = self._execute(f"SELECT COUNT(*) FROM webhooks WHERE {' AND '.join(where)}", args).fetchone()
        return int(row[0])

    def webhook_targets(self, call_sid: str) -> list[tuple[str, str | None]]:
        """(URL, event) of every webhook about `call_sid`, oldest first."""
        rows = self._execute("SELECT url, event FROM webhooks WHERE call_sid = ? ORDER BY id", (call_sid,))
        return [(str(url), event) for url, event in rows.fetchall()]

    def webhook_sent(self, call_sid: str, url: str, event: str) -> bool:
        """Whether a webhook about `call_sid` reporting `event` went (or is going) to `url`."""
        row = self._execute(
            "SELECT 1 FROM webhooks WHERE call_sid = ? AND url = ? AND event = ? LIMIT 1", (call_sid, url, event)
        ).fetchone()
        return row is not None
