"""Typed call events: the core says once what happened; each dialect renders it its own way.

The call engine (`switch.core.calls.CallManager._set_status`, the one status path) emits exactly one
`CallStatusChanged` per status change; recordings emit `RecordingStarted` and `RecordingStatusChanged`; the
`<Dial>` and `<Connect><Conversation>` verbs say which legs they placed (`DialLegPlaced`,
`ConversationLegPlaced`); the Conversations service asks for a routing decision (`ConversationRouting`).
Every event is a frozen dataclass holding copies, so a subscriber sees the call as it was at the change,
not as it is by the time it looks.

Nothing here speaks a dialect: no parameter names, no error codes, no date formats.  The Twilio dialect
renders status and recording events as form parameters (`switch.dialects.twilio.callbacks`), Exotel renders
connect calls as JSON documents and agent pass-through queries (`switch.dialects.exotel.connect`), and the
Conversations dialect renders `<Conversation>` callbacks and routing requests
(`switch.dialects.conversations.callbacks`).  All of them send through the one `WebhookDispatcher`, which
also keeps the one record of what was sent to each callback URL.

`CallEvents` delivers each event synchronously, in subscription order, on the event loop: a subscriber
that raises is logged with the event and does not stop the others.  The status -> callback-event table
(`switch.core.model.STATUS_EVENTS`, read through `CallStatusChanged.progress`) is the only place a status
becomes `initiated`/`ringing`/`answered`/`completed`; every dialect starts from it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from switch.core.conference_model import Conference, Participant
from switch.core.model import Call, CallbackEvent, event_for_status
from switch.core.recording_model import Recording, RecordingStatus
from switch.core.status import CallStatus

log = logging.getLogger("switch.core.events")


@dataclass(frozen=True)
class CallStatusChanged:
    """A call's status changed (the one status path emits exactly one per change).

    `call` is a copy taken after the change: its `status`, `sip_response_code`, times and `duration` are the
    call's at `at`.  `sip_code` is the SIP code that caused this change, when one did.
    """

    call: Call
    previous: CallStatus
    at: dt.datetime
    sip_code: int | None = None
    detail: str = ""

    @property
    def status(self) -> CallStatus:
        return self.call.status

    @property
    def progress(self) -> CallbackEvent | None:
        """The callback event this change is (`event_for_status`): None for a change no one reports."""
        return event_for_status(self.call.status)


@dataclass(frozen=True)
class RecordingStarted:
    """A recording's tap started: audio is being captured from `recording.start_time`."""

    recording: Recording
    at: dt.datetime


@dataclass(frozen=True)
class RecordingStatusChanged:
    """A recording's status changed (paused, stopped, processing, completed, absent, ...)."""

    recording: Recording
    previous: RecordingStatus
    at: dt.datetime


@dataclass(frozen=True)
class DialLegPlaced:
    """`<Dial>` placed `child` for `parent`, before the child's first status change.

    `document_url` is the TwiML document the `<Dial>` came from (relative URLs resolve against it);
    `passthru_url` is the `<Dial passthruUrl>` extension, as written.
    """

    parent: Call
    child: Call
    document_url: str | None = None
    passthru_url: str | None = None


@dataclass(frozen=True)
class CallbackTarget:
    """Where a subscriber asked to be told about a leg, and which of the callback events it wants."""

    url: str
    method: str
    events: frozenset[CallbackEvent]


@dataclass(frozen=True)
class ConversationSession:
    """One run of `<Connect><Conversation>` on `parent_sid`: what its legs report, and where."""

    id: str
    parent_sid: str
    account_sid: str
    conversation_sid: str
    worker_initiated: bool
    callback: CallbackTarget | None


@dataclass(frozen=True)
class ConversationLegPlaced:
    """A `<Conversation>` session dialed `leg` (a worker, or the customer); its status changes report to the
    session's callback."""

    session: ConversationSession
    leg: Call


@dataclass(frozen=True)
class ConversationRouting:
    """A conversation autocreated for call `call_sid` needs a worker: ask the service's routing URL."""

    call_sid: str
    account_sid: str
    service_sid: str
    conversation_sid: str
    routing_url: str
    customer_address: str
    proxy_address: str | None


@dataclass(frozen=True)
class MachineDetected:
    """Answering-machine detection decided who answered `call` (switch.core.amd): `call.answered_by` and
    `call.machine_detection_duration` hold the answer; the dialects report it when asked asynchronously."""

    call: Call
    at: dt.datetime


@dataclass(frozen=True)
class ConferenceEvent:
    """Something happened in a conference that its status callback asked for (`switch.core.conferences`).

    `kind` is one of the events of `switch.core.conference_model.EVENT_WORDS` (conference-start,
    participant-join, ...); `conference` and `participant` are copies taken at the change; `sequence` numbers the
    conference's events from 1; `reason` says why a conference ended or a participant left; `ending` is the
    participant whose leaving ended it.
    """

    kind: str
    conference: Conference
    participant: Participant | None
    url: str
    method: str
    sequence: int
    at: dt.datetime
    reason: str | None = None
    ending: Participant | None = None
    call_status: str | None = None  # a leaving participant's call status


CallEvent = (CallStatusChanged | RecordingStarted | RecordingStatusChanged | DialLegPlaced
             | ConversationLegPlaced | ConversationRouting | MachineDetected | ConferenceEvent)
Handler = Callable[[CallEvent], None]


def snapshot(call: Call) -> Call:
    """A copy of `call` for an event: later changes of the live call do not show through.  (Shallow, as
    `dataclasses.replace` would make it, without running `__init__` again: one is made at every status change.)"""
    copy = object.__new__(Call)
    copy.__dict__.update(call.__dict__)
    return copy


class CallEvents:
    """Delivers call events to their subscribers, synchronously and in subscription order."""

    def __init__(self) -> None:
        self._handlers: list[Handler] = []

    def subscribe(self, handler: Handler) -> Callable[[], None]:
        """Call `handler(event)` for every event from now on; returns the function that stops it."""
        self._handlers.append(handler)

        def unsubscribe() -> None:
            if handler in self._handlers:
                self._handlers.remove(handler)

        return unsubscribe

    def emit(self, event: CallEvent) -> None:
        for handler in list(self._handlers):
            try:
                handler(event)
            except Exception:
                log.exception("%s subscriber %r failed", type(event).__name__, handler)
