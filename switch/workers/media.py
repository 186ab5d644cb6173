"""Media commands seen from the control plane: awaitable plays, recordings, bridges and digits per call.

`CallMedia` turns the worker's media protocol into coroutines and futures: `await play(...)` returns when
the file ended, was stopped, or the leg went away (and raises `MediaError` on `PlayFailed`); cancelling the
awaiting task stops the player at once (the worker is woken immediately, so a REST redirect interrupts audio
within a frame).  `bridge` and `attach_recording` send their command at once and return a future that the
worker's answer completes (`Bridged`, `RecordAttached`) or fails with `MediaError` (`BridgeFailed`,
`RecordAttachFailed`).  A recording's future completes with its `RecordDone` or `RecordFailed` and nothing
else.  Digits arrive on a per-call queue that `<Gather>` and `<Record finishOnKey>` read; tap levels
(`level_ms`) on a per-recording queue that ends with None when the tap ends.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from media.errors import MediaError
from switch.workers.conference_mix import ConferenceMixer
from switch.workers.media_taps import AudioTap, Send, Taps
from switch.workers.protocol import (
    AllowRefer,
    Bridge,
    Bridged,
    BridgeFailed,
    Command,
    DtmfReceived,
    Event,
    MediaReady,
    PauseRecord,
    Play,
    PlayDone,
    PlayFailed,
    Record,
    RecordAttach,
    RecordAttached,
    RecordAttachFailed,
    RecordDone,
    RecordFailed,
    RecordResult,
    ReferNotify,
    ReferReceived,
    ReferRefused,
    SendDtmf,
    StopPlay,
    StopRecord,
    TapEvent,
    TapFailed,
    TapLevel,
    TapStart,
    Unbridge,
)
from switch.workers.protocol_audio import TRACKS

__all__ = ["CallMedia", "MediaError", "MediaLeg", "RecordResult"]

log = logging.getLogger("switch.media")

ReferEvent = ReferReceived | ReferRefused


def _attach_key(rec_id: str, index: int, leg: str) -> str:
    """An attach is answered by recording, channel and leg (one of each in flight at a time)."""
    return f"{rec_id}/{index}/{leg}"


class MediaLeg(Protocol):
    """What media operations need of a live leg: the call engine's one leg record
    (`switch.core.legs.Leg`) provides it."""

    @property
    def worker(self) -> int: ...

    @property
    def id(self) -> str: ...

    @property
    def media_ready(self) -> asyncio.Event: ...

    @property
    def digits(self) -> asyncio.Queue[str]: ...

    @property
    def gone(self) -> bool: ...


class CallMedia:
    """Per-call media operations over the worker pool; events come back through `on_event`."""

    def __init__(self, send: Send, legs: Mapping[str, MediaLeg]) -> None:
        self._send = send
        self._ids = itertools.count(1)
        self._plays: dict[str, asyncio.Future[PlayDone | PlayFailed]] = {}
        self._recordings: dict[str, asyncio.Future[RecordResult]] = {}
        self._acks: dict[str, asyncio.Future[None]] = {}  # bridges by id, attaches by `_attach_key`
        self._levels: dict[str, asyncio.Queue[float | None]] = {}  # recording id -> its tap levels
        self._refers: dict[str, asyncio.Queue[ReferEvent]] = {}  # call sid -> its REFERs, while someone listens
        self.legs = legs  # call sid -> the live leg (owned by the call engine)
        self.taps = Taps()  # audio taps (switch.workers.media_taps)
        self.conferences = ConferenceMixer(send, legs)  # conference mixing (switch.workers.conference_mix)

    def worker_lost(self, worker: int) -> None:
        """Fail every pending operation of a dead worker; its recordings end with what reached the disk."""
        prefix = f"w{worker}:"
        error = f"media worker {worker} exited"
        for key, play in list(self._plays.items()):
            if key.startswith(prefix) and not play.done():
                play.set_result(PlayFailed(id=key, leg="", error=error))
        for key in [k for k in self._recordings if k.startswith(prefix)]:
            self._recording_ended(RecordDone(id=key, frames=0, reason="worker_lost"))
        for key in [k for k in self._acks if k.startswith(prefix)]:
            self._answer(key, error)
        self.taps.worker_lost(worker)
        self.conferences.worker_lost(worker)

    def _state(self, call_sid: str) -> MediaLeg:
        state = self.legs.get(call_sid)
        if state is None or state.gone:
            raise MediaError(f"{call_sid} has no live media leg")
        return state

    def _new_id(self, worker: int, kind: str) -> str:
        return f"w{worker}:{kind}{next(self._ids)}"

    def _worker_of(self, item: str) -> int:
        return int(item[1:].split(":", 1)[0])

    async def wait_ready(self, call_sid: str, timeout: float = 5.0) -> None:
        state = self._state(call_sid)
        try:
            # asyncio.timeout, not wait_for: in Python 3.11 wait_for swallows a cancellation that arrives as the
            # event is set, and the caller (a ringback being stopped) would carry on and play.
            async with asyncio.timeout(timeout):
                await state.media_ready.wait()
        except TimeoutError as exc:
            raise MediaError(f"{call_sid}: media did not become active in {timeout:g} s") from exc
        if state.gone:
            raise MediaError(f"{call_sid}: the call ended")

    def _ack(self, worker: int, key: str, command: Command) -> asyncio.Future[None]:
        """Send `command`; the returned future completes with the worker's answer to `key` (`_answer`)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if key in self._acks:
            future.set_exception(MediaError("the same request is already pending"))
        elif not self._send(worker, command):
            future.set_exception(MediaError(f"media worker {worker} unavailable"))
        else:
            self._acks[key] = future
        return future

    def _answer(self, key: str, error: str | None) -> None:
        future = self._acks.pop(key, None)
        if future is None or future.done():
            log.info("answer to %s that nobody waits for%s", key, f": {error}" if error else "")
        elif error is None:
            future.set_result(None)
        else:
            future.set_exception(MediaError(error))

    # -- audio taps -------------------------------------------------------------------------------
    async def tap(self, call_sid: str, tracks: tuple[str, ...] = ("inbound",), inject: bool = False) -> AudioTap:
        """Start a tap of the call's audio (switch.workers.media_taps); MediaError if it cannot start."""
        unknown = set(tracks) - set(TRACKS)
        if unknown or not (tracks or inject):  # a tap that only plays into the call listens to nothing
            raise MediaError(f"a tap's tracks are {' and '.join(TRACKS)}, not {sorted(unknown) or 'none'}")
        await self.wait_ready(call_sid)
        state = self._state(call_sid)
        tap = AudioTap(self._new_id(state.worker, "t"), call_sid, state.worker, self._send)
        started = self.taps.add(tap)
        if not self._send(state.worker, TapStart(id=tap.id, leg=state.id, tracks=tracks, inject=inject)):
            self.taps.on_event(TapFailed(id=tap.id, leg=state.id, error=f"media worker {state.worker} unavailable"))
        error = await started
        if error is not None:
            raise MediaError(f"cannot tap {call_sid}: {error}")
        return tap

    # -- playing --------------------------------------------------------------------------------
    async def play(self, call_sid: str, path: str, loop: bool = False) -> str:
        """Play a bridge-rate WAV file to the call; returns why it ended (eof, stopped, hangup)."""
        await self.wait_ready(call_sid)
        state = self._state(call_sid)
        play_id = self._new_id(state.worker, "p")
        future: asyncio.Future[PlayDone | PlayFailed] = asyncio.get_running_loop().create_future()
        self._plays[play_id] = future
        if not self._send(state.worker, Play(id=play_id, leg=state.id, path=path, loop=loop)):
            self._plays.pop(play_id, None)
            raise MediaError(f"{call_sid}: media worker {state.worker} unavailable")
        try:
            done = await asyncio.shield(future)
        except asyncio.CancelledError:
            self._send(state.worker, StopPlay(id=play_id))
            raise
        finally:
            self._plays.pop(play_id, None)
        if isinstance(done, PlayFailed):
            raise MediaError(f"{call_sid}: cannot play {path}: {done.error}")
        return done.reason

    # -- recording -------------------------------------------------------------------------------
    def start_recording(self, call_sids: list[str], base: str, slots: int = 0,
                        mirror: tuple[str, int] | None = None,
                        level_ms: int = 0) -> tuple[str, asyncio.Future[RecordResult]]:
        """Tap the given calls' legs (one raw file each, sample-aligned); returns the id and its done-future,
        which completes with the worker's `RecordDone` (at the recording's end) or `RecordFailed`.

        `slots` reserves channels for legs attached later with `attach_recording`.  `mirror` (call, channel)
        puts on that channel what the switch sends to the call (its outbound track).  `level_ms` > 0 feeds
        `levels(id)` with the RMS of channel 0 every `level_ms` ms.
        """
        states = [self._state(sid) for sid in call_sids]
        mirrored = None if mirror is None else self._state(mirror[0])
        every = [*states, *([] if mirrored is None else [mirrored])]
        if not every:
            raise MediaError("a recording needs a leg")
        worker = every[0].worker
        if any(s.worker != worker for s in every):
            raise MediaError("the legs of one recording must live on one worker")
        rec_id = self._new_id(worker, "r")
        future: asyncio.Future[RecordResult] = asyncio.get_running_loop().create_future()
        self._recordings[rec_id] = future
        if level_ms > 0:
            self._levels[rec_id] = asyncio.Queue()
        command = Record(id=rec_id, base=base, legs=tuple(s.id for s in states), slots=slots,
                         mirror=None if mirror is None or mirrored is None else (mirrored.id, mirror[1]),
                         level_ms=level_ms)
        if not self._send(worker, command):
            self._recording_ended(RecordFailed(id=rec_id, error=f"media worker {worker} unavailable"))
        return rec_id, future

    def levels(self, rec_id: str) -> asyncio.Queue[float | None]:
        """The tap levels of a recording started with `level_ms`: RMS values, then None once it ended."""
        queue = self._levels.get(rec_id)
        if queue is None:  # unknown, or already ended
            queue = asyncio.Queue()
            queue.put_nowait(None)
        return queue

    def _recording_ended(self, event: RecordResult) -> None:
        future = self._recordings.pop(event.id, None)
        if future is not None and not future.done():
            future.set_result(event)
        levels = self._levels.pop(event.id, None)
        if levels is not None:
            levels.put_nowait(None)

    def attach_recording(self, rec_id: str, index: int, call_sid: str) -> asyncio.Future[None]:
        """Feed channel `index` of a running recording from `call_sid`'s leg from now on.  The future fails
        with MediaError if the worker could not (`RecordAttachFailed`); the recording's own future is untouched."""
        state = self._state(call_sid)
        if state.worker != self._worker_of(rec_id):
            raise MediaError("a recording's legs must live on one worker")
        return self._ack(state.worker, _attach_key(rec_id, index, state.id),
                         RecordAttach(id=rec_id, index=index, leg=state.id))

    def stop_recording(self, rec_id: str) -> None:
        self._send(self._worker_of(rec_id), StopRecord(id=rec_id))

    def pause_recording(self, rec_id: str, paused: bool, skip: bool = False) -> None:
        """Pause (silence, or with `skip` nothing at all) or resume recording `rec_id`."""
        self._send(self._worker_of(rec_id), PauseRecord(id=rec_id, paused=paused, skip=skip))

    # -- bridging ----------------------------------------------------------------------------------
    def bridge(self, a_sid: str, b_sid: str) -> asyncio.Future[None]:
        """Bridge two calls' legs.  Sent at once; the future fails with MediaError on `BridgeFailed`.  Raises
        MediaError at once if either leg is gone or they live on two workers."""
        a, b = self._state(a_sid), self._state(b_sid)
        if a.worker != b.worker:
            raise MediaError("bridged legs must live on one worker")
        bridge_id = self._new_id(a.worker, "b")
        return self._ack(a.worker, bridge_id, Bridge(id=bridge_id, a=a.id, b=b.id))

    def unbridge(self, a_sid: str) -> None:
        state = self.legs.get(a_sid)
        if state is not None and not state.gone:
            self._send(state.worker, Unbridge(a=state.id))

    # -- digits ------------------------------------------------------------------------------------
    def digits(self, call_sid: str) -> asyncio.Queue[str]:
        return self._state(call_sid).digits

    def send_digits(self, call_sid: str, digits: str) -> None:
        state = self._state(call_sid)
        self._send(state.worker, SendDtmf(leg=state.id, digits=digits))

    # -- transfers (REFER) ---------------------------------------------------------------------------
    def allow_refer(self, call_sid: str, allow: bool = True) -> None:
        """Accept (or refuse again) a REFER from the call's far end; it arrives on `refers(call_sid)`."""
        state = self._state(call_sid)
        self._send(state.worker, AllowRefer(leg=state.id, allow=allow))

    def refer_notify(self, call_sid: str, code: int, final: bool = True) -> None:
        """NOTIFY the call's transferor how its accepted REFER went (sipfrag `SIP/2.0 <code> ...`)."""
        state = self.legs.get(call_sid)
        if state is not None and not state.gone:
            self._send(state.worker, ReferNotify(leg=state.id, code=code, final=final))

    def refers(self, call_sid: str) -> asyncio.Queue[ReferEvent]:
        """The REFERs (accepted or refused) the call's far end sends from now on, until `forget_refers`."""
        return self._refers.setdefault(call_sid, asyncio.Queue())

    def forget_refers(self, call_sid: str) -> None:
        self._refers.pop(call_sid, None)

    # -- worker events -----------------------------------------------------------------------------
    def on_event(self, call_sid: str | None, event: Event) -> None:
        """A media event: by id (plays, recordings, bridges, attaches, levels, taps), or of the call `call_sid`."""
        if self.conferences.on_event(event):  # conference events, and its links', plays' and recordings' ids
            return
        if isinstance(event, TapEvent):
            self.taps.on_event(event)
            return
        match event:
            case PlayDone() | PlayFailed():
                play = self._plays.get(event.id)
                if play is not None and not play.done():
                    play.set_result(event)
            case RecordDone() | RecordFailed():
                self._recording_ended(event)
            case TapLevel():
                levels = self._levels.get(event.id)
                if levels is not None:
                    levels.put_nowait(event.rms)
            case Bridged():
                self._answer(event.id, None)
            case BridgeFailed():
                self._answer(event.id, f"cannot bridge: {event.error}")
            case RecordAttached():
                self._answer(_attach_key(event.id, event.index, event.leg), None)
            case RecordAttachFailed():
                self._answer(_attach_key(event.id, event.index, event.leg),
                             f"cannot feed channel {event.index} of the recording: {event.error}")
            case MediaReady():
                state = self.legs.get(call_sid or "")
                if state is not None:
                    state.media_ready.set()
            case DtmfReceived():
                state = self.legs.get(call_sid or "")
                if state is not None:
                    state.digits.put_nowait(event.digit)
            case ReferReceived() | ReferRefused():
                refers = self._refers.get(call_sid or "")
                if refers is not None:
                    refers.put_nowait(event)
                else:
                    log.info("%s: REFER to %s with nobody to take it", call_sid, event.refer_to)
                    if isinstance(event, ReferReceived):  # accepted by the worker: its transferor must hear
                        self.refer_notify(call_sid or "", 503)
            case _:
                log.info("%s: media event %s ignored", call_sid, type(event).__name__)

    def pending(self) -> dict[str, Any]:
        return {"waiting": len(self._plays) + len(self._recordings) + len(self._acks), "legs": len(self.legs)}
