"""The call model: one `Call` per SIP leg, in snake_case; dialects translate at the edge."""

from __future__ import annotations

import datetime as dt
import enum
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from switch.core.status import CallStatus


def new_sid(prefix: str) -> str:
    """A Twilio-shaped SID: two-letter prefix and 32 lowercase hex digits."""
    return prefix + secrets.token_hex(16)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def check_changes(changes: Mapping[str, object], updatable: Iterable[str], not_null: Iterable[str]) -> None:
    """ValueError unless every name in `changes` is `updatable` and none of `not_null` is set to None there (an
    update of a REST resource: the registries' `update` methods)."""
    unknown = set(changes) - set(updatable)
    if unknown:
        raise ValueError(f"cannot update {', '.join(sorted(unknown))}")
    cleared = [name for name in not_null if name in changes and changes[name] is None]
    if cleared:
        raise ValueError(f"{', '.join(sorted(cleared))} cannot be cleared")


class Direction(enum.StrEnum):
    """Twilio's call directions."""

    INBOUND = "inbound"
    OUTBOUND_API = "outbound-api"
    OUTBOUND_DIAL = "outbound-dial"


class CallbackEvent(enum.StrEnum):
    """What a status change means to whoever follows a call: the call was initiated, rang, was answered,
    completed (whatever its terminal status).  Twilio's StatusCallbackEvent spells them as they are."""

    INITIATED = "initiated"
    RINGING = "ringing"
    ANSWERED = "answered"
    COMPLETED = "completed"


# The one status -> callback-event table.  Every dialect starts from it: Twilio's StatusCallbackEvent,
# Exotel's ringing/answered/terminal (and its pass-through EventType), `<Conversation>`'s call-* events.
STATUS_EVENTS: dict[CallStatus, CallbackEvent | None] = {
    CallStatus.QUEUED: None,  # before the INVITE: nobody reports it
    CallStatus.INITIATED: CallbackEvent.INITIATED,
    CallStatus.RINGING: CallbackEvent.RINGING,
    CallStatus.IN_PROGRESS: CallbackEvent.ANSWERED,
    CallStatus.COMPLETED: CallbackEvent.COMPLETED,
    CallStatus.BUSY: CallbackEvent.COMPLETED,
    CallStatus.NO_ANSWER: CallbackEvent.COMPLETED,
    CallStatus.FAILED: CallbackEvent.COMPLETED,
    CallStatus.CANCELED: CallbackEvent.COMPLETED,
}


def event_for_status(status: CallStatus) -> CallbackEvent | None:
    """The callback event a change to `status` is (`queued` is none): a lookup in `STATUS_EVENTS`."""
    return STATUS_EVENTS[status]


@dataclass
class Call:
    """One call leg and everything the REST API, callbacks and store know about it."""

    sid: str
    account_sid: str
    to: str
    from_: str
    direction: Direction
    status: CallStatus
    date_created: dt.datetime = field(default_factory=utcnow)
    date_updated: dt.datetime = field(default_factory=utcnow)
    parent_call_sid: str | None = None
    start_time: dt.datetime | None = None  # when the INVITE left or arrived
    answer_time: dt.datetime | None = None
    end_time: dt.datetime | None = None
    duration: int | None = None  # seconds from answer to end, set when the call ends
    answered_by: str | None = None
    forwarded_from: str | None = None
    caller_name: str | None = None
    phone_number_sid: str | None = None
    # What to run and where to report.
    url: str | None = None
    method: str = "POST"
    fallback_url: str | None = None
    fallback_method: str = "POST"
    twiml: str | None = None
    status_callback: str | None = None
    status_callback_method: str = "POST"
    status_callback_events: frozenset[CallbackEvent] = frozenset({CallbackEvent.COMPLETED})
    # SIP details.
    sip_uri: str | None = None  # the Request-URI dialed (outbound) or received (inbound)
    sip_call_id: str | None = None
    # A call into a SIP domain: Twilio's SipDomain, SipDomainSid, SipCallId, SipSourceIp, SipUsername, SipHeader_*
    sip_params: dict[str, str] | None = None
    # A `<Dial><Client>` leg's nested `<Parameter>`s: the browser's `call.customParameters` (never in callbacks)
    client_parameters: dict[str, str] | None = None
    sip_response_code: int | None = None
    sip_auth_username: str | None = None
    sip_auth_password: str | None = None
    caller_id: str | None = None
    timeout: int = 60  # seconds of ringing before no-answer
    time_limit: int = 14400  # seconds after answer before the switch hangs up
    send_digits: str | None = None
    record: bool = False
    recording_channels: str = "mono"
    recording_status_callback: str | None = None
    recording_status_callback_method: str = "POST"
    recording_status_callback_events: tuple[str, ...] = ("completed",)
    recording_track: str = "both"
    trim: str = "trim-silence"
    # Answering-machine detection (switch.core.amd): asked for on create, its answer in `answered_by`.
    machine_detection: str | None = None  # None (off), "enable" or "detect_message_end"
    machine_detection_timeout: int = 30  # seconds
    machine_detection_speech_threshold: int = 2400  # ms
    machine_detection_speech_end_threshold: int = 1200  # ms
    machine_detection_silence_timeout: int = 5000  # ms
    async_amd: bool = False  # the TwiML runs at once; the answer goes to async_amd_status_callback
    async_amd_status_callback: str | None = None
    async_amd_status_callback_method: str = "POST"
    machine_detection_duration: int | None = None  # ms of audio the answer took
    worker: int | None = None  # index of the media worker holding the leg
    end_reason: str | None = None
    error: str | None = None  # a human-readable reason for failed calls
    # The RTP its worker counted (`switch.workers.protocol.RtpStats` as a dict), set when the leg ends; None when it
    # never had audio.  The Twilio dialect shows it as `softswitch_media_quality` (switch.core.metrics).
    media_quality: dict[str, int] | None = None

    @property
    def terminal(self) -> bool:
        return self.status.terminal
