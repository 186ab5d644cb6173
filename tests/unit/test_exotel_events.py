"""The Exotel dialect reads the core's call events through the one status table, and keeps no "sent" list."""

from __future__ import annotations

from pathlib import Path

from switch.core.model import event_for_status
from switch.core.status import CallStatus
from switch.core.store import Store
from switch.dialects.exotel.connect import SCHEMA, migrate_store
from switch.dialects.exotel.render import LEG_EVENTS, PASSTHRU_EVENTS, Event, Passthru


def test_leg_and_passthru_events_come_from_the_one_status_table() -> None:
    def leg(status: CallStatus) -> Event | None:
        event = event_for_status(status)
        return None if event is None else LEG_EVENTS.get(event)

    def agent(status: CallStatus) -> Passthru | None:
        event = event_for_status(status)
        return None if event is None else PASSTHRU_EVENTS.get(event)

    terminal = {s: Event.TERMINAL for s in CallStatus if s.terminal}
    assert {s: leg(s) for s in CallStatus} == {
        CallStatus.QUEUED: None, CallStatus.INITIATED: None, CallStatus.RINGING: Event.RINGING,
        CallStatus.IN_PROGRESS: Event.ANSWERED, **terminal}
    assert {s: agent(s) for s in CallStatus} == {
        CallStatus.QUEUED: None, CallStatus.INITIATED: None, CallStatus.RINGING: Passthru.RINGING,
        CallStatus.IN_PROGRESS: Passthru.ANSWERED, **{s: Passthru.TERMINAL for s in terminal}}


def test_a_database_with_the_old_sent_list_keeps_which_calls_are_finished(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    try:
        store.executescript("CREATE TABLE exotel_calls (sid TEXT PRIMARY KEY, request TEXT NOT NULL, child_sid TEXT, "
                            "ringing_at TEXT NOT NULL, sent TEXT NOT NULL);")
        for sid, sent in (("CA1", "answered:1 ringing:1 terminal"), ("CA2", "ringing:1"), ("CA3", ""),
                          ("CA4", "terminal")):
            store.execute("INSERT INTO exotel_calls VALUES (?, '{}', NULL, '{}', ?)", (sid, sent))
        store.executescript(SCHEMA)  # what the edge runs first: the old table stays as it is
        migrate_store(store)
        migrate_store(store)  # and again at the next start: nothing left to do
        rows = store.execute("SELECT * FROM exotel_calls ORDER BY sid").fetchall()
        assert [(r["sid"], r["finished"]) for r in rows] == [("CA1", 1), ("CA2", 0), ("CA3", 0), ("CA4", 1)]
        columns = [c["name"] for c in store.execute("PRAGMA table_info(exotel_calls)")]
        assert columns == ["sid", "request", "child_sid", "ringing_at", "finished"]
    finally:
        store.close()
