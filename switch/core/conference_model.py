"""The records of conferences and queues (`switch.core.conferences`, `switch.core.queues`), as the REST API shows
them, and the operations the REST edge may ask of their managers.

Each record is a frozen dataclass whose fields are the columns of its table (`switch.core.sip_domain_table`
stores them), so a conference or a queue outlives the calls in it and a restart.  Statuses and field names follow
Twilio's Conference, Participant, Queue and Member resources.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Protocol

from switch.core.paging import within_days

MAX_PARTICIPANTS = 250  # Twilio's largest maxParticipants
DEFAULT_MAX_QUEUE = 1000  # Twilio: a queue's max_size defaults to 1000 (since 2021; it was 100)
MAX_QUEUE = 5000


# statusCallbackEvent words -> the events they ask for
EVENT_WORDS: dict[str, tuple[str, ...]] = {
    "start": ("conference-start",),
    "end": ("conference-end",),
    "join": ("participant-join",),
    "leave": ("participant-leave",),
    "mute": ("participant-mute", "participant-unmute"),
    "hold": ("participant-hold", "participant-unhold"),
    "modify": ("participant-modify",),
    "speaker": ("participant-speech-start", "participant-speech-stop"),
    "announcement": ("announcement-end", "announcement-fail"),
}
DEFAULT_EVENT_WORDS = ("start", "end")  # a statusCallback without statusCallbackEvent


class ConferenceStatus(enum.StrEnum):
    """A conference's status: `init` until it starts (someone with startConferenceOnEnter joined)."""

    INIT = "init"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"


class ParticipantStatus(enum.StrEnum):
    """A participant's status: the first four while a REST-created participant is dialed."""

    QUEUED = "queued"
    CONNECTING = "connecting"
    RINGING = "ringing"
    CONNECTED = "connected"
    COMPLETE = "complete"
    FAILED = "failed"


@dataclass(frozen=True)
class Conference:
    """A conference room (CF...), made by the first `<Dial><Conference>` of its friendly name; ended rooms stay
    listed with the reason they ended."""

    sid: str
    account_sid: str
    friendly_name: str
    status: ConferenceStatus
    date_created: dt.datetime
    date_updated: dt.datetime
    reason_conference_ended: str | None = None  # Twilio's words: conference-ended-via-api, participant-with-...
    call_sid_ending_conference: str | None = None


@dataclass(frozen=True)
class Participant:
    """One call in a conference (keyed by its CallSid; `label` is the participantLabel)."""

    call_sid: str
    account_sid: str
    conference_sid: str
    status: ParticipantStatus
    date_created: dt.datetime
    date_updated: dt.datetime
    label: str | None = None
    muted: bool = False
    hold: bool = False
    coaching: bool = False
    call_sid_to_coach: str | None = None
    start_conference_on_enter: bool = True
    end_conference_on_exit: bool = False
    queue_time: str = "0"  # ms between the create request and the participant joining (REST-created ones)


@dataclass(frozen=True)
class ParticipantUpdate:
    """What `POST .../Participants/{CallSid}` may change; None leaves a field as it is."""

    muted: bool | None = None
    hold: bool | None = None
    hold_url: str | None = None
    hold_method: str | None = None
    announce_url: str | None = None
    announce_method: str | None = None
    end_conference_on_exit: bool | None = None
    coaching: bool | None = None
    call_sid_to_coach: str | None = None


@dataclass(frozen=True)
class ParticipantCreate:
    """What `POST .../Participants` dials: `to` joins the conference when it answers (`from_` is its caller ID)."""

    from_: str
    to: str
    label: str | None = None
    muted: bool = False
    beep: str = "true"
    start_conference_on_enter: bool = True
    end_conference_on_exit: bool = False
    wait_url: str | None = None
    wait_method: str = "POST"
    max_participants: int = MAX_PARTICIPANTS
    early_media: bool = True
    coaching: bool = False
    call_sid_to_coach: str | None = None
    timeout: int = 60  # Twilio: 5..600 s, default 60
    time_limit: int = 14400
    status_callback: str | None = None
    status_callback_method: str = "POST"
    status_callback_event: tuple[str, ...] = ("completed",)  # Twilio's default
    conference_status_callback: str | None = None
    conference_status_callback_method: str = "POST"
    conference_status_callback_event: tuple[str, ...] = ("start", "end")  # Twilio's default
    conference_record: str = "do-not-record"
    conference_trim: str = "trim-silence"
    conference_recording_status_callback: str | None = None
    conference_recording_status_callback_method: str = "POST"
    conference_recording_status_callback_event: tuple[str, ...] = ("completed",)
    recording_status_callback: str | None = None
    caller_id: str | None = None
    sip_auth_username: str | None = None
    sip_auth_password: str | None = None


@dataclass(frozen=True)
class ConferenceFilter:
    """List filters of `GET Conferences`: exact dates (UTC days) and ranges, friendly name, status."""

    friendly_name: str | None = None
    status: ConferenceStatus | None = None
    created_on: dt.date | None = None
    created_before: dt.date | None = None  # DateCreated<=: on or before
    created_after: dt.date | None = None  # DateCreated>=: on or after
    updated_on: dt.date | None = None
    updated_before: dt.date | None = None
    updated_after: dt.date | None = None

    def keep(self, conf: Conference) -> bool:
        """Whether `conf` passes every filter given (dates compare by UTC day)."""
        return ((self.friendly_name is None or conf.friendly_name == self.friendly_name)
                and (self.status is None or conf.status is self.status)
                and within_days(conf.date_created, self.created_on, self.created_before, self.created_after)
                and within_days(conf.date_updated, self.updated_on, self.updated_before, self.updated_after))


class ConferenceService(Protocol):
    """What the REST edge asks of the conference manager (`switch.core.conferences.Conferences`).

    Lookups by `key` take a CallSid or a participant label.  Unknown conferences and participants raise
    `switch.core.errors.NotFound`; a bad value `InvalidArgument`; an operation on an ended conference `Conflict`.
    """

    def list_conferences(self, flt: ConferenceFilter) -> list[Conference]: ...
    def conference(self, sid: str) -> Conference: ...
    async def end(self, sid: str) -> Conference: ...
    async def announce(self, sid: str, url: str, method: str) -> Conference: ...
    def list_participants(self, sid: str, muted: bool | None = None, hold: bool | None = None,
                          coaching: bool | None = None) -> list[Participant]: ...
    def participant(self, sid: str, key: str) -> Participant: ...
    async def update_participant(self, sid: str, key: str, update: ParticipantUpdate) -> Participant: ...
    async def kick(self, sid: str, key: str) -> None: ...
    async def add_participant(self, sid_or_name: str, create: ParticipantCreate) -> Participant: ...
    def recordings(self, sid: str) -> list[str]: ...  # RE... sids of the conference's recordings, oldest first


@dataclass(frozen=True)
class Queue:
    """A call queue (QU...); `current_size` and `average_wait_time` (s) are computed when it is read."""

    sid: str
    account_sid: str
    friendly_name: str
    max_size: int
    date_created: dt.datetime
    date_updated: dt.datetime
    current_size: int = 0
    average_wait_time: int = 0


@dataclass(frozen=True)
class Member:
    """A call waiting in a queue: `position` counts from 1 at the front; `wait_time` in seconds."""

    call_sid: str
    queue_sid: str
    date_enqueued: dt.datetime
    position: int
    wait_time: int


class QueueService(Protocol):
    """What the REST edge asks of the queue manager (`switch.core.queues.Queues`).  `member` takes a CallSid or
    ``Front``; `dequeue` redirects the member's call to `url` (its `<Enqueue>` action gets QueueResult=redirected).
    Errors as in `ConferenceService`; deleting a queue with callers in it is a `Conflict`."""

    def list_queues(self) -> list[Queue]: ...
    def queue(self, sid: str) -> Queue: ...
    def create_queue(self, friendly_name: str, max_size: int | None = None) -> Queue: ...
    def update_queue(self, sid: str, friendly_name: str | None = None, max_size: int | None = None) -> Queue: ...
    def delete_queue(self, sid: str) -> None: ...
    def list_members(self, sid: str) -> list[Member]: ...
    def member(self, sid: str, key: str) -> Member: ...
    async def dequeue(self, sid: str, key: str, url: str, method: str) -> Member: ...
