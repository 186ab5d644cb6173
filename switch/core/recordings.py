"""Call recordings: the Recording resource, its life cycle, its status callbacks and its finished files.

A recording taps call legs in their media worker (`CallMedia.start_recording`), which writes sample-aligned
raw files `<data_dir>/recordings/<RE sid>.leg0.raw` (and `.leg1.raw`) progressively while the call goes on.
Stopping it -- by REST, or because its call ended, including a call that ended because its worker died --
turns whatever reached the disk into `<sid>.wav` in a thread (`media.recording.finalize`), so a crash loses
only the last frame.  A recording that captured nothing ends `absent` with its problem: `nothing-captured` when no
audio was captured at all, `silent` when trimming silence left nothing.

The life cycle is one table, `recording_model.NEXT_STATUS`; every change goes through `RecordingManager._set_status`::

    in-progress <--> paused          (REST Status=paused / in-progress)
         |  \\        /  |
         |   stopped    |            (REST Status=stopped)
         v      |       v
         processing <---+            (the raw files are being turned into the final file)
           |        |
       completed  absent

Every status change, and the tap's start, is a call event (`RecordingStatusChanged`, `RecordingStarted`) on
the call manager's `CallEvents`; the dialects render them (Twilio: recording status callbacks `in-progress`,
`completed`, `absent`, queued behind the recorded call's own status callbacks so that they keep their order).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from media.audio import AudioError, AudioFormat, write_atomic
from media.recording import convert
from switch.core.calls import CallManager
from switch.core.errors import INTERNAL_FAILURE, InvalidState, NotFound
from switch.core.events import RecordingStarted, RecordingStatusChanged
from switch.core.model import Call, new_sid, utcnow
from switch.core.notifications import WARNING, Notifications
from switch.core.paging import Cursor, in_list_order, keyset_sql
from switch.core.recording_files import NOT_CAPTURED, Outcome, discard, finish_wav, produce, track_layout
from switch.core.recording_model import (
    NEXT_STATUS,
    Recording as Recording,  # re-exported: the REST edges use them
    RecordingFilter as RecordingFilter,
    RecordingProblem as RecordingProblem,
    RecordingSource as RecordingSource,
    RecordingStateError as RecordingStateError,
    RecordingStatus as RecordingStatus,
)
from switch.core.recording_rows import COLUMNS, from_row, migrate, to_row
from switch.core.status import CallStatus
from switch.core.store import Store
from switch.core.tasks import TaskSet
from switch.workers.media import MediaError, RecordResult
from switch.workers.protocol import RecordFailed

log = logging.getLogger("switch.core.recordings")

Clock = Callable[[], dt.datetime]

MEDIA_WARNING = INTERNAL_FAILURE  # a notification about the media path (as the interpreter reports media errors)
STOP_TIMEOUT = 3.0  # seconds to wait for the worker to confirm a stopped tap; the raw files are used anyway
CLOSE_TIMEOUT = 10.0


@dataclass
class _Capture:
    """A recording that is not final yet, and its tap in the worker."""

    recording: Recording
    started: asyncio.Event = field(default_factory=asyncio.Event)  # the tap started, or failed to
    rec_id: str | None = None
    done: asyncio.Future[RecordResult] | None = None
    finishing: asyncio.Task[Recording] | None = None
    failed: str | None = None  # why the tap failed (RecordFailed, RecordAttachFailed): the recording fails
    skip: bool = False  # the current pause leaves its time out of the file (PauseBehavior=skip)
    skipping_since: dt.datetime | None = None  # when the current skipping pause began
    skipped: float = 0.0  # seconds of earlier skipping pauses

    def skipped_seconds(self, now: dt.datetime) -> float:
        """Seconds of call time the file leaves out so far."""
        current = 0.0 if self.skipping_since is None else (now - self.skipping_since).total_seconds()
        return self.skipped + max(0.0, current)


class RecordingManager:
    """Starts, pauses, stops and finalizes recordings; keeps them in the store; sends their callbacks.

    It hooks into the call manager: a call created with `record=True` is recorded from its answer
    (source `RecordingSource.CALL`), and every recording of a call that ends -- whatever ended it -- is finalized.
    """

    def __init__(self, store: Store, calls: CallManager, data_dir: Path, account_sid: str,
                 media_url: Callable[[Recording], str], clock: Clock = utcnow,
                 notifications: Notifications | None = None) -> None:
        self.store = store
        self.notifications = notifications or Notifications(store, account_sid)
        self.calls = calls
        self.dir = Path(data_dir) / "recordings"
        self.account_sid = account_sid
        self._media_url = media_url
        self.clock = clock
        self._captures: dict[str, _Capture] = {}
        self._tasks = TaskSet()
        migrate(store)
        self.dir.mkdir(parents=True, exist_ok=True)
        calls.answered_hooks.append(self._on_answered)
        calls.ended_hooks.append(self._on_ended)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # built outside the event loop (unit tests): nothing to recover
        self.recover()

    # -- paths and reading ------------------------------------------------------------------------
    def wav_path(self, sid: str) -> Path:
        return self.dir / f"{sid}.wav"

    def media_url(self, rec: Recording) -> str:
        """Where the recording's media is served: the URL the application's dialect builds (Twilio's)."""
        return self._media_url(rec)

    def get(self, sid: str) -> Recording | None:
        capture = self._captures.get(sid)
        if capture is not None:
            return dataclasses.replace(capture.recording)
        row = self.store.execute("SELECT * FROM recordings WHERE sid = ?", (sid,)).fetchone()
        if row is None or row["account_sid"] != self.account_sid:
            return None
        return from_row(row)

    def list_recordings(self, flt: RecordingFilter, offset: int, limit: int,
                        cursor: Cursor | None = None) -> list[Recording]:
        """Newest first, `limit` at most: skipping `offset`, or on the `cursor`'s side of its key."""
        where, args = ["account_sid = ?"], [self.account_sid]
        if flt.call_sid is not None:
            where.append("call_sid = ?")
            args.append(flt.call_sid)
        for op, day in (("=", flt.date_created_on), ("<=", flt.date_created_before),
                        (">=", flt.date_created_after)):
            if day is not None:
                where.append(f"substr(date_created, 1, 10) {op} ?")
                args.append(day.isoformat())
        condition, keys, order = keyset_sql(cursor, descending=True)
        if condition is not None:
            where.append(condition)
            args += keys
            offset = 0
        rows = in_list_order(self.store.execute(
            f"SELECT * FROM recordings WHERE {' AND '.join(where)} ORDER BY {order} LIMIT ? OFFSET ?",
            [*args, limit, offset]).fetchall(), cursor)
        # A recording still in memory is fresher than its row (the row is written on every change anyway).
        return [dataclasses.replace(c.recording) if (c := self._captures.get(r["sid"])) else from_row(r)
                for r in rows]

    def current(self, call_sid: str) -> Recording | None:
        """The call's active recording (`Twilio.CURRENT`): the newest one in progress or paused."""
        active = [c.recording for c in self._captures.values()
                  if c.recording.call_sid == call_sid and c.recording.status.capturing]
        return dataclasses.replace(max(active, key=lambda r: r.date_created)) if active else None

    async def media(self, sid: str, fmt: AudioFormat) -> Path:
        """The file of a completed recording in `fmt` (an MP3 is converted once and kept next to the WAV)."""
        rec = self.get(sid)
        wav = self.wav_path(sid)
        if rec is None or rec.status is not RecordingStatus.COMPLETED or not wav.is_file():
            raise NotFound(f"/Recordings/{sid}.{fmt}")
        if fmt == "wav":
            return wav
        path = wav.with_suffix(f".{fmt}")
        if not path.is_file():
            data = await asyncio.to_thread(convert, wav, fmt)
            await asyncio.to_thread(write_atomic, path, data)
        return path

    def delete(self, sid: str) -> None:
        """Delete a final recording and its files; raises NotFound, or InvalidState while it records."""
        rec = self.get(sid)
        if rec is None:
            raise NotFound(f"/Recordings/{sid}.json")
        if sid in self._captures:
            raise InvalidState(f"Recording {sid} is {rec.status}; stop it before deleting it")
        self.store.execute("DELETE FROM recordings WHERE sid = ?", (sid,))
        for path in self.dir.glob(f"{sid}.*"):
            path.unlink(missing_ok=True)

    # -- the one status path ------------------------------------------------------------------
    def _save(self, rec: Recording) -> None:
        columns = ", ".join(f'"{c}"' for c in COLUMNS)
        marks = ", ".join("?" for _ in COLUMNS)
        self.store.execute(f"INSERT OR REPLACE INTO recordings ({columns}) VALUES ({marks})", to_row(rec))

    def _set_status(self, rec: Recording, status: RecordingStatus) -> None:
        if status not in NEXT_STATUS[rec.status]:
            raise RecordingStateError(rec.sid, rec.status, status)
        previous = rec.status
        rec.status = status
        rec.date_updated = self.clock()
        self._save(rec)
        log.info("%s %s -> %s", rec.call_sid, rec.sid, status)
        # The dialects render it (Twilio: a recording status callback for completed and absent).
        self.calls.events.emit(RecordingStatusChanged(dataclasses.replace(rec), previous, rec.date_updated))

    # -- API used by the REST edge and TwiML ------------------------------------------------------
    async def start(self, call_sids: list[str], source: str, channels: int, trim: bool,
                    status_callback: str | None, status_callback_method: str,
                    status_callback_events: tuple[str, ...], parent_call_sid: str,
                    track: str = "both", slots: int = 0, tracks: bool = False, level_ms: int = 0) -> Recording:
        """Record `call_sids` (leg0 first, leg1 second; one or two legs of one worker) for `parent_call_sid`.

        `tracks`: a recording of one call as Twilio's call recordings are, by `track`: what the call sends
        (inbound) on channel 1, what the switch sends it (outbound: TwiML audio, a bridged party) on channel 2;
        mono mixes the tracks asked for.  Otherwise each leg's channel is what that leg sends (<Dial>, <Record>).
        `level_ms` > 0: the worker reports the level of channel 0 that often (`levels`).

        Returns the recording in progress.  A recording whose tap cannot start (a call not in progress, or
        that ends before its media is up) is finished at once and comes back `absent` (nothing captured); the REST
        edge checks the call's status first so that it can answer that the call is not live instead.
        """
        if not 1 <= max(len(call_sids), slots) <= 2 or channels not in (1, 2):
            raise ValueError(f"a recording taps 1 or 2 legs into 1 or 2 channels, not {call_sids}/{channels}")
        now = self.clock()
        rec = Recording(sid=new_sid("RE"), account_sid=self.account_sid, call_sid=parent_call_sid,
                        channels=channels, source=source, status=RecordingStatus.IN_PROGRESS, date_created=now,
                        date_updated=now, track=track, trim=trim, legs=tuple(call_sids),
                        status_callback=status_callback, status_callback_method=status_callback_method.upper(),
                        status_callback_events=tuple(status_callback_events))
        capture = _Capture(rec)
        self._captures[rec.sid] = capture
        self._save(rec)
        self.store.add_event(parent_call_sid, "recording", f"{rec.sid} started ({source}, {channels} channel(s))")
        try:
            for sid in call_sids:
                if not self._in_progress(sid):
                    raise MediaError(f"{sid} is not in progress")
                await self.calls.media.wait_ready(sid)
            if capture.finishing is None:  # not stopped while the media came up
                tapped, mirror = list(call_sids), None
                if tracks:
                    inbound, outbound_channel, slots = track_layout(track, channels)
                    tapped = tapped if inbound else []
                    mirror = None if outbound_channel is None else (call_sids[0], outbound_channel)
                capture.rec_id, capture.done = self.calls.media.start_recording(
                    tapped, str(self.dir / rec.sid), slots, mirror, level_ms)
                capture.done.add_done_callback(lambda done: self._tap_ended(capture, done.result()))
                if rec.status is RecordingStatus.PAUSED:
                    self.calls.media.pause_recording(capture.rec_id, True, capture.skip)
                rec.start_time = self.clock()
                self._save(rec)
                self.calls.events.emit(RecordingStarted(dataclasses.replace(rec), rec.start_time))
        except MediaError as exc:
            log.warning("%s: recording %s could not start: %s", parent_call_sid, rec.sid, exc)
        finally:
            capture.started.set()
        if capture.rec_id is None:
            return await asyncio.shield(self._finish(capture))
        return dataclasses.replace(rec)

    async def attach(self, sid: str, index: int, call_sid: str) -> None:
        """Let `call_sid` feed channel `index` of a running recording (a <Dial> child joining late).

        The joining leg is not one of the recording's own legs: its end does not end the recording.
        """
        capture = self._captures.get(sid)
        if capture is None or capture.rec_id is None or capture.finishing is not None:
            return
        try:
            await self.calls.media.wait_ready(call_sid)
        except MediaError as exc:  # it ended (or never got media) before it could join: nothing to tap
            log.info("%s: %s cannot join recording %s: %s", capture.recording.call_sid, call_sid, sid, exc)
            return
        try:
            await self.calls.media.attach_recording(capture.rec_id, index, call_sid)
        except MediaError as exc:
            self._tap_failed(capture, f"{call_sid} could not join channel {index}: {exc}")

    def levels(self, sid: str) -> asyncio.Queue[float | None]:
        """The tap levels of a recording started with `level_ms` (RMS values, None once the tap ended)."""
        capture = self._captures.get(sid)
        return self.calls.media.levels(capture.rec_id if capture is not None and capture.rec_id else "")

    def _tap_ended(self, capture: _Capture, result: RecordResult) -> None:
        """The worker's answer to the tap: a `RecordFailed` fails the recording now, while its call goes on."""
        if isinstance(result, RecordFailed):
            self._tap_failed(capture, result.error)

    def _tap_failed(self, capture: _Capture, why: str) -> None:
        """A failed tap fails the recording: `absent` (NOT_CAPTURED) with its callback, logged on the call."""
        rec = capture.recording
        if capture.failed is None:
            capture.failed = why
            if not all(map(self._in_progress, {rec.call_sid, *rec.legs})):  # a hang-up took the leg: no fault
                log.info("%s: recording %s: its call ended as the tap started: %s", rec.call_sid, rec.sid, why)
                self.store.add_event(rec.call_sid, "recording", f"{rec.sid} not started: the call ended ({why})")
            else:
                log.warning("%s: recording %s failed: %s", rec.call_sid, rec.sid, why)
                self.store.add_event(rec.call_sid, "error", f"recording {rec.sid} failed: {why}")
                self.notifications.add(rec.call_sid, MEDIA_WARNING, f"recording {rec.sid} failed: {why}",
                                       level=WARNING)
        if capture.finishing is None and rec.status.capturing:
            self._set_status(rec, RecordingStatus.STOPPED)
        self._finish(capture)

    def _in_progress(self, sid: str) -> bool:
        """Whether call `sid` is live and in progress (not ended, nor ending)."""
        call = self.calls.live.get(sid)
        return call is not None and call.status is CallStatus.IN_PROGRESS

    def _active(self, sid: str, wanted: RecordingStatus) -> _Capture:
        capture = self._captures.get(sid)
        if capture is not None:
            return capture
        rec = self.get(sid)
        if rec is None:
            raise NotFound(f"/Recordings/{sid}.json")
        raise RecordingStateError(sid, rec.status, wanted)

    async def pause(self, sid: str, skip: bool = False) -> Recording:
        """Pause the recording: it captures silence until resumed (Twilio's PauseBehavior=silence), or with
        `skip` nothing at all, so that the paused time is not in the file (PauseBehavior=skip).

        Pausing a paused recording changes nothing, not even how it pauses."""
        return self._pause(sid, RecordingStatus.PAUSED, skip)

    async def resume(self, sid: str) -> Recording:
        return self._pause(sid, RecordingStatus.IN_PROGRESS)

    def _pause(self, sid: str, wanted: RecordingStatus, skip: bool = False) -> Recording:
        capture = self._active(sid, wanted)
        rec = capture.recording
        if rec.status is not wanted:
            self._set_status(rec, wanted)
            paused = wanted is RecordingStatus.PAUSED
            if paused:
                capture.skip = skip
                capture.skipping_since = rec.date_updated if skip else None
            else:
                capture.skipped = capture.skipped_seconds(rec.date_updated)
                capture.skipping_since = None
            if capture.rec_id is not None:
                self.calls.media.pause_recording(capture.rec_id, paused, capture.skip and paused)
        return dataclasses.replace(rec)

    def call_recording(self, call_sid: str) -> tuple[Recording, int] | None:
        """The recording a call was created to record (REST Record=true) and its duration in whole seconds so far.

        While it still records (the call's own end is being reported) the duration is the time since its tap
        started less the skipped pauses: trimming may shorten the final file; its own status callback has that.
        """
        for capture in self._captures.values():
            rec = capture.recording
            if rec.call_sid == call_sid and rec.source == RecordingSource.CALL and not rec.status.final:
                now = self.clock()
                elapsed = 0.0 if rec.start_time is None else (now - rec.start_time).total_seconds()
                return dataclasses.replace(rec), max(0, round(elapsed - capture.skipped_seconds(now)))
        row = self.store.execute(
            "SELECT * FROM recordings WHERE call_sid = ? AND source = ? AND account_sid = ? "
            "ORDER BY date_created DESC LIMIT 1", (call_sid, str(RecordingSource.CALL), self.account_sid)).fetchone()
        if row is None:
            return None
        rec = from_row(row)
        return rec, rec.duration or 0

    async def stop(self, sid: str) -> Recording:
        """Stop the tap and finalize; returns the recording `completed` (or `absent`)."""
        capture = self._captures.get(sid)
        if capture is None:
            rec = self.get(sid)
            if rec is None:
                raise NotFound(f"/Recordings/{sid}.json")
            return rec  # already final (or being finalized by a restart): stopping again changes nothing
        if capture.recording.status.capturing:
            self._set_status(capture.recording, RecordingStatus.STOPPED)
        # Shielded: a caller cancelled while it waits (a <Record> whose call ends) must not cancel the
        # finalization with it, or the recording stays `processing` for good, without its callback.
        return await asyncio.shield(self._finish(capture))

    # -- recordings whose file is written elsewhere: a conference's mix (switch.core.conference_recording) --
    def open_mix(self, call_sid: str, conference_sid: str, trim: bool, status_callback: str | None,
                 status_callback_method: str, status_callback_events: tuple[str, ...]) -> Recording:
        """A mono recording in progress whose WAV someone else writes at `wav_path(sid)`; `close_mix` ends it."""
        now = self.clock()
        rec = Recording(sid=new_sid("RE"), account_sid=self.account_sid, call_sid=call_sid, channels=1,
                        source=RecordingSource.CONFERENCE, status=RecordingStatus.IN_PROGRESS, date_created=now,
                        date_updated=now, start_time=now, conference_sid=conference_sid, trim=trim,
                        status_callback=status_callback, status_callback_method=status_callback_method.upper(),
                        status_callback_events=status_callback_events)
        self._save(rec)
        self.calls.events.emit(RecordingStarted(dataclasses.replace(rec), now))
        return rec

    def of_conference(self, conference_sid: str) -> list[str]:
        """The sids of a conference's recordings, oldest first."""
        rows = self.store.execute("SELECT sid FROM recordings WHERE conference_sid = ? ORDER BY date_created",
                                  (conference_sid,)).fetchall()
        return [row[0] for row in rows]

    async def close_mix(self, rec: Recording) -> Recording:
        """`open_mix`'s file is complete: trim and measure it, then completed (or absent) with its callback."""
        self._set_status(rec, RecordingStatus.PROCESSING)
        outcome = await asyncio.to_thread(finish_wav, self.wav_path(rec.sid), rec.trim)
        rec.duration, rec.problem = outcome.duration, outcome.problem
        self._set_status(rec, RecordingStatus.ABSENT if outcome.problem else RecordingStatus.COMPLETED)
        return dataclasses.replace(rec)

    # -- finishing ----------------------------------------------------------------------------------
    def _finish(self, capture: _Capture) -> asyncio.Task[Recording]:
        """The one finalization of `capture` (idempotent): stop the tap, write the file, report.  Await it
        through `asyncio.shield`: awaiting the task itself cancels it when the awaiting task is cancelled."""
        if capture.finishing is None:
            task = asyncio.get_running_loop().create_task(self._finalize(capture))
            capture.finishing = task
            self._tasks.track(task, capture.recording.call_sid)
        return capture.finishing

    async def _finalize(self, capture: _Capture) -> Recording:
        rec = capture.recording
        await capture.started.wait()
        if capture.rec_id is not None and capture.done is not None:
            self.calls.media.stop_recording(capture.rec_id)
            try:
                result = await asyncio.wait_for(asyncio.shield(capture.done), STOP_TIMEOUT)
                self._tap_report(rec, result)
            except TimeoutError:
                log.warning("%s: recording %s: the worker did not confirm the stop", rec.call_sid, rec.sid)
        self._set_status(rec, RecordingStatus.PROCESSING)
        channels: Literal[1, 2] = 2 if rec.channels == 2 else 1
        try:
            if capture.failed is not None:  # a failed tap: whatever reached the disk is not the recording asked for
                outcome = await asyncio.to_thread(discard, self.dir / rec.sid)
            else:
                outcome = await asyncio.to_thread(produce, self.dir / rec.sid, self.wav_path(rec.sid), channels,
                                                  rec.trim)
        except (AudioError, OSError) as exc:
            log.error("%s: recording %s could not be finalized: %s", rec.call_sid, rec.sid, exc)
            outcome = Outcome(problem=NOT_CAPTURED)
        rec.duration = outcome.duration
        rec.problem = outcome.problem
        self._captures.pop(rec.sid, None)
        self._set_status(rec, RecordingStatus.ABSENT if outcome.problem else RecordingStatus.COMPLETED)
        self.store.add_event(rec.call_sid, "recording", f"{rec.sid} {rec.status} ({rec.duration} s)")
        return dataclasses.replace(rec)

    def _tap_report(self, rec: Recording, result: RecordResult) -> None:
        """Log how the tap ended; frames the worker could not write are also a warning on the call."""
        if isinstance(result, RecordFailed):
            return  # `_tap_failed` reported it
        if result.reason == "worker_lost":
            log.warning("%s: recording %s ended with its worker; keeping what reached the disk", rec.call_sid,
                        rec.sid)
        if result.lost_frames:
            text = (f"recording {rec.sid}: {result.lost_frames} of {result.frames} frames could not be written "
                    "to disk; they are silent in the recording")
            log.warning("%s: %s", rec.call_sid, text)
            self.store.add_event(rec.call_sid, "recording", text)
            self.notifications.add(rec.call_sid, MEDIA_WARNING, text, level=WARNING)

    # -- call hooks ---------------------------------------------------------------------------------
    def _on_answered(self, call: Call) -> Coroutine[Any, Any, None] | None:
        return self._record_call(call) if call.record else None

    async def _record_call(self, call: Call) -> None:
        # Dual: the called party on channel 1, what the switch sends it (TwiML audio, a <Dial>ed party) on 2.
        await self.start([call.sid], RecordingSource.CALL, 2 if call.recording_channels == "dual" else 1,
                         call.trim == "trim-silence", call.recording_status_callback,
                         call.recording_status_callback_method, call.recording_status_callback_events,
                         parent_call_sid=call.sid, track=call.recording_track, tracks=True)

    def _on_ended(self, call: Call) -> None:
        """Sync end hook: finalize (in a tracked task) every recording that taps or belongs to the call."""
        for capture in list(self._captures.values()):
            rec = capture.recording
            if call.sid == rec.call_sid or call.sid in rec.legs:
                self._finish(capture)

    # -- start-up and shutdown ----------------------------------------------------------------------
    def recover(self) -> int:
        """Finalize the recordings a previous run left unfinished (it crashed) from their raw files."""
        rows = self.store.execute(
            "SELECT * FROM recordings WHERE account_sid = ? AND status NOT IN (?, ?)",
            (self.account_sid, str(RecordingStatus.COMPLETED), str(RecordingStatus.ABSENT))).fetchall()
        for row in rows:
            rec = from_row(row)
            if rec.sid in self._captures:
                continue
            if rec.status is RecordingStatus.PROCESSING:
                rec.status = RecordingStatus.STOPPED  # processing starts over
            capture = _Capture(rec)
            capture.started.set()
            self._captures[rec.sid] = capture
            self._finish(capture)
        if rows:
            log.info("start-up: finalizing %d recordings left unfinished by the last run", len(rows))
        return len(rows)

    async def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Finalize what is still recording and wait (up to `timeout` s) for every finalization."""
        for capture in list(self._captures.values()):
            self._finish(capture)
        await self._tasks.wait(timeout)
