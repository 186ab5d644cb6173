"""Audio taps inside a worker: a leg's audio out to the control plane, frame by frame, and audio back into it.

A tap (`switch.workers.protocol_audio`) is made of conference-bridge ports of its own:

- an inbound sink, fed by the leg's port: what the leg sends;
- an outbound sink, fed by whatever the switch sends the leg now (`MediaManager.feeds`: players, a bridged leg,
  the tap's own source): what the leg hears;
- with `inject`, a source that plays the queued audio into the leg (and counts as one of the leg's feeds, so
  recordings of the outbound track and other taps hear it).

The sinks run on the media clock thread: each frame is turned into μ-law (a table lookup) and emitted as one
`TapAudio` (the outbox is thread-safe).  The source's queue is filled on the pjsua thread and drained on the
clock thread: a deque of 20 ms frames and marks, whose appends and pops are atomic.  A mark is answered when the
source reaches it, so `TapMarkPlayed` means the audio before it has been handed to the leg.  When the leg gets a
new port (a re-INVITE), `MediaManager.set_port` tells the taps and they re-connect; when it ends, they end.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import time
from typing import Any

from media.ulaw import ulaw_decode, ulaw_encode
from switch.worker.pjengine import pj
from switch.worker.pjmedia import FRAME_BYTES, destroy, error_text, frame_bytes, pcm_format
from switch.workers.protocol import (
    TapAudio,
    TapClear,
    TapCommand,
    TapEnded,
    TapFailed,
    TapMark,
    TapMarkPlayed,
    TapSend,
    TapStart,
    TapStarted,
    TapStop,
)

log = logging.getLogger("switch.worker.taps")

_SILENCE = bytes(FRAME_BYTES)
_ULAW_FRAME = FRAME_BYTES // 2  # 160 μ-law bytes per 20 ms
_VECTOR_HEAD = ctypes.c_size_t * 2


def fill_frame(frame: pj.MediaFrame, data: bytes) -> None:
    """Put `data` (one frame of PCM) into a pjsua2 `MediaFrame` being requested from a source port."""
    buf = frame.buf
    buf.resize(len(data))
    begin, end = _VECTOR_HEAD.from_address(int(buf.this))
    if end - begin == len(data):
        ctypes.memmove(begin, data, len(data))
    else:  # pragma: no cover - another vector layout: the slow, element-wise path
        for index, value in enumerate(data):
            buf[index] = value
    frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
    frame.size = len(data)


class _Sink(pj.AudioMediaPort):  # type: ignore[misc]
    """One track of a tap: every frame it is given goes out as a `TapAudio`."""

    def __init__(self, tap: Tap, track: str) -> None:
        super().__init__()
        self.tap = tap
        self.track = track
        self.seq = 0

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:
        try:
            data = frame_bytes(frame) if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO else b""
            if len(data) != FRAME_BYTES:
                data = _SILENCE
            tap = self.tap
            if tap.closed:
                return
            tap.emit(TapAudio(id=tap.id, track=self.track, seq=self.seq, ms=self.seq * 20,
                              payload=ulaw_encode(data)))
            self.seq += 1
        except Exception:  # never raise into the clock thread
            log.exception("tap %s: frame lost", self.tap.id)

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:
        pass  # a sink only


class _Source(pj.AudioMediaPort):  # type: ignore[misc]
    """Plays the tap's queue: 20 ms of PCM per request, silence when the queue is empty."""

    def __init__(self, tap: Tap) -> None:
        super().__init__()
        self.tap = tap

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:
        try:
            fill_frame(frame, self.tap.next_frame())
        except Exception:  # never raise into the clock thread
            log.exception("tap %s: frame not played", self.tap.id)

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:
        pass  # a source only


class Tap:
    """One tap: its sinks and its source, and the queue of audio and marks the source plays."""

    def __init__(self, command: TapStart, emit: Any) -> None:
        self.id = command.id
        self.leg = command.leg
        self.emit = emit
        self.closed = False
        self.sinks: dict[str, _Sink] = {}
        self.source: _Source | None = None
        self.queue: collections.deque[bytes | str] = collections.deque()  # PCM frames and mark names
        self._partial = b""  # μ-law bytes short of a whole frame, waiting for the next TapSend
        fmt = pcm_format()
        for track in command.tracks:
            sink = _Sink(self, track)
            sink.createPort(f"tap-{track[:3]}-{self.id}", fmt)
            self.sinks[track] = sink
        if command.inject:
            self.source = _Source(self)
            self.source.createPort(f"tap-src-{self.id}", fmt)
        self.started = time.monotonic()

    # -- the queue (pjsua thread in, clock thread out) --------------------------------------------------------
    def send(self, payload: bytes) -> None:
        data = self._partial + payload
        whole = len(data) - len(data) % _ULAW_FRAME
        self._partial = data[whole:]
        for offset in range(0, whole, _ULAW_FRAME):
            self.queue.append(ulaw_decode(data[offset:offset + _ULAW_FRAME]))

    def mark(self, name: str) -> None:
        self.queue.append(name)

    def clear(self) -> None:
        self._partial = b""
        while True:
            try:
                item = self.queue.popleft()
            except IndexError:
                return
            if isinstance(item, str):
                self.emit(TapMarkPlayed(id=self.id, name=item, cleared=True))

    def next_frame(self) -> bytes:
        """Clock thread: the next frame to play; the marks before it are answered on the way."""
        while True:
            try:
                item = self.queue.popleft()
            except IndexError:
                return _SILENCE
            if isinstance(item, bytes):
                return item
            self.emit(TapMarkPlayed(id=self.id, name=item))

    # -- connections (pjsua thread) ---------------------------------------------------------------------------
    def connect(self, port: Any | None, feeds: list[Any]) -> None:
        """The leg's port is `port` (None: none now) and it is sent `feeds`: (re)connect to them."""
        if port is None:
            return
        inbound = self.sinks.get("inbound")
        if inbound is not None:
            _transmit(port, inbound, self.id)
        if self.source is not None:
            _transmit(self.source, port, self.id)
        outbound = self.sinks.get("outbound")
        if outbound is not None:
            for feed in feeds:
                _transmit(feed, outbound, self.id)

    def feed_added(self, source: Any) -> None:
        outbound = self.sinks.get("outbound")
        if outbound is not None:
            _transmit(source, outbound, self.id)

    def feed_removed(self, source: Any) -> None:
        outbound = self.sinks.get("outbound")
        if outbound is not None:
            try:
                source.stopTransmit(outbound)
            except pj.Error as exc:
                log.info("tap %s: stopTransmit: %s", self.id, error_text(exc))

    def close(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.clear()
        for port in [*self.sinks.values(), *([self.source] if self.source is not None else [])]:
            destroy(port)
        self.sinks.clear()
        self.source = None
        self.emit(TapEnded(id=self.id, reason=reason))


def _transmit(source: Any, sink: Any, tap_id: str) -> None:
    try:
        source.startTransmit(sink)
    except pj.Error as exc:
        log.warning("tap %s: cannot connect: %s", tap_id, error_text(exc))


class TapManager:
    """The taps of one worker, keyed by the ids the control plane gave them; a listener of `MediaManager`."""

    def __init__(self, media: Any, emit: Any) -> None:
        self.media = media  # switch.worker.media.MediaManager: the legs' ports and feeds
        self.emit = emit
        self.taps: dict[str, Tap] = {}
        media.listeners.append(self)

    def handle(self, command: TapCommand, has_media: bool) -> None:
        """A tap command (pjsua thread); `has_media`: the named leg has audio now (TapStart only)."""
        match command:
            case TapStart():
                self._start(command, has_media)
            case TapStop():
                self._end(command.id, "stopped")
            case TapSend():
                tap = self.taps.get(command.id)
                if tap is not None:
                    tap.send(command.payload)
            case TapMark():
                tap = self.taps.get(command.id)
                if tap is not None:
                    tap.mark(command.name)
                else:
                    self.emit(TapMarkPlayed(id=command.id, name=command.name, cleared=True))
            case TapClear():
                tap = self.taps.get(command.id)
                if tap is not None:
                    tap.clear()

    def _start(self, command: TapStart, has_media: bool) -> None:
        if not has_media:
            self.emit(TapFailed(id=command.id, leg=command.leg, error=f"leg {command.leg} has no active audio"))
            return
        try:
            tap = Tap(command, self.emit)
        except pj.Error as exc:
            self.emit(TapFailed(id=command.id, leg=command.leg, error=error_text(exc)))
            return
        self.taps[tap.id] = tap
        tap.connect(self.media.ports.get(tap.leg), list(self.media.feeds.get(tap.leg, {}).values()))
        if tap.source is not None:
            self.media.add_feed(tap.leg, f"tap:{tap.id}", tap.source)
        self.emit(TapStarted(id=tap.id, leg=tap.leg))

    def _disconnect(self, tap: Tap) -> None:
        if tap.source is not None:
            self.media.add_feed(tap.leg, f"tap:{tap.id}", None)
            port = self.media.ports.get(tap.leg)
            if port is not None:
                try:
                    tap.source.stopTransmit(port)
                except pj.Error as exc:  # the leg's port went first (a hang-up): nothing left to undo
                    log.debug("tap %s: stopTransmit: %s", tap.id, error_text(exc))

    # -- MediaManager listener ----------------------------------------------------------------------------------
    def port_changed(self, leg_id: str, port: Any | None) -> None:
        for tap in self.taps.values():
            if tap.leg == leg_id:
                tap.connect(port, list(self.media.feeds.get(leg_id, {}).values()))

    def feed_changed(self, leg_id: str, source: Any, added: bool) -> None:
        for tap in self.taps.values():
            if tap.leg == leg_id:
                if added:
                    tap.feed_added(source)
                else:
                    tap.feed_removed(source)

    def leg_gone(self, leg_id: str) -> None:
        for tap_id in [t for t, tap in self.taps.items() if tap.leg == leg_id]:
            self._end(tap_id, "hangup")

    def close_all(self) -> None:
        for tap_id in list(self.taps):
            self._end(tap_id, "shutdown")

    def _end(self, tap_id: str, reason: str) -> None:
        tap = self.taps.pop(tap_id, None)
        if tap is not None:
            self._disconnect(tap)  # out of the leg's feeds (and mirror recordings) before its ports go
            tap.close(reason)

