"""Recordings in the store: neutral problems, and Twilio codes of older databases moved to them."""

from __future__ import annotations

from pathlib import Path

from switch.core.recording_model import Recording, RecordingProblem, RecordingStatus
from switch.core.recording_rows import COLUMNS, from_row, migrate, to_row
from switch.core.store import Store
from switch.dialects.twilio.callbacks import recording_error_code


def _save(store: Store, rec: Recording) -> None:
    columns = ", ".join(f'"{c}"' for c in COLUMNS)
    store.execute(f"INSERT INTO recordings ({columns}) VALUES ({', '.join('?' for _ in COLUMNS)})", to_row(rec))


def _load(store: Store, sid: str) -> Recording:
    return from_row(store.execute("SELECT * FROM recordings WHERE sid = ?", (sid,)).fetchone())


def test_a_problem_round_trips_and_twilio_names_it(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    migrate(store)
    rec = Recording("RE1", "AC1", "CA1", 1, "record", RecordingStatus.ABSENT, problem=RecordingProblem.SILENT)
    _save(store, rec)
    loaded = _load(store, "RE1")
    assert loaded.problem is RecordingProblem.SILENT
    assert recording_error_code(loaded) == 16102
    assert recording_error_code(Recording("RE2", "AC1", "CA1", 1, "call", RecordingStatus.COMPLETED)) is None


def test_an_older_table_with_twilio_codes_is_migrated(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    old = [c for c in COLUMNS if c != "problem"] + ["error_code"]
    store.executescript(f"CREATE TABLE recordings ({', '.join(repr(c) for c in old)});")
    for sid, code in (("RE1", 16101), ("RE2", 16102), ("RE3", None)):
        values = {c: None for c in old} | {"sid": sid, "account_sid": "AC1", "call_sid": "CA1", "channels": 1,
                                           "source": "RecordVerb", "status": "absent" if code else "completed",
                                           "date_created": "2026-12-05T10:00:00+00:00",
                                           "date_updated": "2026-12-05T10:00:00+00:00", "trim": 0, "legs": "",
                                           "status_callback_events": "completed", "track": "both",
                                           "status_callback_method": "POST", "error_code": code}
        store.execute(f"INSERT INTO recordings ({', '.join(repr(c) for c in old)}) VALUES "
                      f"({', '.join('?' for _ in old)})", [values[c] for c in old])
    migrate(store)
    assert [_load(store, s).problem for s in ("RE1", "RE2", "RE3")] == [
        RecordingProblem.NOTHING_CAPTURED, RecordingProblem.SILENT, None]
