"""Recordings as rows of the store's `recordings` table: one column per `Recording` field.

Databases written before recordings said why they were absent in neutral terms hold Twilio's codes in an
`error_code` column; `migrate` moves them to `problem` (16101: nothing captured, 16102: silent).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3
from typing import Any

from switch.core.recording_model import Recording, RecordingProblem, RecordingStatus
from switch.core.store import Store, to_column

COLUMNS = [f.name for f in dataclasses.fields(Recording)]
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS recordings ({", ".join(f'"{c}"' + (" TEXT PRIMARY KEY" if c == "sid" else "")
                                                 for c in COLUMNS)});
CREATE INDEX IF NOT EXISTS recordings_call ON recordings (call_sid);
CREATE INDEX IF NOT EXISTS recordings_created ON recordings (date_created);
"""


def to_row(rec: Recording) -> list[Any]:
    """Columns follow `Recording` field for field (`switch.core.store.to_column`)."""
    return [to_column(getattr(rec, name)) for name in COLUMNS]


def from_row(row: sqlite3.Row) -> Recording:
    values = {name: row[name] for name in COLUMNS}
    for name in ("date_created", "date_updated", "start_time"):
        if values[name] is not None:
            values[name] = dt.datetime.fromisoformat(values[name])
    for name in ("legs", "status_callback_events"):
        values[name] = tuple(values[name].split())
    values["status"] = RecordingStatus(values["status"])
    values["problem"] = None if values["problem"] is None else RecordingProblem(values["problem"])
    values["trim"] = bool(values["trim"])
    return Recording(**values)


def migrate(store: Store) -> None:
    """Create the table, and give an older one its `problem` column."""
    store.executescript(SCHEMA)
    present = {row["name"] for row in store.execute("PRAGMA table_info(recordings)")}
    if "problem" not in present:
        store.executescript(
            'ALTER TABLE recordings ADD COLUMN "problem";'
            "UPDATE recordings SET problem = CASE error_code WHEN 16101 THEN 'nothing-captured' "
            "WHEN 16102 THEN 'silent' END;")
