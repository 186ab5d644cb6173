"""The conference rooms' rules on a real store (`switch.core.conferences`): start and end, waiting, events in order
with sequence numbers, mute/hold/modify/kick over the REST operations, labels, capacity, lists, a restart.

The audio is out of scope here (tests/e2e/test_conference_e2e.py hears it): the mixer is a recorder of what the
rooms asked of it."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from switch.core.conference_model import ConferenceFilter, ConferenceStatus, ParticipantStatus, ParticipantUpdate
from switch.core.conference_room import ConferenceFull, Seat, SeatOptions
from switch.core.conferences import Conferences
from switch.core.errors import InvalidArgument, NotFound
from switch.core.events import CallEvent, CallEvents, ConferenceEvent
from switch.core.model import Call, Direction, new_sid, utcnow
from switch.core.status import CallStatus
from switch.core.store import Store

ACCOUNT = "AC" + "a" * 32
HOOK = "http://127.0.0.1:9/conf"
ALL_EVENTS = ("start", "end", "join", "leave", "mute", "hold", "modify", "speaker", "announcement")


class MixerLog:
    """Stands in for the media layer's mixer: records the rooms' requests."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    async def join(self, conf: str, call_sid: str, muted: bool = False) -> None:
        self.calls.append(("join", call_sid, str(muted)))

    def mute(self, conf: str, call_sid: str, muted: bool) -> None:
        self.calls.append(("mute", call_sid, str(muted)))

    async def leave(self, conf: str, call_sid: str) -> None:
        self.calls.append(("leave", call_sid))

    async def play(self, conf: str, path: str) -> str:
        self.calls.append(("play", Path(path).name))
        return "eof"

    def close(self, conf: str) -> None:
        self.calls.append(("close", conf))


def a_call() -> Call:
    now = utcnow()
    return Call(sid=new_sid("CA"), account_sid=ACCOUNT, to="+15550001", from_="+15550002",
                direction=Direction.INBOUND, status=CallStatus.IN_PROGRESS, date_created=now, date_updated=now)


@pytest.fixture
def events() -> tuple[CallEvents, list[ConferenceEvent]]:
    bus, seen = CallEvents(), []

    def keep(event: CallEvent) -> None:
        if isinstance(event, ConferenceEvent):
            seen.append(event)

    bus.subscribe(keep)
    return bus, seen


@pytest.fixture
def mixer() -> MixerLog:
    return MixerLog()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "db.sqlite")


@pytest.fixture
def rooms(store: Store, tmp_path: Path, events: tuple[CallEvents, list[ConferenceEvent]],
          mixer: MixerLog) -> Conferences:
    confs = Conferences(store, ACCOUNT, events[0], mixer)
    confs.beep_path = tmp_path / "beep.wav"
    return confs


def options(**kwargs: object) -> SeatOptions:
    base: dict[str, object] = {"name": "room", "status_callback": HOOK, "status_callback_event": ALL_EVENTS,
                               "beep": "false"}
    base.update(kwargs)
    return SeatOptions(**base)  # type: ignore[arg-type]


def kinds(seen: list[ConferenceEvent]) -> list[tuple[int, str, str | None]]:
    return [(e.sequence, e.kind, e.participant.call_sid if e.participant else None) for e in seen]


async def test_a_room_starts_with_a_moderator_and_ends_with_the_last_one(
        rooms: Conferences, events: tuple[CallEvents, list[ConferenceEvent]], mixer: MixerLog) -> None:
    a, b = a_call(), a_call()
    seat_a = rooms.enter(a, options(start_conference_on_enter=False))
    sid = seat_a.room.sid
    assert rooms.conference(sid).status is ConferenceStatus.INIT and not seat_a.room.started.is_set()
    seat_b = rooms.enter(b, options())
    assert rooms.conference(sid).status is ConferenceStatus.IN_PROGRESS and seat_a.room.started.is_set()
    await rooms.join_audio(seat_a)
    await rooms.join_audio(seat_b)
    rooms.leave(seat_a, call_terminal=True, call_status="completed")
    assert rooms.conference(sid).status is ConferenceStatus.IN_PROGRESS
    rooms.leave(seat_b, call_terminal=True, call_status="completed")
    conf = rooms.conference(sid)
    assert conf.status is ConferenceStatus.COMPLETED
    assert conf.reason_conference_ended == "last-participant-left" and conf.call_sid_ending_conference == b.sid
    seen = events[1]
    assert kinds(seen) == [(1, "participant-join", a.sid), (2, "participant-join", b.sid),
                           (3, "conference-start", None), (4, "participant-leave", a.sid),
                           (5, "participant-leave", b.sid), (6, "conference-end", None)]
    assert seen[3].reason == "participant_hung_up" and seen[3].call_status == "completed"
    await asyncio.sleep(0)  # the mix is left in the background
    assert mixer.calls[:2] == [("join", a.sid, "False"), ("join", b.sid, "False")]
    assert sorted(mixer.calls[2:]) == sorted([("close", sid), ("leave", a.sid), ("leave", b.sid)])
    assert seen[3].participant is not None and seen[3].participant.status is ParticipantStatus.COMPLETE
    with pytest.raises(NotFound):  # as on Twilio, a participant is one only while it is in its conference
        rooms.participant(sid, a.sid)
    assert rooms._participants.values() == []  # and no row of it stays behind


async def test_end_conference_on_exit_sends_everyone_out(
        rooms: Conferences, events: tuple[CallEvents, list[ConferenceEvent]]) -> None:
    host, guest = a_call(), a_call()
    seat_host = rooms.enter(host, options(end_conference_on_exit=True, label="host"))
    seat_guest = rooms.enter(guest, options())
    rooms.leave(seat_host, call_terminal=True, call_status="completed")
    assert seat_guest.changes.get_nowait() == "leave" and seat_guest.leave_reason == "conference_ended"
    conf = rooms.conference(seat_host.room.sid)
    assert conf.reason_conference_ended == "participant-with-end-conference-on-exit-left"
    assert conf.call_sid_ending_conference == host.sid
    end = events[1][-1]
    assert end.kind == "conference-end" and end.ending is not None and end.ending.label == "host"
    rooms.leave(seat_guest, call_terminal=False, call_status="in-progress")  # its verb leaves once told
    assert [e.kind for e in events[1]][-1] == "participant-leave"
    assert events[1][-1].reason == "conference_ended"


async def test_rest_operations_in_order(rooms: Conferences, events: tuple[CallEvents, list[ConferenceEvent]],
                                        mixer: MixerLog) -> None:
    a, b = a_call(), a_call()
    seat_a = rooms.enter(a, options(label="agent"))
    seat_b = rooms.enter(b, options())
    sid = seat_a.room.sid
    await rooms.join_audio(seat_a)
    assert rooms.participant(sid, "agent").call_sid == a.sid
    assert rooms.participant(sid, b.sid).call_sid == b.sid
    with pytest.raises(NotFound):
        rooms.participant(sid, "nobody")
    muted = await rooms.update_participant(sid, "agent", ParticipantUpdate(muted=True))
    assert muted.muted and ("mute", a.sid, "True") in mixer.calls
    assert [p.call_sid for p in rooms.list_participants(sid, muted=True)] == [a.sid]
    held = await rooms.update_participant(sid, b.sid, ParticipantUpdate(hold=True, hold_url="http://127.0.0.1:9/h"))
    assert held.hold and seat_b.changes.get_nowait() == "hold" and seat_b.hold_url == "http://127.0.0.1:9/h"
    await rooms.update_participant(sid, b.sid, ParticipantUpdate(hold=False))
    assert seat_b.changes.get_nowait() == "unhold"
    await rooms.update_participant(sid, b.sid, ParticipantUpdate(end_conference_on_exit=True))
    with pytest.raises(InvalidArgument):
        await rooms.update_participant(sid, b.sid, ParticipantUpdate(coaching=True))
    await rooms.kick(sid, "agent")
    assert seat_a.changes.get_nowait() == "leave"
    rooms.leave(seat_a, call_terminal=False, call_status="in-progress")
    assert kinds(events[1]) == [
        (1, "participant-join", a.sid), (2, "conference-start", None), (3, "participant-join", b.sid),
        (4, "participant-mute", a.sid), (5, "participant-hold", b.sid),
        (6, "participant-unhold", b.sid), (7, "participant-modify", b.sid), (8, "participant-leave", a.sid)]
    assert events[1][-1].reason == "participant_kicked"
    assert rooms.conference(sid).status is ConferenceStatus.IN_PROGRESS
    ended = await rooms.end(sid)
    assert ended.status is ConferenceStatus.COMPLETED and ended.reason_conference_ended == "conference-ended-via-api"
    assert seat_b.changes.get_nowait() == "leave"


async def test_only_the_events_asked_for_are_sent(
        rooms: Conferences, events: tuple[CallEvents, list[ConferenceEvent]]) -> None:
    a = a_call()
    seat = rooms.enter(a, options(status_callback_event=()))  # statusCallback alone: start and end
    rooms.enter(a_call(), options(status_callback="http://127.0.0.1:9/other"))  # the first callback stays
    rooms.leave(seat, call_terminal=True, call_status="completed")
    await rooms.end(seat.room.sid)
    assert [(e.sequence, e.kind, e.url) for e in events[1]] == [(1, "conference-start", HOOK),
                                                                (2, "conference-end", HOOK)]


async def test_capacity_names_and_lists(rooms: Conferences, store: Store, tmp_path: Path) -> None:
    first = rooms.enter(a_call(), options(max_participants=2))
    rooms.enter(a_call(), options(max_participants=2))
    with pytest.raises(ConferenceFull):
        rooms.enter(a_call(), options(max_participants=2))
    other = rooms.enter(a_call(), options(name="other"))
    assert other.room.sid != first.room.sid
    today = dt.datetime.now(dt.UTC).date()
    assert {c.friendly_name for c in rooms.list_conferences(ConferenceFilter(created_on=today))} == {"room", "other"}
    assert [c.sid for c in rooms.list_conferences(ConferenceFilter(friendly_name="other"))] == [other.room.sid]
    await rooms.end(other.room.sid)
    done = rooms.list_conferences(ConferenceFilter(status=ConferenceStatus.COMPLETED))
    assert [c.sid for c in done] == [other.room.sid]
    again = rooms.enter(a_call(), options(name="other"))  # a name whose room ended gets a new room
    assert again.room.sid != other.room.sid
    # a restart: rooms left open by the last run are completed, and the participants it left in them go
    store.commit()
    assert len(rooms._participants.values()) == 4  # first's two, other's one (told to leave, not gone yet), again's
    reopened = Conferences(Store(tmp_path / "db.sqlite"), ACCOUNT, CallEvents())
    assert reopened.conference(first.room.sid).status is ConferenceStatus.COMPLETED
    assert reopened._participants.values() == []
    assert reopened.conference(other.room.sid).reason_conference_ended == "conference-ended-via-api"


async def test_seat_waits_then_leaves_when_the_room_ends_before_it_starts(rooms: Conferences) -> None:
    seat: Seat = rooms.enter(a_call(), options(start_conference_on_enter=False))
    waiter = asyncio.ensure_future(seat.room.started.wait())
    await rooms.end(seat.room.sid)
    await asyncio.wait_for(waiter, 1)
    assert seat.room.ended and seat.changes.get_nowait() == "leave"
