"""Transcriptions of recordings (`<Record transcribe="true">`), and the recognizer speech input uses.

`Transcriptions` owns the configured `media.recognize.Recognizer` (`<Gather input="speech">` takes it from here
too) and the store's `transcriptions` table: one row per transcription, written `in-progress` before the
recognizer runs and again when it is `completed` or `failed`, so the REST resource shows it at once.  A
transcription that was running when the switch stopped is `failed` at the next start.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from media.audio import AudioError
from media.recognize import HttpRecognizer, RecognizeError, Recognizer, transcribe
from media.recognize_sphinx import SphinxRecognizer
from switch.core.config_speech import SpeechConfig
from switch.core.model import new_sid, utcnow
from switch.core.paging import Cursor, in_list_order, keyset_sql
from switch.core.recording_model import Recording
from switch.core.store import Store, to_column

log = logging.getLogger("switch.transcriptions")

Clock = Callable[[], dt.datetime]


class TranscriptionStatus(enum.StrEnum):
    """Twilio's transcription statuses."""

    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass
class Transcription:
    """One transcription of one recording."""

    sid: str
    account_sid: str
    recording_sid: str
    call_sid: str
    status: TranscriptionStatus
    text: str | None = None  # None until completed
    confidence: float | None = None
    duration: int | None = None  # seconds of the recording transcribed
    date_created: dt.datetime = field(default_factory=utcnow)
    date_updated: dt.datetime = field(default_factory=utcnow)


COLUMNS = [f.name for f in dataclasses.fields(Transcription)]
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS transcriptions ({", ".join(f'"{c}"' + (" TEXT PRIMARY KEY" if c == "sid" else "")
                                                     for c in COLUMNS)});
CREATE INDEX IF NOT EXISTS transcriptions_recording ON transcriptions (recording_sid);
CREATE INDEX IF NOT EXISTS transcriptions_created ON transcriptions (date_created);
"""


def make_recognizer(config: SpeechConfig) -> Recognizer:
    """The recognizer `[speech]` names: pocketsphinx (the default) or an HTTP transcription endpoint."""
    if config.engine == "http" and config.url:
        return HttpRecognizer(config.url, config.model, config.api_key, config.timeout)
    return SphinxRecognizer()


def _from_row(row: sqlite3.Row) -> Transcription:
    values: dict[str, Any] = {name: row[name] for name in COLUMNS}
    for name in ("date_created", "date_updated"):
        values[name] = dt.datetime.fromisoformat(values[name])
    values["status"] = TranscriptionStatus(values["status"])
    return Transcription(**values)


class Transcriptions:
    """Transcribes recordings with `recognizer` and keeps the results (see the module docstring)."""

    def __init__(self, store: Store, recognizer: Recognizer, account_sid: str,
                 url: Callable[[Transcription], str], clock: Clock = utcnow) -> None:
        self.store = store
        self._url = url
        self.recognizer = recognizer
        self.account_sid = account_sid
        self.clock = clock
        store.executescript(SCHEMA)
        self.recover()

    def url(self, item: Transcription) -> str:
        """Where the transcription's resource is: the URL the application's dialect builds (Twilio's)."""
        return self._url(item)

    def recover(self) -> int:
        """Transcriptions left `in-progress` by a switch that stopped are `failed`; how many."""
        cursor = self.store.execute(
            "UPDATE transcriptions SET status = ?, date_updated = ? WHERE status = ? AND account_sid = ?",
            (TranscriptionStatus.FAILED.value, to_column(self.clock()), TranscriptionStatus.IN_PROGRESS.value,
             self.account_sid))
        return cursor.rowcount

    def _save(self, item: Transcription) -> None:
        columns = ", ".join(f'"{c}"' for c in COLUMNS)
        marks = ", ".join("?" for _ in COLUMNS)
        self.store.execute(f"INSERT OR REPLACE INTO transcriptions ({columns}) VALUES ({marks})",
                           [to_column(getattr(item, name)) for name in COLUMNS])

    def begin(self, recording: Recording) -> Transcription:
        """A new `in-progress` transcription of a completed recording."""
        item = Transcription(new_sid("TR"), self.account_sid, recording.sid, recording.call_sid,
                             TranscriptionStatus.IN_PROGRESS, duration=recording.duration)
        item.date_created = item.date_updated = self.clock()
        self._save(item)
        return item

    async def run(self, item: Transcription, wav: Path) -> Transcription:
        """Recognize `wav` for `item`: `completed` with its text, or `failed` (logged)."""
        try:
            result = await transcribe(self.recognizer, wav)
        except (RecognizeError, AudioError, OSError) as exc:
            log.warning("%s: transcription %s of %s failed: %s", item.call_sid, item.sid, item.recording_sid, exc)
            item.status = TranscriptionStatus.FAILED
        else:
            item.status = TranscriptionStatus.COMPLETED
            item.text, item.confidence = result.text, result.confidence
        item.date_updated = self.clock()
        self._save(item)
        log.info("%s: transcription %s %s", item.call_sid, item.sid, item.status)
        return dataclasses.replace(item)

    def get(self, sid: str) -> Transcription | None:
        row = self.store.execute("SELECT * FROM transcriptions WHERE sid = ?", (sid,)).fetchone()
        if row is None or row["account_sid"] != self.account_sid:
            return None
        return _from_row(row)

    def list(self, recording_sid: str | None, offset: int, limit: int,
             cursor: Cursor | None = None) -> list[Transcription]:
        """Newest first (a recording's, or the account's), `limit` at most, from `offset` or the cursor."""
        where, args = ["account_sid = ?"], [self.account_sid]
        if recording_sid is not None:
            where.append("recording_sid = ?")
            args.append(recording_sid)
        condition, keys, order = keyset_sql(cursor, descending=True)
        if condition is not None:
            where.append(condition)
            args += keys
            offset = 0
        rows = self.store.execute(
            f"SELECT * FROM transcriptions WHERE {' AND '.join(where)} ORDER BY {order} LIMIT ? OFFSET ?",
            [*args, limit, offset]).fetchall()
        return [_from_row(row) for row in in_list_order(rows, cursor)]

    def delete(self, sid: str) -> bool:
        """Delete a transcription; False when there is none."""
        return self.store.execute("DELETE FROM transcriptions WHERE sid = ? AND account_sid = ?",
                                  (sid, self.account_sid)).rowcount > 0
