"""How the Exotel dialect renders calls: connect calls, their legs and times, callback documents, pass-through.

Everything here is a pure function of a connect call and its legs (copies of the core's `Call`s), so the edge
(`switch.dialects.exotel.connect`) and the REST resources (`switch.dialects.exotel.api`) render alike.  The core's
call events arrive as status changes of the legs; `LEG_EVENTS` and `PASSTHRU_EVENTS` read them through the core's
one status -> callback-event table (`switch.core.model.event_for_status`) rather than re-projecting statuses.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from switch.core.model import Call, CallbackEvent, Direction
from switch.core.routing import is_sip_uri
from switch.core.status import CallStatus
from switch.core.webhooks import BodyFormat

DEFAULT_TIMEOUT = 30  # seconds each leg rings when TimeOut is not given
DEFAULT_TIME_LIMIT = 14400  # Exotel's maximum call length, 4 hours

# Our statuses in Exotel's words.  Exotel reports a ringing leg as in-progress (see its ringing samples).
STATUS: dict[CallStatus, str] = {
    CallStatus.QUEUED: "queued",
    CallStatus.INITIATED: "in-progress",
    CallStatus.RINGING: "in-progress",
    CallStatus.IN_PROGRESS: "in-progress",
    CallStatus.COMPLETED: "completed",
    CallStatus.BUSY: "busy",
    CallStatus.NO_ANSWER: "no-answer",
    CallStatus.FAILED: "failed",
    CallStatus.CANCELED: "canceled",
}
# A call's overall terminal Status is one of completed, failed, busy, no-answer: a leg we cancelled (the other
# party hung up while it rang) counts as not answered.
_OVERALL = {"canceled": "no-answer"}


class Event(enum.StrEnum):
    """StatusCallbackEvents values."""

    RINGING = "ringing"
    ANSWERED = "answered"
    TERMINAL = "terminal"


# The core's callback events, as Exotel's StatusCallbackEvents of a leg and as pass-through EventTypes.
LEG_EVENTS: dict[CallbackEvent, Event] = {
    CallbackEvent.RINGING: Event.RINGING,
    CallbackEvent.ANSWERED: Event.ANSWERED,
    CallbackEvent.COMPLETED: Event.TERMINAL,
}


class Passthru(enum.StrEnum):
    """EventType of an agent pass-through request."""

    DIAL = "Dial"
    RINGING = "Ringing"
    ANSWERED = "Answered"
    TERMINAL = "Terminal"


PASSTHRU_EVENTS: dict[CallbackEvent, Passthru] = {
    CallbackEvent.RINGING: Passthru.RINGING,
    CallbackEvent.ANSWERED: Passthru.ANSWERED,
    CallbackEvent.COMPLETED: Passthru.TERMINAL,
}


def exotel_time(moment: dt.datetime | None) -> str | None:
    """Exotel's time format, `2019-04-08 03:17:59` (UTC here)."""
    return None if moment is None else moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _seconds(start: dt.datetime | None, end: dt.datetime | None) -> int:
    return 0 if start is None or end is None else max(0, round((end - start).total_seconds()))


@dataclass(frozen=True)
class ConnectRequest:
    """A validated `Calls/connect` request."""

    from_: str  # called first (the agent)
    to: str  # called once From answers (the customer)
    caller_id: str | None = None  # the ExoPhone both parties see (required by the API; None in rows stored before)
    call_type: str = "trans"
    time_limit: int = DEFAULT_TIME_LIMIT
    timeout: int = DEFAULT_TIMEOUT
    record: bool = False
    recording_channels: str = "single"  # single | dual
    recording_format: str = "mp3"  # mp3 | mp3-hq (the same file here: the audio is 8 kHz telephony)
    custom_field: str | None = None
    status_callback: str | None = None
    events: tuple[Event, ...] = ()  # none: Exotel's default terminal callback only
    body_format: BodyFormat = "json"  # StatusCallbackContentType: application/json or multipart/form-data

    def twiml(self) -> str:
        """What leg 1 runs once answered: dial To and bridge, recording from the bridge when asked."""
        attrs = {
            "callerId": self.caller_id or self.from_,  # without an ExoPhone, To sees From's number
            "timeout": str(self.timeout),
            "timeLimit": str(self.time_limit),
        }
        if self.record:
            attrs["record"] = "record-from-answer-dual" if self.recording_channels == "dual" else "record-from-answer"
        noun = "Sip" if is_sip_uri(self.to) else "Number"
        rendered = "".join(f" {name}={quoteattr(value)}" for name, value in attrs.items())
        return f"<Response><Dial{rendered}><{noun}>{escape(self.to)}</{noun}></Dial></Response>"


@dataclass
class Connect:
    """One connect call: what was asked, its legs (live objects while it lasts) and what was reported."""

    sid: str  # leg 1's SID, the Exotel CallSid
    request: ConnectRequest
    leg1: Call | None = None
    leg2: Call | None = None
    child_sid: str | None = None
    ringing_at: dict[int, dt.datetime] = field(default_factory=dict)  # leg number -> when it started ringing
    finished: bool = False  # both legs ended and the terminal callback (if any) was handed to the dispatcher
    ending: bool = False  # the terminal callback is on its way (waiting for the recording)


@dataclass(frozen=True)
class CallView:
    """What Exotel's Call resource and call details show of a call: its legs and, for connect calls, the request."""

    leg1: Call
    leg2: Call | None
    request: ConnectRequest | None
    recording_url: str | None

    @property
    def connect(self) -> bool:
        return self.request is not None

    @property
    def ended(self) -> bool:
        return self.leg1.terminal and (self.leg2 is None or self.leg2.terminal)


def start_time(leg1: Call) -> dt.datetime:
    """Exotel's StartTime: when the call request was accepted, from the answer of leg 1 on its answer time.

    Exotel documents StartTime as when "the call request was initiated to the operator"; its samples show the
    answer time from leg 1's answer on (leg 1's OnCallDuration at the end is EndTime - StartTime).  Until the
    answer it is the request's own time, not the moment the INVITE left: the connect response is rendered before
    the INVITE is sent, and its StartTime must be the one the first callbacks and call details show.
    """
    return leg1.answer_time or leg1.date_created


def end_time(view: CallView) -> dt.datetime | None:
    if not view.ended:
        return None
    ends = [leg.end_time for leg in (view.leg1, view.leg2) if leg is not None and leg.end_time is not None]
    return max(ends) if ends else None


def overall_status(view: CallView) -> str:
    """The call's Status: each leg's while it lasts; at the end, completed only if the legs talked."""
    leg1, leg2 = view.leg1, view.leg2
    if not view.ended:
        return STATUS[leg1.status]
    if leg1.answer_time is None:
        status = STATUS[leg1.status]
    elif leg2 is None:
        status = "failed" if view.connect else STATUS[leg1.status]  # connect: To was never dialed
    else:
        status = STATUS[leg2.status]
    return _OVERALL.get(status, status)


def conversation_duration(view: CallView) -> int:
    """Seconds From and To were connected: leg 2's time on call."""
    if view.leg2 is None:
        return 0 if view.connect else view.leg1.duration or 0
    return view.leg2.duration or 0


def _leg(call: Call | None, ringing_at: dt.datetime | None, terminal: bool) -> dict[str, Any]:
    if not terminal:
        return {"OnCallDuration": None, "Status": None if call is None else STATUS[call.status]}
    if call is None:  # never dialed: leg 1 did not answer, or hung up first
        return {"OnCallDuration": 0, "RingingDuration": 0, "Status": None, "AnsweredBy": "NA"}
    return {
        "OnCallDuration": call.duration or 0,
        "RingingDuration": _seconds(ringing_at, call.answer_time or call.end_time),
        "Status": STATUS[call.status],
        "AnsweredBy": call.answered_by or "NA",  # no answering-machine detection: not analysed
    }


def callback_document(connect: Connect, event: Event, view: CallView, at: dt.datetime) -> dict[str, Any]:
    """A status callback of `connect` for `event`, in the reference samples' shape and order."""
    request = connect.request
    terminal = event is Event.TERMINAL
    document: dict[str, Any] = {
        "CallSid": connect.sid,
        "EventType": str(event),
        "DateCreated": exotel_time(view.leg1.date_created),
        "DateUpdated": exotel_time(at),
        "Status": overall_status(view),
        "To": request.to,
        "From": request.from_,
        "PhoneNumberSid": request.caller_id,
        "StartTime": exotel_time(start_time(view.leg1)),
        "EndTime": exotel_time(end_time(view)) if terminal else None,
        "EventTime": exotel_time(at),
        "Direction": str(Direction.OUTBOUND_API),
        "RecordingUrl": view.recording_url if terminal else None,
        "ConversationDuration": conversation_duration(view) if terminal else None,
    }
    if terminal and request.custom_field is not None:
        # Exotel passes CustomField back "only via 'terminal' StatusCallbackEvent", and only when it was given.
        document["CustomField"] = request.custom_field
    document["Legs"] = [_leg(view.leg1, connect.ringing_at.get(1), terminal),
                        _leg(view.leg2, connect.ringing_at.get(2), terminal)]
    return document


def default_document(connect: Connect, view: CallView, at: dt.datetime) -> dict[str, Any]:
    """Exotel's callback when no StatusCallbackEvents were given: sent once, at the end."""
    return {"CallSid": connect.sid, "DateUpdated": exotel_time(at), "Status": overall_status(view),
            "RecordingUrl": view.recording_url}


def form_fields(document: dict[str, Any]) -> list[tuple[str, str]]:
    """A callback document as form fields for multipart/form-data: `Legs[0][Status]`, ...; null is empty."""

    def text(value: Any) -> str:
        return "" if value is None else str(value)

    fields: list[tuple[str, str]] = []
    for key, value in document.items():
        if isinstance(value, list):
            for index, item in enumerate(value):
                fields += [(f"{key}[{index}][{name}]", text(inner)) for name, inner in item.items()]
        else:
            fields.append((key, text(value)))
    return fields


def passthru_params(parent: Call, child: Call, event: Passthru, now: dt.datetime) -> list[tuple[str, str]]:
    """The query of an agent pass-through GET about `child`, an agent leg of `parent`."""
    return [
        ("CallSid", parent.sid),
        ("CallFrom", parent.from_),
        ("CallTo", parent.to),
        ("Direction", str(Direction.OUTBOUND_DIAL)),
        ("Created", exotel_time(parent.date_created) or ""),
        ("From", parent.from_),
        ("To", parent.to),
        ("CurrentTime", exotel_time(now) or ""),
        ("DialWhomNumber", child.to),
        ("Status", "free" if event is Passthru.TERMINAL else "busy"),
        ("EventType", str(event)),
    ]
