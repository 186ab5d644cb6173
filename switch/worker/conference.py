"""Conferences inside a worker: legs mixed on the pjsua conference bridge (`switch.workers.protocol_conf`).

A `Room` is one conference on this worker.  Its members form a full mesh: every member's port transmits to every
other member's port and never to itself (the bridge sums what each port is sent, so each member hears the mix of
the others).  A muted member transmits to nobody and still hears.  Besides the members a room holds:

- at most one *link* (`ConfLink`): a `media_taps.Tap` with an inbound sink and a source.  Every non-muted member
  transmits to the sink, which emits the local mix as `TapAudio`; the source plays what `TapSend` queues into
  every member.  The control plane sums the other workers' links into it (`switch.workers.conference_mix`), so
  a conference spans workers.  The source's queue is kept short (`LINK_QUEUE_FRAMES`): if the control plane's
  clock runs ahead of this worker's, the oldest audio is dropped instead of piling up as delay.
- players (`ConfPlay`): one file player transmitting to every member;
- recorders (`ConfRecord`): one mono WAV fed by every non-muted member, the link's source and the players, i.e.
  everything heard in the room on this worker.

Speaking.  Each member also transmits to a meter port of its own.  On the clock thread the meter takes the RMS of
the frame (numpy, a few microseconds) and keeps a small state: `SPEAK_FRAMES` frames above `SPEAK_RMS` start
speaking, `QUIET_FRAMES` below end it; each change is emitted as `ConfSpeaking`.  A muted member counts as quiet.

Everything is kept by leg id on the legs' current ports (`MediaManager.ports`); as a `MediaManager` listener the
manager re-makes a member's connections on its new port after a media change, makes a leg that ends leave
(`ConfLeft` `hangup`), and ends everything at shutdown (`shutdown`).  A leg bridged 1:1 or in another conference
cannot join (`ConfFailed`): the control plane unbridges (or leaves) first.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from switch.worker.media import Emit, MediaManager, Player, PlayerEof, Submit
from switch.worker.media_taps import Tap
from switch.worker.pjengine import pj
from switch.worker.pjmedia import CLOCK_RATE, FRAME_BYTES, destroy, error_text, frame_bytes, pcm_format
from switch.workers.protocol import (
    Command,
    ConfFailed,
    ConfJoin,
    ConfJoined,
    ConfLeave,
    ConfLeft,
    ConfLink,
    ConfMute,
    ConfPlay,
    ConfRecord,
    ConfSpeaking,
    PlayDone,
    PlayFailed,
    RecordDone,
    RecordFailed,
    StopPlay,
    StopRecord,
    TapFailed,
    TapSend,
    TapStart,
    TapStarted,
    TapStop,
)

log = logging.getLogger("switch.worker.conference")

SPEAK_RMS = 300.0  # a frame louder than this counts as speech
SPEAK_FRAMES = 2  # this many loud frames in a row: speaking
QUIET_FRAMES = 30  # this many quiet frames in a row (600 ms): silent again
LINK_QUEUE_FRAMES = 5  # at most 100 ms of link audio waits in the worker
_SILENCE = bytes(FRAME_BYTES)


class _Meter(pj.AudioMediaPort):  # type: ignore[misc]
    """A sink fed by one member: the energy of what the member sends, turned into `ConfSpeaking` events."""

    def __init__(self, conf: str, member: Member, emit: Emit) -> None:
        super().__init__()
        self.conf = conf
        self.member = member
        self.emit = emit

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:
        try:
            level = 0.0
            if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO:
                data = frame_bytes(frame)
                if len(data) == FRAME_BYTES:
                    samples = np.frombuffer(data, dtype=np.int16).astype(np.float32)
                    level = float(np.sqrt(np.dot(samples, samples) / len(samples)))
            change = self.member.observe(level)
            if change is not None:
                self.emit(ConfSpeaking(conf=self.conf, leg=self.member.leg, speaking=change, t=time.time()))
        except Exception:  # never raise into the clock thread
            log.exception("conference %s: meter of %s failed", self.conf, self.member.leg)

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:
        pass  # a sink only


class _Recorder(pj.AudioMediaPort):  # type: ignore[misc]
    """A sink that writes what the bridge mixes into it to a mono 16-bit WAV, one frame per clock tick.

    The frame is written on the clock thread (one `os.write` to the page cache); `close` on the pjsua thread
    fills in the header's lengths, so the file is complete when `RecordDone` leaves."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.frames = 0
        self._lock = threading.Lock()
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        os.write(self._fd, _wav_header(0))
        self.createPort(f"conf-rec-{os.path.basename(path)[-12:]}", pcm_format())

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:
        try:
            data = frame_bytes(frame) if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO else b""
            with self._lock:
                if self._fd is not None:
                    os.write(self._fd, data if len(data) == FRAME_BYTES else _SILENCE)
                    self.frames += 1
        except Exception:  # never raise into the clock thread
            log.exception("conference recording %s: frame lost", self.path)

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:
        pass  # a sink only

    def close(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.pwrite(fd, _wav_header(self.frames * FRAME_BYTES), 0)
            finally:
                os.close(fd)


def _wav_header(data_bytes: int) -> bytes:
    """The 44-byte header of a mono 16-bit PCM WAV at the bridge's rate holding `data_bytes` of samples."""
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, CLOCK_RATE, CLOCK_RATE * 2, 2, 16)
            + b"data" + struct.pack("<I", data_bytes))


@dataclass(eq=False)
class Member:
    """One leg in a room; `speaking`, `loud` and `quiet` belong to the clock thread."""

    leg: str
    muted: bool
    meter: _Meter | None = None
    speaking: bool = False
    loud: int = 0
    quiet: int = 0

    def observe(self, level: float) -> bool | None:
        """Clock thread: one frame's RMS; returns the new speaking state when it changes, else None."""
        if level > SPEAK_RMS and not self.muted:
            self.loud += 1
            self.quiet = 0
            if not self.speaking and self.loud >= SPEAK_FRAMES:
                self.speaking = True
                return True
        else:
            self.quiet += 1
            self.loud = 0
            if self.speaking and self.quiet >= QUIET_FRAMES:
                self.speaking = False
                return False
        return None


@dataclass(eq=False)
class Room:
    """One conference on this worker: members by leg, its link, players and recorders by id."""

    conf: str
    members: dict[str, Member] = field(default_factory=dict)
    link: Tap | None = None
    players: dict[str, Player] = field(default_factory=dict)
    recorders: dict[str, _Recorder] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.members or self.link or self.players or self.recorders)

    def extras(self) -> list[Any]:
        """What plays into every member besides the other members: the link's source and the players."""
        source = [] if self.link is None or self.link.source is None else [self.link.source]
        return [*source, *self.players.values()]

    def listeners(self) -> list[Any]:
        """What hears every non-muted member besides the other members: the link's sink and the recorders."""
        sink = [] if self.link is None or "inbound" not in self.link.sinks else [self.link.sinks["inbound"]]
        return [*sink, *self.recorders.values()]


def _start(source: Any, sink: Any, what: str) -> None:
    try:
        source.startTransmit(sink)
    except pj.Error as exc:
        log.warning("%s: cannot connect: %s", what, error_text(exc))


def _stop(source: Any, sink: Any) -> None:
    try:
        source.stopTransmit(sink)
    except pj.Error as exc:  # a port that went first (a hang-up) took the connection with it
        log.debug("stopTransmit: %s", error_text(exc))


class ConferenceManager:
    """The conferences of one worker, keyed by conference id; a listener of `MediaManager`."""

    def __init__(self, media: MediaManager, emit: Emit, submit: Submit, has_media: Callable[[str], bool]) -> None:
        self.media = media
        self.emit = emit
        self.submit = submit
        self.has_media = has_media
        self.rooms: dict[str, Room] = {}
        self.rooms_of_leg: dict[str, str] = {}  # member leg -> its conference
        self.owners: dict[str, str] = {}  # link, player and recorder ids -> their conference
        media.listeners.append(self)

    # -- commands (pjsua thread) -----------------------------------------------------------------------------
    def handle(self, command: Command | PlayerEof) -> bool:
        """Handle a conference command, or a tap/play/record command naming one of our ids; False: not ours."""
        match command:
            case ConfJoin():
                self._join(command)
            case ConfMute():
                self._mute(command)
            case ConfLeave():
                self._leave(command.conf, command.leg, "left", always=True)
            case ConfLink():
                self._link(command)
            case ConfPlay():
                self._play(command)
            case ConfRecord():
                self._record(command)
            case TapSend() | TapStop() | StopPlay() | StopRecord() | PlayerEof() if command.id in self.owners:
                room = self.rooms[self.owners[command.id]]
                if isinstance(command, TapSend):
                    self._send(room, command.payload)
                elif isinstance(command, TapStop):
                    self._unlink(room, "stopped")
                elif isinstance(command, StopPlay | PlayerEof):
                    self._stop_play(room, command.id, "eof" if isinstance(command, PlayerEof) else "stopped")
                else:
                    self._stop_record(room, command.id, "stopped")
            case _:
                return False
        return True

    def _room(self, conf: str) -> Room:
        room = self.rooms.get(conf)
        if room is None:
            room = self.rooms[conf] = Room(conf)
        return room

    def _drop_if_empty(self, room: Room) -> None:
        if room.empty:
            self.rooms.pop(room.conf, None)

    def _join(self, command: ConfJoin) -> None:
        conf, leg = command.conf, command.leg
        error = None
        if not self.has_media(leg):
            error = f"leg {leg} has no active audio"
        elif leg in self.media.bridges:
            error = f"leg {leg} is bridged to {self.media.bridges[leg]}: unbridge it first"
        elif self.rooms_of_leg.get(leg, conf) != conf:
            error = f"leg {leg} is in conference {self.rooms_of_leg[leg]}: leave it first"
        if error is not None:
            self.emit(ConfFailed(conf=conf, leg=leg, error=error))
            return
        room = self._room(conf)
        member = room.members.get(leg)
        if member is not None:  # joined already: only its mute may change
            self._set_muted(room, member, command.muted)
            self.emit(ConfJoined(conf=conf, leg=leg))
            return
        member = Member(leg, command.muted)
        try:
            meter = _Meter(conf, member, self.emit)
            meter.createPort(f"conf-meter-{leg[-8:]}", pcm_format())
        except pj.Error as exc:
            self._drop_if_empty(room)
            self.emit(ConfFailed(conf=conf, leg=leg, error=error_text(exc)))
            return
        member.meter = meter
        room.members[leg] = member
        self.rooms_of_leg[leg] = conf
        port = self.media.ports.get(leg)
        if port is not None:
            self._connect(room, member, port)
        self.emit(ConfJoined(conf=conf, leg=leg))

    def _mute(self, command: ConfMute) -> None:
        room = self.rooms.get(command.conf)
        member = None if room is None else room.members.get(command.leg)
        if room is not None and member is not None:
            self._set_muted(room, member, command.muted)

    def _leave(self, conf: str, leg: str, reason: str, always: bool = False) -> None:
        room = self.rooms.get(conf)
        member = None if room is None else room.members.pop(leg, None)
        if room is not None and member is not None:
            self.rooms_of_leg.pop(leg, None)
            port = self.media.ports.get(leg)
            if port is not None:
                self._disconnect(room, member, port)
            if member.meter is not None:
                destroy(member.meter)
                member.meter = None
            self._drop_if_empty(room)
        if member is not None or always:
            self.emit(ConfLeft(conf=conf, leg=leg, reason=reason))

    # -- a member's connections --------------------------------------------------------------------------------
    def _connect(self, room: Room, member: Member, port: Any) -> None:
        """(Re)make every connection of `member` on its port `port` (connections in place are left as they are)."""
        what = f"conference {room.conf}: {member.leg}"
        for other in room.members.values():
            other_port = self.media.ports.get(other.leg)
            if other is member or other_port is None:
                continue
            if not member.muted:
                _start(port, other_port, what)
            if not other.muted:
                _start(other_port, port, what)
        if member.meter is not None:
            _start(port, member.meter, what)
        for source in room.extras():
            _start(source, port, what)
        if not member.muted:
            for sink in room.listeners():
                _start(port, sink, what)

    def _disconnect(self, room: Room, member: Member, port: Any) -> None:
        for other in room.members.values():
            other_port = self.media.ports.get(other.leg)
            if other is not member and other_port is not None:
                _stop(port, other_port)
                _stop(other_port, port)
        if member.meter is not None:
            _stop(port, member.meter)
        for source in room.extras():
            _stop(source, port)
        for sink in room.listeners():
            _stop(port, sink)

    def _set_muted(self, room: Room, member: Member, muted: bool) -> None:
        if member.muted == muted:
            return
        member.muted = muted
        port = self.media.ports.get(member.leg)
        if port is None:
            return  # connected as it should be once it has a port
        sinks = [self.media.ports.get(o.leg) for o in room.members.values() if o is not member]
        for sink in [*[s for s in sinks if s is not None], *room.listeners()]:
            if muted:
                _stop(port, sink)
            else:
                _start(port, sink, f"conference {room.conf}: unmute {member.leg}")

    def _member_ports(self, room: Room, heard_only: bool = False) -> list[Any]:
        ports = [self.media.ports.get(m.leg) for m in room.members.values() if not (heard_only and m.muted)]
        return [p for p in ports if p is not None]

    # -- the link ----------------------------------------------------------------------------------------------
    def _link(self, command: ConfLink) -> None:
        room = self._room(command.conf)
        if room.link is not None:
            self._drop_if_empty(room)
            self.emit(TapFailed(id=command.id, leg="", error=f"conference {room.conf} has a link already"))
            return
        try:
            link = Tap(TapStart(id=command.id, leg="", tracks=("inbound",), inject=True), self.emit)
        except pj.Error as exc:
            self._drop_if_empty(room)
            self.emit(TapFailed(id=command.id, leg="", error=error_text(exc)))
            return
        room.link = link
        self.owners[link.id] = room.conf
        sink, source = link.sinks["inbound"], link.source
        for port in self._member_ports(room, heard_only=True):
            _start(port, sink, f"link {link.id}")
        for port in self._member_ports(room):
            _start(source, port, f"link {link.id}")
        for rec in room.recorders.values():
            _start(source, rec, f"link {link.id}")
        self.emit(TapStarted(id=link.id, leg=""))

    def _send(self, room: Room, payload: bytes) -> None:
        link = room.link
        if link is None:
            return
        link.send(payload)
        while len(link.queue) > LINK_QUEUE_FRAMES:  # the control plane runs ahead: drop the oldest
            try:
                link.queue.popleft()
            except IndexError:
                break

    def _unlink(self, room: Room, reason: str) -> None:
        link, room.link = room.link, None
        if link is None:
            return
        self.owners.pop(link.id, None)
        sink, source = link.sinks.get("inbound"), link.source
        for port in self._member_ports(room):
            if sink is not None:
                _stop(port, sink)
            if source is not None:
                _stop(source, port)
        for rec in room.recorders.values():
            if source is not None:
                _stop(source, rec)
        link.close(reason)
        self._drop_if_empty(room)

    # -- players -----------------------------------------------------------------------------------------------
    def _play(self, command: ConfPlay) -> None:
        room = self._room(command.conf)
        player = Player(command.id, "", self.submit, False)
        try:
            player.createPlayer(command.path, pj.PJMEDIA_FILE_NO_LOOP)
        except pj.Error as exc:
            destroy(player)
            self._drop_if_empty(room)
            self.emit(PlayFailed(id=command.id, leg="", error=error_text(exc)))
            return
        for sink in [*self._member_ports(room), *room.recorders.values()]:
            _start(player, sink, f"conference play {command.id}")
        room.players[command.id] = player
        self.owners[command.id] = room.conf

    def _stop_play(self, room: Room, play_id: str, reason: str) -> None:
        player = room.players.pop(play_id, None)
        self.owners.pop(play_id, None)
        if player is None:
            return
        for sink in [*self._member_ports(room), *room.recorders.values()]:
            _stop(player, sink)
        destroy(player)
        self._drop_if_empty(room)
        self.emit(PlayDone(id=play_id, leg="", reason=reason))

    # -- recorders ---------------------------------------------------------------------------------------------
    def _record(self, command: ConfRecord) -> None:
        room = self._room(command.conf)
        try:
            recorder = _Recorder(command.path)
        except (pj.Error, OSError) as exc:
            self._drop_if_empty(room)
            self.emit(RecordFailed(id=command.id, error=error_text(exc) if isinstance(exc, pj.Error) else str(exc)))
            return
        for source in [*self._member_ports(room, heard_only=True), *room.extras()]:
            _start(source, recorder, f"conference recording {command.id}")
        room.recorders[command.id] = recorder
        self.owners[command.id] = room.conf

    def _stop_record(self, room: Room, rec_id: str, reason: str) -> None:
        recorder = room.recorders.pop(rec_id, None)
        self.owners.pop(rec_id, None)
        if recorder is None:
            return
        for source in [*self._member_ports(room), *room.extras()]:
            _stop(source, recorder)
        recorder.close()  # the header's lengths: the file is complete from here on
        destroy(recorder)
        self._drop_if_empty(room)
        self.emit(RecordDone(id=rec_id, frames=recorder.frames, reason=reason))

    # -- MediaManager listener ---------------------------------------------------------------------------------
    def port_changed(self, leg_id: str, port: Any | None) -> None:
        """The leg has a new port (a media change took the old one and its connections): connect it again."""
        room = self.rooms.get(self.rooms_of_leg.get(leg_id, ""))
        member = None if room is None else room.members.get(leg_id)
        if room is not None and member is not None and port is not None:
            self._connect(room, member, port)

    def feed_changed(self, leg_id: str, source: Any, added: bool) -> None:
        pass  # a member's own players do not concern its conference

    def leg_gone(self, leg_id: str) -> None:
        conf = self.rooms_of_leg.get(leg_id)
        if conf is not None:
            self._leave(conf, leg_id, "hangup")

    def close_all(self) -> None:
        """Worker shutdown: every member leaves (`shutdown`), links, players and recorders end."""
        for room in list(self.rooms.values()):
            for leg in list(room.members):
                self._leave(room.conf, leg, "shutdown")
            self._unlink(room, "shutdown")
            for play_id in list(room.players):
                self._stop_play(room, play_id, "shutdown")
            for rec_id in list(room.recorders):
                self._stop_record(room, rec_id, "shutdown")
        self.rooms.clear()
        self.rooms_of_leg.clear()
        self.owners.clear()
