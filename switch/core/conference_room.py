"""The pieces of a conference room (`switch.core.conferences`): a seat per participant, the room, what a seat
asks for, and what the rooms need of the media layer (the mixer) and of the session layer (announcements)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from switch.core.conference_model import MAX_PARTICIPANTS, Conference, Participant
from switch.core.conference_recording import RecordingAsked


class Records(Protocol):
    """Where a seat reads its participant record."""

    def participant_record(self, call_sid: str) -> Participant: ...


class ConferenceFull(Exception):
    """The room holds maxParticipants already."""


class Mixer(Protocol):
    """The conference audio (`switch.workers.conference_mix.ConferenceMixer`)."""

    async def join(self, conf: str, call_sid: str, muted: bool = False) -> None: ...
    def mute(self, conf: str, call_sid: str, muted: bool) -> None: ...
    async def leave(self, conf: str, call_sid: str) -> None: ...
    async def play(self, conf: str, path: str) -> str: ...
    def close(self, conf: str) -> None: ...


Announcer = Callable[[str, str, Conference], Awaitable[list[Path]]]
"""Renders an announceUrl (url, method, room) into audio files to play (the session layer fetches and speaks it)."""


@dataclass(frozen=True)
class SeatOptions:
    """What `<Dial><Conference>` (or a REST-created participant) asks of its seat."""

    name: str
    muted: bool = False
    beep: str = "true"
    start_conference_on_enter: bool = True
    end_conference_on_exit: bool = False
    max_participants: int = MAX_PARTICIPANTS
    label: str | None = None
    coach: str | None = None
    status_callback: str | None = None
    status_callback_method: str = "POST"
    status_callback_event: tuple[str, ...] = ()
    record: RecordingAsked | None = None  # record="record-from-start"


@dataclass
class Seat:
    """One participant's place in a room, as the verb that runs it sees it."""

    call_sid: str
    room: Room
    options: SeatOptions
    changes: asyncio.Queue[str] = field(default_factory=asyncio.Queue)  # hold, unhold, leave
    hold_url: str | None = None
    hold_method: str = "GET"
    leave_reason: str | None = None  # set by whoever made it leave (kick, conference end)
    in_audio: bool = False
    gone: bool = False

    @property
    def record(self) -> Participant:
        return self.room.conferences.participant_record(self.call_sid)


@dataclass
class Room:
    """A conference in progress (or waiting to start)."""

    sid: str
    conferences: Records
    started: asyncio.Event = field(default_factory=asyncio.Event)
    seats: dict[str, Seat] = field(default_factory=dict)
    callback: tuple[str, str, frozenset[str]] | None = None  # url, method, event kinds
    sequence: int = 0
    ended: bool = False
    pending: set[str] = field(default_factory=set)  # REST-created participants not answered yet
    record: tuple[str, RecordingAsked] | None = None  # who asked for the recording, and how (once it starts)
