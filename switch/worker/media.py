"""Media inside a worker: file players, sample-aligned tap recorders, and bridges between legs.

Everything here runs on the pjsua thread except two callbacks from pjmedia's threads, which do only cheap
work: `Player.onEof2` (pjmedia's event thread) hands the EOF to the owner thread as a command, and
`TapPort.onFrameReceived` (the clock thread) writes a frame with one `os.pwrite` at the offset its tick dictates.

Players are destroyed late.  pjmedia posts a player's end-of-file to its event thread, which calls the
pjsua2 object back later, and pjsua2 2.17 destroys a player without withdrawing that callback: an EOF still
queued then calls freed memory and the worker dies (SIGSEGV in `file_on_event`; a looping player makes one
EOF per pass, so a REST redirect of a short `<Play loop="0">` found it).  A stopped player is therefore
disconnected at once, but only `retire`d: it is destroyed `RETIRE_GRACE_S` later, when nothing can be queued
for it any more (disconnected, it is no longer read, so it makes no new EOF).

Alignment of dual recordings.  The conference bridge calls every port's put_frame once per 20 ms tick,
in slot order.  The port with the lowest slot is the tick *leader*: it advances the recording's tick
counter, and the other port, called later in the same tick, reads the same value.  Frame *t* of every leg
lands at byte offset `(t - start) * 320` of that leg's raw file, so the channels stay sample-aligned even
if one of them receives nothing (silence is written for empty frames).  Writing goes to the page cache at
once, so a worker killed mid-call leaves every frame up to that moment on disk.  A frame that cannot be
written is counted (`TapRecording.lost`), logged at the end and reported in `RecordDone.lost_frames`.

Media changes.  A re-INVITE or UPDATE that changes direction, remote address or codec makes pjsua destroy the
leg's audio port and make a new one (ARCHITECTURE.md); every connection of the old port is gone with it.  So
nothing here holds a leg's port for good: `MediaManager.ports` has each leg's current port, every relation
(player -> leg, leg <-> leg bridge, leg -> recording channel, sources of a mirror channel) is kept by leg id, and
`MediaManager.set_port` re-makes all of a leg's relations on its new port.  A player goes on where it was (it is
its own port); a recording's ports never leave the bridge, so its channels keep their tick alignment and hold
silence while the leg has no port or hears nothing (hold).

Levels.  A recording started with `Record.level_ms` measures channel 0 on the clock thread (a sum of squares
of 160 samples, a few microseconds) and emits a `TapLevel` every `level_ms`: `<Record>` hears silence from
these instead of re-reading the file.
"""

from __future__ import annotations

import array
import collections
import contextlib
import logging
import math
import operator
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from switch.worker.pjengine import pj
from switch.worker.pjmedia import FRAME_BYTES, FRAME_MS, FRAME_SAMPLES, destroy, error_text, frame_bytes, pcm_format
from switch.workers.protocol import (
    Bridged,
    BridgeFailed,
    Command,
    Event,
    PlayDone,
    PlayFailed,
    RecordAttached,
    RecordAttachFailed,
    RecordDone,
    RecordFailed,
    TapLevel,
)

log = logging.getLogger("switch.worker.media")


@dataclass(frozen=True)
class PlayerEof:
    """Internal to the worker (never on the wire): player `id` reached the end of its file."""

    id: str


Emit = Callable[[Event], None]
Submit = Callable[[Command | PlayerEof], None]
_SILENCE = bytes(FRAME_BYTES)
RETIRE_GRACE_S = 0.5  # from a player's disconnection to its destruction (module docstring): 25 ticks


def _energy(data: bytes) -> int:
    """Sum of the squares of a frame's int16 samples (native byte order, as pjmedia hands them over)."""
    samples = array.array("h", data)
    return sum(map(operator.mul, samples, samples))


class Player(pj.AudioMediaPlayer):  # type: ignore[misc]
    """A WAV file played to one leg; its end is reported to the owner thread."""

    def __init__(self, play_id: str, leg_id: str, submit: Submit, loop: bool) -> None:
        super().__init__()
        self.play_id = play_id
        self.loop = loop
        self.leg_id = leg_id
        self._submit = submit
        self.retired = False  # stopped, waiting to be destroyed: its EOFs are news to nobody

    def onEof2(self) -> None:
        # runs on pjmedia's event thread: only hand the news to the owner thread
        if not self.loop and not self.retired:  # a looping player rewinds by itself and plays until stopped
            self._submit(PlayerEof(self.play_id))


class TapPort(pj.AudioMediaPort):  # type: ignore[misc]
    """A sink port feeding one channel of a `TapRecording`."""

    def __init__(self, recording: TapRecording, index: int) -> None:
        super().__init__()
        self.recording = recording
        self.index = index

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:
        try:
            data = frame_bytes(frame) if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO else b""
        except Exception:  # never raise into the clock thread; keep time with silence
            data = b""
        self.recording.on_frame(self.index, data)

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:
        pass  # a sink only


class TapRecording:
    """Raw 8 kHz int16 files, one per channel (`<base>.leg0.raw`, `<base>.leg1.raw`), written tick by tick.

    Channel i < len(legs) hears what leg i sends.  `mirror` (leg, channel) makes a channel hear what the switch
    sends to that leg instead (players, a bridged leg): `MediaManager` connects and disconnects those sources
    as they come and go.
    """

    def __init__(self, rec_id: str, base: Path, legs: list[str], sources: list[Any | None], slots: int = 0,
                 mirror: tuple[str, int] | None = None, level_ms: int = 0, emit: Emit | None = None) -> None:
        # `slots` > len(sources): channels whose leg is attached later (a <Dial> child from ringing on);
        # their port is in the bridge from the start, so they stay aligned and hold silence until then.
        count = max(len(sources), slots, 0 if mirror is None else mirror[1] + 1)
        self.rec_id = rec_id
        self.owner = legs[0] if legs else (mirror[0] if mirror else "")  # the recording ends with this leg
        self.mirror_leg = None if mirror is None else mirror[0]
        self.mirrored: list[Any] = []  # what feeds the mirror channel now
        self.legs = [*legs, *[""] * (count - len(legs))]
        self.base = base
        base.parent.mkdir(parents=True, exist_ok=True)
        self.fds = [os.open(f"{base}.leg{i}.raw", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
                    for i in range(count)]
        self.tick = 0
        self.start: int | None = None
        self.end = 0  # frames from the start of the files to the last one written
        self.lost = 0  # frames that could not be written (clock thread only)
        self.paused = False
        self.skip = False  # a pause writes nothing at all: the files close up over it (PauseBehavior=skip)
        self.skipped = 0  # ticks a skipping pause left out (clock thread)
        self._tick_paused = False  # `paused` as it stood when the current tick began (clock thread)
        self._files = threading.Lock()  # a frame's write against stop() closing the files (owner thread)
        # TapLevel of channel 0 every `_level_frames` frames (0: never); summed on the clock thread
        self._emit = emit
        self._level_frames = 0 if emit is None else max(0, -(-level_ms // FRAME_MS))
        self._level_energy = 0
        self._level_count = 0
        self.ports = [TapPort(self, i) for i in range(count)]
        fmt = pcm_format()
        for i, port in enumerate(self.ports):
            port.createPort(f"tap-{rec_id[-8:]}-{i}", fmt)
        ids = [port.getPortId() for port in self.ports]
        self.leader = ids.index(min(ids))
        self._mirror_port: TapPort | None = None if mirror is None else self.ports[mirror[1]]
        self.sources: list[Any | None] = [*sources, *[None] * (count - len(sources))]
        for source, port in zip(sources, self.ports, strict=False):
            if source is not None:
                source.startTransmit(port)
        # Both ports are now in the bridge; start two ticks ahead so every written tick reaches both.
        self.start = self.tick + 2

    def on_frame(self, index: int, data: bytes) -> None:
        """Clock thread: write the frame of the current tick at its place in the leg's file."""
        if index == self.leader:
            # The pause is read once per tick, by its first port, so that every channel of a tick agrees on it
            # (a pause arrives from the owner thread between two ports of a tick).
            self.tick += 1
            self._tick_paused = self.paused
            if self._tick_paused and self.skip and self.start is not None and self.tick >= self.start:
                self.skipped += 1
        tick, start = self.tick, self.start
        if start is None or tick < start or self._tick_paused or not self.fds:
            return
        # A silent pause leaves its ticks unwritten (a hole of zeros: silence); a skipping one moves later ticks up.
        position = tick - start - self.skipped
        frame = data if len(data) == FRAME_BYTES else _SILENCE
        if index == 0 and self._level_frames:
            self._level(frame)
        with self._files:
            if not self.fds:
                return  # stop() closed the files between this tick's ports
            try:
                os.pwrite(self.fds[index], frame, position * FRAME_BYTES)
            except OSError:
                self.lost += 1  # the file keeps a hole (zeros) there; the count reaches the log and the recording
                return
            self.end = max(self.end, position + 1)

    def _level(self, frame: bytes) -> None:
        """Clock thread: add a frame of channel 0 to the level window; emit its RMS when the window is full."""
        self._level_energy += _energy(frame)
        self._level_count += 1
        if self._level_count >= self._level_frames and self._emit is not None:
            rms = math.sqrt(self._level_energy / (self._level_count * FRAME_SAMPLES))
            self._level_energy = self._level_count = 0
            self._emit(TapLevel(id=self.rec_id, rms=round(rms, 1), t=time.time()))

    @property
    def frames(self) -> int:
        return self.end

    def attach(self, index: int, leg_id: str, source: Any | None) -> None:
        """Owner thread: feed channel `index` from `leg_id` (its port `source`, None: none yet) from now on."""
        self.detach(index)
        if source is not None:
            source.startTransmit(self.ports[index])
        self.sources[index] = source
        self.legs[index] = leg_id

    def replace_source(self, index: int, source: Any | None) -> None:
        """Owner thread: the leg of channel `index` has a new port (its old one, and its connection, are gone)."""
        self.sources[index] = source
        if source is not None:
            source.startTransmit(self.ports[index])

    def detach(self, index: int) -> None:
        source, self.sources[index] = self.sources[index], None
        self.legs[index] = ""
        if source is not None:
            try:
                source.stopTransmit(self.ports[index])
            except pj.Error as exc:
                log.info("recording %s: stopTransmit: %s", self.rec_id, error_text(exc))

    def mirror_add(self, source: Any) -> None:
        """Owner thread: the mirrored leg is now also sent `source`'s audio; so is the mirror channel."""
        if self._mirror_port is not None:
            source.startTransmit(self._mirror_port)
            self.mirrored.append(source)

    def mirror_remove(self, source: Any) -> None:
        if source in self.mirrored and self._mirror_port is not None:
            self.mirrored.remove(source)
            try:
                source.stopTransmit(self._mirror_port)
            except pj.Error as exc:
                log.info("recording %s: stopTransmit (mirror): %s", self.rec_id, error_text(exc))

    def stop(self) -> None:
        """Owner thread: detach the ports, destroy them, close the files."""
        for source in list(self.mirrored):
            self.mirror_remove(source)
        for index in range(len(self.ports)):
            self.detach(index)
        with self._files:
            fds, self.fds = self.fds, []
        for port in self.ports:
            destroy(port)
        self.ports = []
        self._mirror_port = None
        # A stop that falls between two ports of one tick leaves one leg a frame longer: every leg ends at the
        # last tick any leg reached (the short one gets a frame of silence), so `frames` is every file's length.
        length = self.frames * FRAME_BYTES
        for fd in fds:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, length)
            os.close(fd)


class MediaManager:
    """Players, recordings and bridges of one worker, keyed by the ids the control plane gave them.

    Every relation is kept by leg id and made on the legs' current ports (`ports`); `set_port` re-makes a
    leg's relations when pjsua gives it a new port, and a relation made while a leg has no port (an inactive
    hold) is connected when it gets one.
    """

    def __init__(self, emit: Emit, submit: Submit) -> None:
        self.emit = emit
        self.submit = submit
        self.ports: dict[str, Any] = {}  # leg -> its audio port now (absent: none, e.g. inactive hold)
        self.players: dict[str, Player] = {}
        self.recordings: dict[str, TapRecording] = {}
        self.bridges: dict[str, str] = {}  # leg -> the leg it is bridged to
        self.feeds: dict[str, dict[str, Any]] = {}  # leg -> what it is sent now: players by id, "bridge", "conf:..."
        self.listeners: list[Any] = []  # the audio taps (switch.worker.media_taps): told of ports, feeds, ends
        self.retired: collections.deque[tuple[float, Player]] = collections.deque()  # (when to destroy, player)

    # -- what each leg is sent, for recordings of the outbound track ------------------------------------
    def _feed(self, leg_id: str, key: str, source: Any | None) -> None:
        feeds = self.feeds.setdefault(leg_id, {})
        old = feeds.pop(key, None)
        if old is not None:
            for rec in self._mirroring(leg_id):
                rec.mirror_remove(old)
            for listener in self.listeners:
                listener.feed_changed(leg_id, old, False)
        if source is None:
            if not feeds:
                self.feeds.pop(leg_id, None)
            return
        feeds[key] = source
        for rec in self._mirroring(leg_id):
            rec.mirror_add(source)
        for listener in self.listeners:
            listener.feed_changed(leg_id, source, True)

    add_feed = _feed  # a tap's source is one of its leg's feeds (None: no more)

    def _unfeed(self, leg_id: str, key: str) -> None:
        self._feed(leg_id, key, None)

    def _mirroring(self, leg_id: str) -> list[TapRecording]:
        return [rec for rec in self.recordings.values() if rec.mirror_leg == leg_id]

    # -- a leg's port -------------------------------------------------------------------------------
    def set_port(self, leg_id: str, port: Any | None) -> None:
        """The leg's audio port is now `port` (None: it has none): re-make every relation of the leg on it.

        Called after every SDP negotiation of the leg.  When the port did not change, each connect finds its
        connection in place and pjmedia leaves it; when pjsua made a new port, the old one took its
        connections with it and they are made again here.
        """
        if port is None:
            self.ports.pop(leg_id, None)
        else:
            self.ports[leg_id] = port
        for player in self.players.values():
            if player.leg_id == leg_id and port is not None:
                self._connect(player, port, f"player {player.play_id}")
        peer = self.bridges.get(leg_id)
        if peer is not None:
            peer_port = self.ports.get(peer)
            if port is not None and peer_port is not None:
                self._connect(port, peer_port, f"bridge {leg_id}->{peer}")
                self._connect(peer_port, port, f"bridge {peer}->{leg_id}")
            self._feed(peer, "bridge", port)  # what the peer is sent now, for its mirror channels
        for rec in self.recordings.values():
            for index, channel_leg in enumerate(rec.legs):
                if channel_leg == leg_id:
                    try:
                        rec.replace_source(index, port)
                    except pj.Error as exc:
                        log.warning("recording %s: cannot re-attach %s: %s", rec.rec_id, leg_id, error_text(exc))
        for listener in self.listeners:
            listener.port_changed(leg_id, port)

    @staticmethod
    def _connect(source: Any, sink: Any, what: str) -> None:
        try:
            source.startTransmit(sink)
        except pj.Error as exc:
            log.warning("%s: cannot re-connect: %s", what, error_text(exc))

    # -- players ------------------------------------------------------------------------------
    def play(self, play_id: str, leg_id: str, path: str, loop: bool) -> None:
        player = Player(play_id, leg_id, self.submit, loop)
        port = self.ports.get(leg_id)
        try:
            player.createPlayer(path, 0 if loop else pj.PJMEDIA_FILE_NO_LOOP)
            if port is not None:
                player.startTransmit(port)
        except pj.Error as exc:
            self.retire(player)
            self.emit(PlayFailed(id=play_id, leg=leg_id, error=error_text(exc)))
            return
        self.players[play_id] = player
        self._feed(leg_id, play_id, player)

    def stop_play(self, play_id: str, reason: str = "stopped") -> None:
        player = self.players.pop(play_id, None)
        if player is None:
            return
        self._unfeed(player.leg_id, play_id)
        port = self.ports.get(player.leg_id)
        if port is not None:
            try:
                player.stopTransmit(port)
            except pj.Error as exc:
                log.info("player %s: stopTransmit: %s", play_id, error_text(exc))
        self.retire(player)
        self.emit(PlayDone(id=play_id, leg=player.leg_id, reason=reason))

    def retire(self, player: Player) -> None:
        """Destroy a disconnected `player` `RETIRE_GRACE_S` from now (module docstring: its EOF callback)."""
        player.retired = True
        self.retired.append((time.monotonic() + RETIRE_GRACE_S, player))

    def reap(self, final: bool = False) -> None:
        """Destroy the retired players that are due; `final`: all of them, after waiting out the last grace."""
        if final and self.retired:
            time.sleep(max(0.0, self.retired[-1][0] - time.monotonic()))
        now = time.monotonic()
        while self.retired and self.retired[0][0] <= now:
            destroy(self.retired.popleft()[1])

    # -- recordings ---------------------------------------------------------------------------
    def record(self, rec_id: str, base: str, legs: list[str], slots: int = 0,
               mirror: tuple[str, int] | None = None, level_ms: int = 0) -> None:
        sources = [self.ports.get(leg) for leg in legs]
        try:
            recording = TapRecording(rec_id, Path(base), legs, sources, slots, mirror, level_ms, self.emit)
        except (pj.Error, OSError) as exc:
            text = error_text(exc) if isinstance(exc, pj.Error) else str(exc)
            self.emit(RecordFailed(id=rec_id, error=text))
            return
        self.recordings[rec_id] = recording
        if mirror is not None:
            for source in self.feeds.get(mirror[0], {}).values():
                recording.mirror_add(source)

    def attach_record(self, rec_id: str, index: int, leg_id: str) -> None:
        """Answers `RecordAttached` or `RecordAttachFailed` (the recording itself goes on either way)."""
        recording = self.recordings.get(rec_id)
        if recording is None:
            error = "no such recording (it ended)"
        elif not 0 < index < len(recording.ports):
            error = f"the recording has no channel {index} to attach"
        else:
            try:
                recording.attach(index, leg_id, self.ports.get(leg_id))
            except pj.Error as exc:
                error = error_text(exc)
            else:
                self.emit(RecordAttached(id=rec_id, index=index, leg=leg_id))
                return
        log.warning("recording %s: cannot attach %s to channel %d: %s", rec_id, leg_id, index, error)
        self.emit(RecordAttachFailed(id=rec_id, index=index, leg=leg_id, error=error))

    def pause_record(self, rec_id: str, paused: bool, skip: bool = False) -> None:
        recording = self.recordings.get(rec_id)
        if recording is not None:
            recording.skip = skip  # before `paused`: the clock thread reads them in the other order
            recording.paused = paused

    def stop_record(self, rec_id: str, reason: str = "stopped") -> None:
        recording = self.recordings.pop(rec_id, None)
        if recording is None:
            return
        recording.stop()
        if recording.lost:
            log.warning("recording %s: %d of %d frames could not be written", rec_id, recording.lost,
                        recording.frames)
        self.emit(RecordDone(id=rec_id, frames=recording.frames, reason=reason, lost_frames=recording.lost))

    # -- bridges ------------------------------------------------------------------------------
    def bridge(self, bridge_id: str, a_id: str, b_id: str) -> None:
        """Answers `Bridged` or `BridgeFailed` (then nothing stays connected)."""
        a, b = self.ports.get(a_id), self.ports.get(b_id)
        if a is not None and b is not None:
            try:
                a.startTransmit(b)
                b.startTransmit(a)
            except pj.Error as exc:
                self._disconnect(a, b, f"bridge {bridge_id}: undo")
                self.emit(BridgeFailed(id=bridge_id, a=a_id, b=b_id, error=error_text(exc)))
                return
        self.bridges[a_id] = b_id
        self.bridges[b_id] = a_id
        self._feed(b_id, "bridge", a)
        self._feed(a_id, "bridge", b)
        self.emit(Bridged(id=bridge_id, a=a_id, b=b_id))

    def unbridge(self, a_id: str) -> None:
        b_id = self.bridges.pop(a_id, None)
        if b_id is None:
            return
        self.bridges.pop(b_id, None)
        self._unfeed(b_id, "bridge")
        self._unfeed(a_id, "bridge")
        a, b = self.ports.get(a_id), self.ports.get(b_id)
        if a is not None and b is not None:
            self._disconnect(a, b, f"unbridge {a_id}")

    @staticmethod
    def _disconnect(a: Any, b: Any, what: str) -> None:
        for src, dst in ((a, b), (b, a)):
            try:
                src.stopTransmit(dst)
            except pj.Error as exc:
                log.info("%s: %s", what, error_text(exc))

    def close_all(self) -> None:
        """Stop every player and recording (worker shutdown: before the library is destroyed)."""
        for play_id in list(self.players):
            self.stop_play(play_id, "shutdown")
        for rec_id in list(self.recordings):
            self.stop_record(rec_id, "shutdown")
        for listener in self.listeners:
            listener.close_all()
        self.reap(final=True)
        self.bridges.clear()
        self.feeds.clear()
        self.ports.clear()

    # -- a leg went away ----------------------------------------------------------------------
    def leg_gone(self, leg_id: str) -> None:
        """Stop whatever played to the leg, every recording and tap that listened to it."""
        for listener in self.listeners:
            listener.leg_gone(leg_id)
        for play_id in [p for p, player in self.players.items() if player.leg_id == leg_id]:
            self.stop_play(play_id, "hangup")
        for rec_id, rec in list(self.recordings.items()):
            if rec.owner == leg_id:  # the recorded call itself is gone
                self.stop_record(rec_id, "hangup")
            elif leg_id in rec.legs:  # another party left: its channel goes silent, the recording goes on
                rec.detach(rec.legs.index(leg_id))
        peer = self.bridges.pop(leg_id, None)
        if peer is not None:
            self.bridges.pop(peer, None)
            self._unfeed(peer, "bridge")  # the peer hears nothing from this leg any more
        self.feeds.pop(leg_id, None)
        self.ports.pop(leg_id, None)
