"""What a recording is: its status, its source and its record, as the store, the events and the dialects see it.

The life cycle (`NEXT_STATUS`, applied by `switch.core.recordings`) and the work (taps, files, finalization) live in
`switch.core.recordings`, which re-exports these names.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field

from switch.core.errors import InvalidState
from switch.core.model import utcnow


class RecordingStatus(enum.StrEnum):
    """Twilio's recording statuses."""

    IN_PROGRESS = "in-progress"
    PAUSED = "paused"
    STOPPED = "stopped"
    PROCESSING = "processing"
    COMPLETED = "completed"
    ABSENT = "absent"

    @property
    def final(self) -> bool:
        return self in (RecordingStatus.COMPLETED, RecordingStatus.ABSENT)

    @property
    def capturing(self) -> bool:
        return self in (RecordingStatus.IN_PROGRESS, RecordingStatus.PAUSED)


class RecordingSource(enum.StrEnum):
    """What started a recording; each dialect names it its own way."""

    CALL = "call"  # the call was created to be recorded (REST Record=true), from its answer
    DIAL = "dial"  # <Dial record>, <Conversation record>
    RECORD = "record"  # <Record>
    API = "api"  # a REST request to record a call in progress
    CONFERENCE = "conference"  # <Conference record="record-from-start">: the room's mix


class RecordingProblem(enum.StrEnum):
    """Why a recording ended `absent`; each dialect gives it its own code."""

    NOTHING_CAPTURED = "nothing-captured"  # no audio reached the disk (a failed tap, a call ended at once)
    SILENT = "silent"  # trim-silence left nothing


@dataclass
class Recording:
    """One recording and everything its REST resource and status callbacks say about it."""

    sid: str
    account_sid: str
    call_sid: str  # the call it belongs to (Twilio: always the parent leg)
    channels: int
    source: str  # a RecordingSource (older rows may hold a dialect's name for it)
    status: RecordingStatus
    date_created: dt.datetime = field(default_factory=utcnow)
    date_updated: dt.datetime = field(default_factory=utcnow)
    start_time: dt.datetime | None = None  # when the tap started
    duration: int | None = None  # whole seconds of the final file, once processed
    problem: RecordingProblem | None = None  # set when absent
    track: str = "both"
    conference_sid: str | None = None
    # How it was asked for; kept in the store so that a restarted switch can finish it and report it.
    trim: bool = False
    legs: tuple[str, ...] = ()  # the call SIDs tapped, leg0 first
    status_callback: str | None = None
    status_callback_method: str = "POST"
    status_callback_events: tuple[str, ...] = ("completed",)


@dataclass(frozen=True)
class RecordingFilter:
    """Filters of `GET .../Recordings.json`; None means "any".  Dates compare by UTC day."""

    call_sid: str | None = None
    date_created_on: dt.date | None = None
    date_created_before: dt.date | None = None  # DateCreated<= (Twilio's "<")
    date_created_after: dt.date | None = None  # DateCreated>= (Twilio's ">")


_S = RecordingStatus
NEXT_STATUS: dict[RecordingStatus, frozenset[RecordingStatus]] = {  # what each status may become
    _S.IN_PROGRESS: frozenset({_S.PAUSED, _S.STOPPED, _S.PROCESSING}),
    _S.PAUSED: frozenset({_S.IN_PROGRESS, _S.STOPPED, _S.PROCESSING}),
    _S.STOPPED: frozenset({_S.PROCESSING}),
    _S.PROCESSING: frozenset({_S.COMPLETED, _S.ABSENT}),
    _S.COMPLETED: frozenset(),
    _S.ABSENT: frozenset(),
}


class RecordingStateError(InvalidState):
    """A change the recording's status does not allow (pausing a completed recording, ...)."""

    def __init__(self, sid: str, status: RecordingStatus, wanted: RecordingStatus) -> None:
        super().__init__(f"Recording {sid} is {status}; it cannot become {wanted}")
