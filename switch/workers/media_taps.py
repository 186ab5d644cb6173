"""Audio taps on the control plane: a call's audio, 20 ms at a time, for Media Streams, speech and AMD.

`CallMedia.tap` starts one on the worker that holds the call's leg (`switch.workers.protocol_audio`) and returns
an `AudioTap`: its `frames` queue gets every `AudioFrame` of the tracks asked for, then None when the tap ends
(stopped, the leg hung up, the worker died or shut down).  A tap started with `inject` plays what `send` gives it
into the call, in order and in real time; `mark` and `clear` work as in Twilio's Media Streams (a mark comes out
of `marks` once the audio before it has played, or at once when `clear` dropped it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from switch.workers.protocol import (
    Command,
    TapAudio,
    TapClear,
    TapEnded,
    TapEvent,
    TapFailed,
    TapMark,
    TapMarkPlayed,
    TapSend,
    TapStarted,
    TapStop,
)

log = logging.getLogger("switch.workers.taps")

Send = Callable[[int, Command], bool]


@dataclass(frozen=True)
class AudioFrame:
    """20 ms of one track: `inbound` is what the call's far end sends, `outbound` what the switch sends it."""

    track: str
    seq: int  # this track's frame number, from 0
    timestamp: int  # ms since the tap started
    payload: bytes  # 160 bytes of μ-law


@dataclass
class AudioTap:
    """One tap of a call's audio (see the module docstring)."""

    id: str
    call_sid: str
    worker: int
    _send: Send = field(repr=False)
    frames: asyncio.Queue[AudioFrame | None] = field(default_factory=asyncio.Queue, repr=False)
    marks: asyncio.Queue[str] = field(default_factory=asyncio.Queue, repr=False)
    ended: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    reason: str = ""  # why it ended: stopped, hangup, shutdown, worker lost

    def send(self, payload: bytes) -> None:
        """μ-law audio to play into the call after what is queued (a tap started with `inject`)."""
        if payload and not self.ended.is_set():
            self._send(self.worker, TapSend(id=self.id, payload=payload))

    def mark(self, name: str) -> None:
        """A mark after the audio sent so far: `name` comes out of `marks` once that audio has played."""
        if self.ended.is_set():
            self.marks.put_nowait(name)
        else:
            self._send(self.worker, TapMark(id=self.id, name=name))

    def clear(self) -> None:
        """Drop the audio queued in the worker; the pending marks come out of `marks`."""
        if not self.ended.is_set():
            self._send(self.worker, TapClear(id=self.id))

    def stop(self) -> None:
        """End the tap; `frames` gets its None once the worker has let go of it."""
        if not self.ended.is_set():
            self._send(self.worker, TapStop(id=self.id))

    def finish(self, reason: str) -> None:
        if not self.ended.is_set():
            self.reason = reason
            self.ended.set()
            self.frames.put_nowait(None)


class Taps:
    """Every live tap of the switch, by id: routes the workers' tap events to them."""

    def __init__(self) -> None:
        self.taps: dict[str, AudioTap] = {}
        self.starting: dict[str, asyncio.Future[str | None]] = {}  # tap id -> None (started) or the error

    def add(self, tap: AudioTap) -> asyncio.Future[str | None]:
        self.taps[tap.id] = tap
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self.starting[tap.id] = future
        return future

    def adopt(self, tap: AudioTap) -> None:
        """Route the events of a tap the worker runs unasked (a browser's port leg, named by its leg id)."""
        self.taps[tap.id] = tap

    def drop(self, tap_id: str, reason: str) -> None:
        """End tap `tap_id` on this side (its worker let go of it without a `TapEnded`)."""
        self._started(tap_id, f"the tap ended ({reason})")
        self._end(tap_id, reason)

    def on_event(self, event: TapEvent) -> None:
        tap = self.taps.get(event.id)
        match event:
            case TapAudio():
                if tap is not None:
                    tap.frames.put_nowait(AudioFrame(event.track, event.seq, event.ms, event.payload))
            case TapMarkPlayed():
                if tap is not None:
                    tap.marks.put_nowait(event.name)
            case TapStarted():
                self._started(event.id, None)
            case TapFailed():
                self._started(event.id, event.error)
                self._end(event.id, "failed")
            case TapEnded():
                self._started(event.id, f"the tap ended ({event.reason})")
                self._end(event.id, event.reason)

    def _started(self, tap_id: str, error: str | None) -> None:
        future = self.starting.pop(tap_id, None)
        if future is not None and not future.done():
            future.set_result(error)

    def _end(self, tap_id: str, reason: str) -> None:
        tap = self.taps.pop(tap_id, None)
        if tap is not None:
            tap.finish(reason)

    def worker_lost(self, worker: int) -> None:
        for tap in [t for t in self.taps.values() if t.worker == worker]:
            self._started(tap.id, "the media worker exited")
            self._end(tap.id, "worker lost")
