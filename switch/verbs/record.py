"""<Record> on a live call: beep, tap the caller's leg, stop on silence, a key, the length cap or hang-up.

Silence is judged from the recording itself: the worker appends 20 ms frames to the leg's raw file as they
arrive, and every `POLL` seconds the new bytes are read and their level measured, so no second audio path
is needed.  A caller who stays silent for `timeout` seconds (Twilio counts from the start) ends the take.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from switch.core.recordings import Recording
from switch.session.voice import LiveCall
from switch.verbs.base import Task, ensure_answered
from twiml import verbs
from twiml.control import CONTINUE, Outcome
from twiml.fetch import resolve

log = logging.getLogger("switch.record")

POLL = 0.1
SPEECH_RMS = 300.0  # about -40 dBFS on 16-bit audio


@dataclass(frozen=True)
class RecordResult:
    """What the action URL is told about a finished <Record>."""

    sid: str
    url: str
    duration: int
    digits: str

    def params(self) -> tuple[tuple[str, str], ...]:
        return (("RecordingUrl", self.url), ("RecordingSid", self.sid),
                ("RecordingDuration", str(self.duration)), ("Digits", self.digits))


class _Level:
    """Reads what the worker appended to a raw file since the last look and measures its level."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def loud(self) -> bool:
        try:
            with self.path.open("rb") as raw:
                raw.seek(self.offset)
                data = raw.read()
        except FileNotFoundError:
            return False
        usable = len(data) - len(data) % 2
        self.offset += usable
        if not usable:
            return False
        samples = np.frombuffer(data[:usable], dtype="<i2").astype(np.float64)
        return bool(np.sqrt(np.mean(samples * samples)) > SPEECH_RMS)


async def _take(live: LiveCall, verb: verbs.Record, rec: Recording) -> str:
    """Wait for the end of the take; returns the finishing digit ('' when none, 'hangup' on hang-up)."""
    level = _Level(live.engine.recordings.raw_path(rec.sid))
    digits = live.digits()
    started = last_sound = time.monotonic()
    while True:
        try:
            digit = await asyncio.wait_for(digits.get(), POLL)
        except TimeoutError:
            digit = None
        if digit is not None and digit in verb.finish_on_key:
            return digit
        now = time.monotonic()
        if level.loud():
            last_sound = now
        if now - started >= verb.max_length:
            return ""
        if verb.timeout and now - last_sound >= verb.timeout:
            return ""
        if live.call.terminal:
            return "hangup"


async def record(live: LiveCall, verb: verbs.Record, action: str | None,
                 document_url: str | None) -> RecordResult | None:
    recordings = live.engine.recordings
    if verb.play_beep:
        await live.play(await live.beep())
    queue = live.digits()
    while not queue.empty():
        queue.get_nowait()
    callback = resolve(document_url, verb.recording_status_callback) if verb.recording_status_callback else None
    rec = await recordings.start([live.call.sid], "RecordVerb", 1, verb.trim == "trim-silence", callback,
                                 verb.recording_status_callback_method, tuple(verb.recording_status_callback_event),
                                 live.call.sid)
    digit = ""
    try:
        digit = await _take(live, verb, rec)
    except asyncio.CancelledError:
        # Hang-up or redirect: finish the take in the background and still tell the action URL.
        async def finish() -> None:
            done = await recordings.stop(rec.sid)
            if action is not None and done.status == "completed":
                result = RecordResult(done.sid, recordings.media_url(done), done.duration or 0, "hangup")
                live.post_detached(action, verb.method, result.params())

        live.engine.background.spawn(finish(), live.call.sid)
        raise
    done = await recordings.stop(rec.sid)
    if done.status != "completed":
        return None
    return RecordResult(done.sid, recordings.media_url(done), done.duration or 0, digit)


class Record(Task[verbs.Record]):
    """`<Record action method timeout finishOnKey maxLength playBeep trim recordingStatusCallback*>`: beep
    (playBeep, default true), record the caller until `timeout` s of silence (default 5), a finishOnKey digit
    (default: any), `maxLength` s (default 3600) or hang-up; then request `action` (default: the current
    document) with RecordingUrl, RecordingSid, RecordingDuration and Digits.  Nothing recorded: go on with the
    next verb.  The recording status callback resolves against the current document."""

    verb = verbs.Record

    async def run(self, call: LiveCall) -> Outcome:
        await ensure_answered(call)
        action = resolve(self.document_url, self.v.action) if self.v.action else self.document_url
        result = await record(call, self.v, action, self.document_url)
        if result is None or action is None:
            return CONTINUE
        return Outcome(next_url=action, method=self.v.method, extra=result.params())
