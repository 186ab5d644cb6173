"""The store's writes: the group commit and its WAL checkpoints, appended records, changed columns only."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from switch.core.status import CallStatus
from switch.core.store import Store
from tests.unit.test_store import make_call


def test_a_dict_changed_in_place_is_written(store: Store) -> None:
    """A later save skips the fields still holding the objects last written, but not a dict: it may have
    changed in place."""
    call = make_call(1, status=CallStatus.IN_PROGRESS, sip_params={"SipHeader_X-A": "1"})
    store.save_call(call)
    assert call.sip_params is not None
    call.sip_params["SipHeader_X-B"] = "2"
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    store.save_call(call)
    store._db.set_trace_callback(None)
    assert [s.split(" = ")[0] for s in statements] == ['UPDATE calls SET "sip_params"']
    again = store.get_call(call.sid)
    assert again is not None and again.sip_params == {"SipHeader_X-A": "1", "SipHeader_X-B": "2"}


async def test_the_loops_commits_leave_wal_checkpoints_to_another_thread(db_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import switch.core.store as store_module

    monkeypatch.setattr(store_module, "CHECKPOINT_SECONDS", 0.0)
    store = Store(db_path)
    ran: list[tuple[int, list[tuple[int, int, int]]]] = []

    def checkpoint() -> None:
        db = sqlite3.connect(db_path)
        try:
            ran.append((threading.get_ident(), db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()))
        finally:
            db.close()

    monkeypatch.setattr(store, "_checkpoint", checkpoint)
    try:
        assert store.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == store_module.AUTOCHECKPOINT_PAGES
        store.add_event("CA1", "sip", "INVITE received")
        assert ran == []  # not committed yet: nothing to copy
        store.commit()
        for _ in range(100):
            if ran and not store._checkpointing:
                break
            await asyncio.sleep(0.01)
        [(thread, [(busy, frames, copied)])] = ran
        assert thread != threading.get_ident() and busy == 0 and frames == copied > 0
    finally:
        store.close()


def _committed_events(db_path: Path) -> list[tuple[str, str]]:
    con = sqlite3.connect(db_path)
    try:
        return con.execute("SELECT call_sid, detail FROM call_events ORDER BY id").fetchall()
    finally:
        con.close()


async def test_appended_rows_go_in_together_at_the_commit_or_before_a_read(db_path: Path,
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    """In a loop, `append`ed rows wait in memory: one executemany per statement at the commit, each call's
    rows in the order they came; a read or a delete sees them first; a bad row is logged and the rest is
    committed."""
    store = Store(db_path)
    statements: list[str] = []
    try:
        store._db.set_trace_callback(statements.append)
        for n in range(3):
            store.add_event("CA1", "sip", f"one {n}")
            store.add_event("CA2", "sip", f"two {n}")
        store.save_call(make_call(1, status=CallStatus.RINGING))  # an INSERT elsewhere does not flush them
        assert not any("call_events" in s for s in statements)
        assert _committed_events(db_path) == []
        store.commit()
        assert sum("INSERT INTO call_events" in s for s in statements) == 6  # traced row by row, one executemany
        assert _committed_events(db_path) == [(sid, f"{word} {n}") for n in range(3)
                                              for sid, word in (("CA1", "one"), ("CA2", "two"))]
        store.add_event("CA1", "status", "completed")
        assert [e.detail for e in store.events("CA1")] == ["one 0", "one 1", "one 2", "completed"]  # a read
        store.add_event("CA2", "status", "completed")
        store.delete_call("CA2")  # a delete
        assert store.events("CA2") == []
        store.append("INSERT INTO call_events (call_sid, at, kind, detail) VALUES (?, ?, ?, ?)",
                     ("CA3", "2024-01-01", "sip", None))  # detail is NOT NULL
        store.add_event("CA3", "sip", "kept")
        with caplog.at_level("ERROR", logger="switch.core.store"):
            store.commit()
        assert "1 rows not stored" in caplog.text
        assert [e.detail for e in store.events("CA3")] == ["kept"]
    finally:
        store.close()


async def test_a_calls_saves_in_a_loop_wait_for_the_commit_as_one_write(db_path: Path) -> None:
    """In a loop, `save_call` keeps the call and writes it, as it is then, at the commit (a request leaving) or
    before a read: three saves of a group are one INSERT; a read sees the row; a deleted call's pending save is
    dropped; a call ended in the next group is one UPDATE."""
    store = Store(db_path)
    statements: list[str] = []
    try:
        store._db.set_trace_callback(statements.append)
        call, gone = make_call(1, status=CallStatus.QUEUED), make_call(2, status=CallStatus.QUEUED)
        store.save_call(call)
        store.save_call(gone)
        call.status = CallStatus.INITIATED
        store.save_call(call)
        call.status = CallStatus.RINGING
        store.save_call(call)
        assert not any("calls" in s for s in statements)
        store.delete_call(gone.sid)
        store.commit()
        assert [" ".join(s.split()[:3]) for s in statements if " calls" in s] == [
            "INSERT OR REPLACE", "DELETE FROM calls"]  # the deleted call's save never went in
        assert _committed_calls(db_path) == [(call.sid, "ringing")]
        statements.clear()
        call.status = CallStatus.IN_PROGRESS
        store.save_call(call)
        assert store.get_call(call.sid) == call  # the read wrote it first
        call.status = CallStatus.COMPLETED
        store.save_call(call)
        store.commit()
        assert [s.split(" = ")[0] for s in statements if "UPDATE" in s] == ['UPDATE calls SET "status"'] * 2
        assert _committed_calls(db_path) == [(call.sid, "completed")]
    finally:
        store.close()


def _committed_calls(db_path: Path) -> list[tuple[str, str]]:
    con = sqlite3.connect(db_path)
    try:
        return list(con.execute("SELECT sid, status FROM calls ORDER BY sid"))
    finally:
        con.close()


def test_without_a_loop_appended_rows_are_written_at_once(store: Store, db_path: Path) -> None:
    store.add_event("CA1", "sip", "INVITE received")
    assert _committed_events(db_path) == [("CA1", "INVITE received")]
