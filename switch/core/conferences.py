"""Conferences: rooms made by `<Dial><Conference>`, their participants, their events and their REST operations.

A room (`Room`) lives while anyone is in it; its record (`Conference`) and its participants' records stay in the
store.  Each participant is a `Seat`: the `<Dial><Conference>` verb (`switch.verbs.dial_conference`) enters it,
runs the wait music until the room starts, joins its audio to the room's mix, and follows what the room and the
REST API ask of it (`Seat.changes`: hold, unhold, leave) until it leaves.  The audio itself is the media layer's
(`switch.workers.conference_mix.ConferenceMixer`, reached through the `Mixer` protocol): each worker mixes its
own members and the control plane joins the workers' mixes.

Rules, as Twilio's: a room starts (`init` -> `in-progress`) when a participant with startConferenceOnEnter enters;
until then everyone waits with the wait music.  It ends (`completed`) when the last participant leaves, when one
with endConferenceOnExit leaves, or by REST (`Status=completed`); everyone still in it leaves then.  The first
participant that names a statusCallback gives the room its callback; `ConferenceEvent`s are numbered from 1.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from switch.core.conference_coach import Whispers
from switch.core.conference_dialout import add_participant
from switch.core.conference_model import (
    DEFAULT_EVENT_WORDS,
    EVENT_WORDS,
    MAX_PARTICIPANTS,
    Conference,
    ConferenceFilter,
    ConferenceStatus,
    Participant,
    ParticipantCreate,
    ParticipantStatus,
    ParticipantUpdate,
)
from switch.core.conference_recording import RoomRecorder
from switch.core.conference_room import Announcer, ConferenceFull, Mixer, Room, Seat, SeatOptions
from switch.core.errors import Conflict, InvalidArgument, NotFound
from switch.core.events import CallEvents, ConferenceEvent
from switch.core.model import Call, new_sid, utcnow
from switch.core.sip_domain_table import RecordTable
from switch.core.store import Store
from switch.core.tasks import TaskSet

if TYPE_CHECKING:
    from switch.core.calls import CallManager

log = logging.getLogger("switch.core.conferences")

class Conferences:
    """Implements `switch.core.conference_model.ConferenceService`; see the module docstring."""

    def __init__(self, store: Store, account_sid: str, events: CallEvents, mixer: Mixer | None = None,
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.account_sid = account_sid
        self.events = events
        self.mixer = mixer
        self.clock = clock
        self.announcer: Announcer | None = None
        self.calls: CallManager | None = None  # places REST-created participants
        self.recorder: RoomRecorder | None = None  # record="record-from-start"
        self.whispers: Whispers | None = None  # coaches heard by the participant they coach
        self.beep_path: Path | None = None  # played to the room on join/leave (the beep attribute)
        self._table = RecordTable(store, "conferences", Conference, account_sid)
        self._participants = RecordTable(store, "conference_participants", Participant, account_sid, key="call_sid")
        self._rooms: dict[str, Room] = {}  # sid -> the live room
        self._by_name: dict[str, str] = {}  # friendly name -> sid of its live room
        self._tasks = TaskSet()  # beeps, announcements, members leaving the mix
        self.recordings_of: Callable[[str], list[str]] | None = None  # the store's recordings of a room
        for conf in self._table.values():  # rooms a previous run left open cannot be in progress any more
            if conf.status is not ConferenceStatus.COMPLETED:
                self._table.put(dataclasses.replace(conf, status=ConferenceStatus.COMPLETED,
                                                    reason_conference_ended="last-participant-left"))
        # Twilio shows a participant only while it is in its conference: no row outlives its seat (rows left by
        # a previous run, whose rooms are all closed now, go too)
        self._participants.delete([p.call_sid for p in self._participants.values()])

    # -- the verb's side -----------------------------------------------------------------------------------
    def enter(self, call: Call, options: SeatOptions) -> Seat:
        """Seat `call` in the room named `options.name` (made now if no room of that name is live)."""
        room = self._room_named(options.name)
        if len(room.seats) >= max(2, min(options.max_participants, MAX_PARTICIPANTS)):
            raise ConferenceFull(f"conference {options.name!r} holds {len(room.seats)} participants already")
        now = self.clock()
        seat = Seat(call_sid=call.sid, room=room, options=options)
        room.seats[call.sid] = seat
        room.pending.discard(call.sid)
        self._participants.put(Participant(
            call_sid=call.sid, account_sid=self.account_sid, conference_sid=room.sid,
            status=ParticipantStatus.CONNECTED, date_created=now, date_updated=now, label=options.label,
            muted=options.muted, coaching=options.coach is not None, call_sid_to_coach=options.coach,
            start_conference_on_enter=options.start_conference_on_enter,
            end_conference_on_exit=options.end_conference_on_exit))
        if room.callback is None and options.status_callback:
            words = options.status_callback_event or DEFAULT_EVENT_WORDS
            kinds = frozenset(kind for word in words for kind in EVENT_WORDS.get(word, ()))
            room.callback = (options.status_callback, options.status_callback_method.upper(), kinds)
        self._emit(room, "participant-join", seat)
        if options.start_conference_on_enter and not room.started.is_set():
            self._update(room.sid, status=ConferenceStatus.IN_PROGRESS)
            room.started.set()
            self._emit(room, "conference-start", None)
            for waiting in room.seats.values():  # whoever asked for a recording while waiting
                self._record(room, waiting)
        elif room.started.is_set():
            self._record(room, seat)
        return seat

    def _record(self, room: Room, seat: Seat) -> None:
        """Record the room from its first audio on (the mix has nothing to record before a member is in it)."""
        if seat.options.record is not None and room.record is None:
            room.record = (seat.call_sid, seat.options.record)

    async def join_audio(self, seat: Seat) -> None:
        """Put `seat` into the room's mix (muted as its record says); beeps the room on a first join."""
        if self.mixer is None or seat.gone:
            return
        first = not seat.in_audio and seat.hold_url is None
        record = seat.record
        await self.mixer.join(seat.room.sid, seat.call_sid, muted=record.muted or record.coaching)
        seat.in_audio = True
        self._whisper(seat.room)
        if seat.room.record is not None and self.recorder is not None and not seat.room.ended:
            self.recorder.start(seat.room.sid, *seat.room.record)
        if first and seat.options.beep in ("true", "onEnter"):
            self._beep(seat.room)

    async def leave_audio(self, seat: Seat) -> None:
        """Take `seat` out of the mix (hold); it stays a participant."""
        if self.mixer is not None and seat.in_audio:
            seat.in_audio = False
            await self.mixer.leave(seat.room.sid, seat.call_sid)

    def leave(self, seat: Seat, call_terminal: bool, call_status: str) -> None:
        """`seat` left: its call hung up, was redirected, was kicked, or the room ended."""
        if seat.gone:
            return
        seat.gone = True
        room = seat.room
        room.seats.pop(seat.call_sid, None)
        reason = seat.leave_reason or ("participant_hung_up" if call_terminal else "participant_updated_via_api")
        record = self._set_participant(seat.call_sid, status=ParticipantStatus.COMPLETE)
        if seat.in_audio and self.mixer is not None:
            self._tasks.spawn(self.mixer.leave(room.sid, seat.call_sid), seat.call_sid)
            seat.in_audio = False
        if self.whispers is not None:
            self.whispers.forget(seat.call_sid)
        self._emit(room, "participant-leave", seat, reason=reason, call_status=call_status, participant=record)
        if room.ended:
            return
        kicked = seat.leave_reason == "participant_kicked"
        if seat.options.end_conference_on_exit and room.started.is_set():
            why = "participant-with-end-conference-on-exit-" + ("kicked" if kicked else "left")
            self._end(room, why, record)
        elif not room.seats and not room.pending:
            self._end(room, "last-participant-kicked" if kicked else "last-participant-left", record)
        elif seat.options.beep in ("true", "onExit") and room.started.is_set():
            self._beep(room)
        self._participants.delete([seat.call_sid])  # its last event is out: a participant no longer

    def speaking(self, conf: str, call_sid: str, speaking: bool) -> None:
        """The mixer heard `call_sid` start or stop speaking."""
        room = self._rooms.get(conf)
        seat = room.seats.get(call_sid) if room is not None else None
        if room is not None and seat is not None:
            self._emit(room, "participant-speech-start" if speaking else "participant-speech-stop", seat)

    # -- REST ----------------------------------------------------------------------------------------------
    def list_conferences(self, flt: ConferenceFilter) -> list[Conference]:
        return sorted((c for c in self._table.values() if flt.keep(c)), key=lambda c: c.date_created, reverse=True)

    def conference(self, sid: str) -> Conference:
        conf = self._table.get(sid)
        if conf is None:
            raise NotFound(f"Conference {sid}")
        return conf

    async def end(self, sid: str) -> Conference:
        self.conference(sid)
        room = self._rooms.get(sid)
        if room is not None:
            self._end(room, "conference-ended-via-api", None)
        return self.conference(sid)

    async def announce(self, sid: str, url: str, method: str) -> Conference:
        conf = self.conference(sid)
        room = self._live(sid)
        self._tasks.spawn(self._announce(room, url, method, None), room.sid)
        return conf

    def list_participants(self, sid: str, muted: bool | None = None, hold: bool | None = None,
                          coaching: bool | None = None) -> list[Participant]:
        self.conference(sid)
        room = self._rooms.get(sid)
        seats = [*room.seats, *sorted(room.pending)] if room is not None else []
        records = [self.participant_record(call_sid) for call_sid in seats]
        return [p for p in records if (muted is None or p.muted == muted) and (hold is None or p.hold == hold)
                and (coaching is None or p.coaching == coaching)]

    def participant(self, sid: str, key: str) -> Participant:
        room = self._rooms.get(sid)
        if room is not None and key in room.pending:
            return self.participant_record(key)
        return self._seat(sid, key).record

    async def add_participant(self, sid_or_name: str, create: ParticipantCreate) -> Participant:
        if self.calls is None:
            raise Conflict("participants can be added only while the switch places calls")
        return await add_participant(self, self.calls, sid_or_name, create)

    # -- REST-created participants (switch.core.conference_dialout) -----------------------------------------
    def live_room(self, sid: str) -> Room | None:
        return self._rooms.get(sid)

    def room_named(self, name: str) -> Room:
        """The live room called `name`, made now if there is none."""
        return self._room_named(name)

    def pending_participant(self, room: Room, call_sid: str, create: ParticipantCreate) -> Participant:
        """A participant being dialed: listed (queued, then ringing) until it answers and enters."""
        now = self.clock()
        room.pending.add(call_sid)
        record = Participant(
            call_sid=call_sid, account_sid=self.account_sid, conference_sid=room.sid,
            status=ParticipantStatus.QUEUED, date_created=now, date_updated=now, label=create.label,
            muted=create.muted, coaching=create.coaching, call_sid_to_coach=create.call_sid_to_coach,
            start_conference_on_enter=create.start_conference_on_enter,
            end_conference_on_exit=create.end_conference_on_exit)
        self._participants.put(record)
        return record

    def set_pending(self, call_sid: str, status: ParticipantStatus) -> None:
        record = self._participants.get(call_sid)
        if record is not None and record.status in (ParticipantStatus.QUEUED, ParticipantStatus.RINGING):
            self._set_participant(call_sid, status=status)

    def pending_ended(self, room: Room, call_sid: str) -> None:
        """A dialed participant's call ended: if it never entered, its record goes."""
        if call_sid not in room.pending:
            return
        room.pending.discard(call_sid)
        self._participants.delete([call_sid])  # it never entered: nothing to show of it
        if not room.seats and not room.pending and not room.ended:
            self._end(room, "last-participant-left", None)

    async def update_participant(self, sid: str, key: str, update: ParticipantUpdate) -> Participant:
        seat = self._seat(sid, key)
        record = seat.record
        room = seat.room
        if update.muted is not None and update.muted != record.muted:
            record = self._set_participant(seat.call_sid, muted=update.muted)
            if seat.in_audio and self.mixer is not None:
                self.mixer.mute(room.sid, seat.call_sid, update.muted or record.coaching)
            self._emit(room, "participant-mute" if update.muted else "participant-unmute", seat)
        if update.hold is not None and update.hold != record.hold:
            if update.hold:
                seat.hold_url, seat.hold_method = update.hold_url, (update.hold_method or "GET").upper()
            record = self._set_participant(seat.call_sid, hold=update.hold)
            seat.changes.put_nowait("hold" if update.hold else "unhold")
            self._emit(room, "participant-hold" if update.hold else "participant-unhold", seat)
        modified: dict[str, object] = {}
        if update.end_conference_on_exit is not None and update.end_conference_on_exit != record.end_conference_on_exit:
            modified["end_conference_on_exit"] = update.end_conference_on_exit
            seat.options = dataclasses.replace(seat.options, end_conference_on_exit=update.end_conference_on_exit)
        if update.coaching is not None and update.coaching != record.coaching:
            if update.coaching and not (update.call_sid_to_coach or record.call_sid_to_coach):
                raise InvalidArgument("CallSidToCoach is required to turn coaching on")
            modified["coaching"] = update.coaching
        if update.call_sid_to_coach is not None and update.call_sid_to_coach != record.call_sid_to_coach:
            modified["call_sid_to_coach"] = update.call_sid_to_coach
        if modified:
            record = self._set_participant(seat.call_sid, **modified)
            if seat.in_audio and self.mixer is not None and "coaching" in modified:
                self.mixer.mute(room.sid, seat.call_sid, record.muted or record.coaching)
            self._whisper(room)
            self._emit(room, "participant-modify", seat)
        if update.announce_url:
            method = (update.announce_method or "POST").upper()
            self._tasks.spawn(self._announce(room, update.announce_url, method, seat), room.sid)
        return record

    async def kick(self, sid: str, key: str) -> None:
        seat = self._seat(sid, key)
        seat.leave_reason = "participant_kicked"
        seat.changes.put_nowait("leave")

    def recordings(self, sid: str) -> list[str]:
        self.conference(sid)
        return self.recordings_of(sid) if self.recordings_of is not None else []

    def participant_record(self, call_sid: str) -> Participant:
        record = self._participants.get(call_sid)
        assert record is not None, call_sid
        return record

    async def close(self) -> None:
        if self.recorder is not None:  # recordings of rooms still open end with what reached the disk
            await self.recorder.close()
        if self.whispers is not None:
            await self.whispers.close()
        await self._tasks.cancel()

    # -- inside --------------------------------------------------------------------------------------------
    def _room_named(self, name: str) -> Room:
        sid = self._by_name.get(name)
        room = self._rooms.get(sid) if sid is not None else None
        if room is not None:
            return room
        now = self.clock()
        conf = Conference(sid=new_sid("CF"), account_sid=self.account_sid, friendly_name=name,
                          status=ConferenceStatus.INIT, date_created=now, date_updated=now)
        self._table.put(conf)
        room = Room(sid=conf.sid, conferences=self)
        self._rooms[conf.sid] = room
        self._by_name[name] = conf.sid
        return room

    def _live(self, sid: str) -> Room:
        room = self._rooms.get(sid)
        if room is None:
            raise Conflict(f"Conference {sid} is not in progress")
        return room

    def _seat(self, sid: str, key: str) -> Seat:
        self.conference(sid)
        room = self._rooms.get(sid)
        if room is not None:
            seat = room.seats.get(key)
            if seat is not None:
                return seat
            for seat in room.seats.values():
                if seat.options.label is not None and seat.options.label == key:
                    return seat
        raise NotFound(f"Participant {key} of conference {sid}")

    def _update(self, sid: str, **changes: object) -> Conference:
        conf = dataclasses.replace(self.conference(sid), date_updated=self.clock(), **changes)  # type: ignore[arg-type]
        self._table.put(conf)
        return conf

    def _set_participant(self, call_sid: str, **changes: object) -> Participant:
        record = dataclasses.replace(self.participant_record(call_sid), date_updated=self.clock(),
                                     **changes)  # type: ignore[arg-type]
        self._participants.put(record)
        return record

    def _end(self, room: Room, reason: str, ending: Participant | None) -> None:
        if room.ended:
            return
        room.ended = True
        self._rooms.pop(room.sid, None)
        if self._by_name.get(self.conference(room.sid).friendly_name) == room.sid:
            del self._by_name[self.conference(room.sid).friendly_name]
        self._update(room.sid, status=ConferenceStatus.COMPLETED, reason_conference_ended=reason,
                     call_sid_ending_conference=ending.call_sid if ending is not None else None)
        for seat in list(room.seats.values()):
            seat.leave_reason = seat.leave_reason or "conference_ended"
            seat.changes.put_nowait("leave")
        room.started.set()  # wakes whoever still waits for the start; they find the room ended
        self._emit(room, "conference-end", None, reason=reason, ending=ending)
        if self.recorder is not None:
            self.recorder.stop(room.sid)
        if self.mixer is not None:
            self.mixer.close(room.sid)

    def _whisper(self, room: Room) -> None:
        """Each coach in the room's audio whispers to the participant it coaches, if that one is in it too."""
        if self.whispers is None:
            return
        for seat in room.seats.values():
            record = seat.record
            target = room.seats.get(record.call_sid_to_coach or "")
            if record.coaching and seat.in_audio and target is not None and target.in_audio:
                self.whispers.start(seat.call_sid, target.call_sid)
            else:
                self.whispers.stop(seat.call_sid)

    def _beep(self, room: Room) -> None:
        if self.mixer is not None and self.beep_path is not None and room.started.is_set():
            self._tasks.spawn(self._play(room, self.beep_path), room.sid)

    async def _play(self, room: Room, path: Path) -> str:
        assert self.mixer is not None
        try:
            return await self.mixer.play(room.sid, str(path))
        except Exception as exc:  # a beep that cannot play is logged, never fatal
            log.info("conference %s: cannot play %s: %s", room.sid, path, exc)
            return "failed"

    async def _announce(self, room: Room, url: str, method: str, seat: Seat | None) -> None:
        """Play announceUrl's audio to the room (or to one seat's call), then announcement-end or -fail."""
        ok = False
        try:
            if self.announcer is None or self.mixer is None:
                raise RuntimeError("announcements need the voice engine")
            paths = await self.announcer(url, method, self.conference(room.sid))
            for path in paths:
                if seat is None:
                    ok = await self._play(room, path) == "eof"
                else:
                    seat.changes.put_nowait(f"play:{path}")
                    ok = True
        except Exception as exc:  # a failing announceUrl is an event, never fatal
            log.info("conference %s: announcement %s failed: %s", room.sid, url, exc)
        self._emit(room, "announcement-end" if ok else "announcement-fail", seat)

    def _emit(self, room: Room, kind: str, seat: Seat | None, reason: str | None = None,
              ending: Participant | None = None, call_status: str | None = None,
              participant: Participant | None = None) -> None:
        if room.callback is None or kind not in room.callback[2]:
            return
        room.sequence += 1
        url, method, _ = room.callback
        self.events.emit(ConferenceEvent(
            kind=kind, conference=self.conference(room.sid),
            participant=participant or (seat.record if seat is not None else None), url=url, method=method,
            sequence=room.sequence, at=self.clock(), reason=reason, ending=ending, call_status=call_status))
