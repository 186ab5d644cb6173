"""<Record> on a live call: beep, tap the caller's leg, stop on silence, a key, the length cap or hang-up.

Silence is judged by the worker, which sees every frame of the tap: the recording is started with `LEVEL_MS`,
and the worker reports the caller's level (`TapLevel`) that often.  A caller who stays silent for `timeout`
seconds (Twilio counts from the start) ends the take.  The take's timers read an injected clock (the event
loop's by default), so a test drives them without sleeping.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from switch.core.recording_model import Recording, RecordingSource
from switch.core.transcriptions import TranscriptionStatus
from switch.session.voice import LiveCall
from switch.verbs.base import Task, ensure_answered
from switch.verbs.gather_speech import post_callback
from twiml import verbs
from twiml.control import CONTINUE, Outcome
from twiml.fetch import resolve

log = logging.getLogger("switch.record")

LEVEL_MS = 100  # how often the worker reports the caller's level during a take
SPEECH_RMS = 300.0  # about -40 dBFS on 16-bit audio
TRANSCRIBE_UNAVAILABLE = 12200  # transcribe="true" without a recognizer: a warning on the call

Clock = Callable[[], float]  # seconds, monotonic


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


async def _take(live: LiveCall, verb: verbs.Record, levels: asyncio.Queue[float | None], clock: Clock) -> str:
    """Wait for the end of the take; returns the finishing digit ('' when none, 'hangup' on hang-up).

    It ends at a `finishOnKey` digit, after `maxLength` s, after `timeout` s without a level above SPEECH_RMS,
    or when the tap ends (None on `levels`: the call hung up, or the recording failed)."""
    digits = live.digits()
    started = last_sound = clock()
    digit_task: asyncio.Task[str] | None = None
    level_task: asyncio.Task[float | None] | None = None
    try:
        while not live.call.terminal:
            now = clock()
            deadline = started + verb.max_length
            if verb.timeout:
                deadline = min(deadline, last_sound + verb.timeout)
            if now >= deadline:
                return ""
            digit_task = digit_task or asyncio.ensure_future(digits.get())
            level_task = level_task or asyncio.ensure_future(levels.get())
            await asyncio.wait((digit_task, level_task), timeout=deadline - now,
                               return_when=asyncio.FIRST_COMPLETED)
            if digit_task.done():
                digit, digit_task = digit_task.result(), None
                if digit in verb.finish_on_key:
                    return digit
            if level_task.done():
                level, level_task = level_task.result(), None
                if level is None:  # the tap ended
                    return "hangup" if live.call.terminal else ""
                if level > SPEECH_RMS:
                    last_sound = clock()
        return "hangup"
    finally:
        for task in (digit_task, level_task):
            if task is not None:
                task.cancel()


async def record(live: LiveCall, verb: verbs.Record, action: str | None, document_url: str | None,
                 clock: Clock | None = None) -> RecordResult | None:
    recordings = live.engine.recordings
    if verb.play_beep:
        await live.play(await live.beep())
    queue = live.digits()
    while not queue.empty():
        queue.get_nowait()
    callback = resolve(document_url, verb.recording_status_callback) if verb.recording_status_callback else None
    rec = await recordings.start([live.call.sid], RecordingSource.RECORD, 1, verb.trim == "trim-silence", callback,
                                 verb.recording_status_callback_method, tuple(verb.recording_status_callback_event),
                                 live.call.sid, level_ms=LEVEL_MS)
    digit = ""
    try:
        digit = await _take(live, verb, recordings.levels(rec.sid), clock or asyncio.get_running_loop().time)
    except asyncio.CancelledError:
        # Hang-up or redirect: finish the take in the background and still tell the action URL.
        async def finish() -> None:
            done = await recordings.stop(rec.sid)
            if done.status == "completed" and verb.transcribe:
                transcribe(live, verb, done, document_url)
            if action is not None and done.status == "completed":
                result = RecordResult(done.sid, recordings.media_url(done), done.duration or 0, "hangup")
                live.post_detached(action, verb.method, result.params())

        live.engine.background.spawn(finish(), live.call.sid)
        raise
    done = await recordings.stop(rec.sid)
    if done.status != "completed":
        return None
    if verb.transcribe:
        transcribe(live, verb, done, document_url)
    return RecordResult(done.sid, recordings.media_url(done), done.duration or 0, digit)


def transcribe(live: LiveCall, verb: verbs.Record, done: Recording, document_url: str | None) -> None:
    """Transcribe a completed recording in the background (`transcribe="true"`); tell `transcribeCallback`
    (resolved against the current document) TranscriptionSid, TranscriptionText, TranscriptionStatus
    (`completed` or `failed`), TranscriptionUrl, RecordingSid and RecordingUrl."""
    transcriptions = live.engine.transcriptions
    if transcriptions is None:
        live.notify(TRANSCRIBE_UNAVAILABLE, f"<Record transcribe>: no recognizer; {done.sid} is not transcribed",
                    warning=True)
        return
    item = transcriptions.begin(done)
    callback = resolve(document_url, verb.transcribe_callback) if verb.transcribe_callback else None
    recording_url = live.engine.recordings.media_url(done)
    wav = live.engine.recordings.wav_path(done.sid)

    async def run() -> None:
        finished = await transcriptions.run(item, wav)
        if callback is None:
            return
        status = "completed" if finished.status is TranscriptionStatus.COMPLETED else "failed"
        await post_callback(live, callback, "POST", [
            ("TranscriptionSid", finished.sid), ("TranscriptionText", finished.text or ""),
            ("TranscriptionStatus", status), ("TranscriptionUrl", transcriptions.url(finished)),
            ("RecordingSid", done.sid), ("RecordingUrl", recording_url)], "transcribeCallback")

    live.engine.background.spawn(run(), live.call.sid)


class Record(Task[verbs.Record]):
    """`<Record action method timeout finishOnKey maxLength playBeep trim recordingStatusCallback*>`: beep
    (playBeep, default true), record the caller until `timeout` s of silence (default 5), a finishOnKey digit
    (default: any), `maxLength` s (default 3600) or hang-up; then request `action` (default: the current
    document) with RecordingUrl, RecordingSid, RecordingDuration and Digits.  Nothing recorded: go on with the
    next verb.  The recording status callback resolves against the current document.  `transcribe` (default
    false; implied by `transcribeCallback`) transcribes the recording in the background with the configured
    recognizer (the Transcriptions resource under the recording) and tells `transcribeCallback` (POST)."""

    verb = verbs.Record

    async def run(self, call: LiveCall) -> Outcome:
        await ensure_answered(call)
        action = resolve(self.document_url, self.v.action) if self.v.action else self.document_url
        result = await record(call, self.v, action, self.document_url)
        if result is None or action is None:
            return CONTINUE
        return Outcome(next_url=action, method=self.v.method, extra=result.params())
