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

Speaking.  Each member also transmits to a meter port of its own (`switch.worker.conference_ports.Meter`), which
emits `ConfSpeaking` when the member starts or stops speaking.  A muted member counts as quiet.

Feeds.  What a member hears from its room (the other members it hears, the link's source, the players) is
registered as its feeds (`MediaManager.feeds`, keys starting with `FEED`), like a player of its own or a bridged
leg: its audio taps' outbound track and mirror recordings of its outbound track hear the conference.  They are
brought up to date (`_refeed`) after every join, leave, mute, link, play and port change.

Everything is kept by leg id on the legs' current ports (`MediaManager.ports`); as a `MediaManager` listener the
manager re-makes a member's connections on its new port after a media change, makes a leg that ends leave
(`ConfLeft` `hangup`), and ends everything at shutdown (`shutdown`).  A leg bridged 1:1 or in another conference
cannot join (`ConfFailed`), and a member cannot be bridged 1:1 (`bridge_refusal`: the worker answers
`BridgeFailed`): the control plane unbridges (or leaves) first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from switch.worker.conference_ports import Member, Meter, Recorder
from switch.worker.media import Emit, MediaManager, Player, PlayerEof, Submit
from switch.worker.media_taps import Tap
from switch.worker.pjengine import pj
from switch.worker.pjmedia import destroy, error_text, pcm_format
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

LINK_QUEUE_FRAMES = 5  # at most 100 ms of link audio waits in the worker
FEED = "conf:"  # the keys of a leg's feeds (`MediaManager.feeds`) that its conference sends it


@dataclass(eq=False)
class Room:
    """One conference on this worker: members by leg, its link, players and recorders by id."""

    conf: str
    members: dict[str, Member] = field(default_factory=dict)
    link: Tap | None = None
    players: dict[str, Player] = field(default_factory=dict)
    recorders: dict[str, Recorder] = field(default_factory=dict)

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
            meter = Meter(conf, member, self.emit)
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
        self._refeed(room)
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
            self._sync_feeds(leg, {})
            self._refeed(room)
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
        self._refeed(room)  # the others hear it (or not) from now on
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
        self._refeed(room)
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
        self._refeed(room)  # before its ports go
        link.close(reason)
        self._drop_if_empty(room)

    # -- players -----------------------------------------------------------------------------------------------
    def _play(self, command: ConfPlay) -> None:
        room = self._room(command.conf)
        player = Player(command.id, "", self.submit, False)
        try:
            player.createPlayer(command.path, pj.PJMEDIA_FILE_NO_LOOP)
        except pj.Error as exc:
            self.media.retire(player)
            self._drop_if_empty(room)
            self.emit(PlayFailed(id=command.id, leg="", error=error_text(exc)))
            return
        for sink in [*self._member_ports(room), *room.recorders.values()]:
            _start(player, sink, f"conference play {command.id}")
        room.players[command.id] = player
        self.owners[command.id] = room.conf
        self._refeed(room)

    def _stop_play(self, room: Room, play_id: str, reason: str) -> None:
        player = room.players.pop(play_id, None)
        self.owners.pop(play_id, None)
        if player is None:
            return
        for sink in [*self._member_ports(room), *room.recorders.values()]:
            _stop(player, sink)
        self._refeed(room)  # before the player goes
        self.media.retire(player)  # not destroyed yet: switch.worker.media, "Players are destroyed late"
        self._drop_if_empty(room)
        self.emit(PlayDone(id=play_id, leg="", reason=reason))

    # -- recorders ---------------------------------------------------------------------------------------------
    def _record(self, command: ConfRecord) -> None:
        room = self._room(command.conf)
        try:
            recorder = Recorder(command.path)
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
        if room is None or member is None:
            return
        if port is not None:
            self._connect(room, member, port)
        self._refeed(room)  # the others' feeds name its new port (or no port)

    def feed_changed(self, leg_id: str, source: Any, added: bool) -> None:
        pass  # a member's own players (and what its conference sends it) do not concern the mixing

    # -- what each member hears, as its feeds (taps and mirror recordings of its outbound track hear them) -------
    def _heard_by(self, room: Room, member: Member) -> dict[str, Any]:
        """What the room sends `member` now, by feed key: the other members it hears, the link's source, players."""
        heard: dict[str, Any] = {}
        for other in room.members.values():
            port = self.media.ports.get(other.leg)
            if other is not member and not other.muted and port is not None:
                heard[f"{FEED}{other.leg}"] = port
        if room.link is not None and room.link.source is not None:
            heard[f"{FEED}link"] = room.link.source
        for play_id, player in room.players.items():
            heard[f"{FEED}play:{play_id}"] = player
        return heard

    def _sync_feeds(self, leg_id: str, wanted: dict[str, Any]) -> None:
        """Make the conference's feeds of `leg_id` exactly `wanted` (a changed source is replaced)."""
        current = {k: v for k, v in self.media.feeds.get(leg_id, {}).items() if k.startswith(FEED)}
        for key in current.keys() - wanted.keys():
            self.media.add_feed(leg_id, key, None)
        for key, source in wanted.items():
            if current.get(key) is not source:
                self.media.add_feed(leg_id, key, source)

    def _refeed(self, room: Room) -> None:
        """Bring every member's conference feeds up to date (after any change of the room or of a port)."""
        for member in list(room.members.values()):
            self._sync_feeds(member.leg, self._heard_by(room, member))

    def bridge_refusal(self, *legs: str) -> str | None:
        """Why `legs` cannot be bridged 1:1 now (one of them is in a conference here), or None."""
        for leg in legs:
            conf = self.rooms_of_leg.get(leg)
            if conf is not None:
                return f"leg {leg} is in conference {conf}: it must leave the conference before a bridge"
        return None

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
