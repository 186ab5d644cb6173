"""Twilio's Calls request parameters -> validated `switch.core.service` requests.

Every function here takes the request's parameters as a multidict (form body or query string) and either
returns a frozen request object or raises `InvalidParameter` with Twilio's error code for that parameter.
Empty values count as absent, as Twilio treats them.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import TypedDict

from multidict import MultiMapping

from switch.core.model import CallbackEvent
from switch.core.service import CallFilter, CallUpdate, NewCall
from switch.core.status import CallStatus
from switch.dialects.errors import InvalidParameter
from switch.dialects.forms import get_param, is_address, parse_url

# Twilio's error codes for the Calls resource.
NO_TO = 21201
INVALID_URL = 21205
INVALID_SEND_DIGITS = 21206
INVALID_TIMEOUT = 21208
INVALID_METHOD = 21209
INVALID_TO = 21211
INVALID_FROM = 21212
NO_FROM = 21213
TWIML_TOO_LONG = 32018
INVALID_STATUS_CALLBACK_EVENT = 21626  # "Invalid 'StatusCallbackEvent'"
INVALID_PARAMETER = 20001

MAX_TWIML = 4000
MAX_TIMEOUT = 600  # Twilio clamps a longer ring timeout to 600 s rather than rejecting it
DEFAULT_TIMEOUT = 60
MAX_TIME_LIMIT = 86400  # 24 h, Twilio's ceiling for a call
DEFAULT_TIME_LIMIT = 14400

_SEND_DIGITS = re.compile(r"[0-9A-D#*wW]{1,256}")
_INTEGER = re.compile(r"-?[0-9]{1,9}")
_METHODS = frozenset({"GET", "POST"})
_UPDATE_STATUSES = frozenset({CallStatus.COMPLETED, CallStatus.CANCELED})

# The list filters, in the order list URIs repeat them.  The official client sends the date inequalities
# as the literal keys `StartTime<` / `StartTime>` (URL-encoded as %3C / %3E).
FILTER_PARAMS: tuple[str, ...] = (
    "To",
    "From",
    "ParentCallSid",
    "Status",
    "StartTime",
    "StartTime<",
    "StartTime>",
    "EndTime",
    "EndTime<",
    "EndTime>",
)


def _address(params: MultiMapping[str], name: str, missing: int, invalid: int) -> str:
    value = get_param(params, name)
    if value is None:
        raise InvalidParameter(f"No '{name}' number is specified", missing)
    if not is_address(value):
        raise InvalidParameter(f"Invalid '{name}' Phone Number: {value}", invalid)
    return value


def parse_method(params: MultiMapping[str], name: str) -> str | None:
    value = get_param(params, name)
    if value is None:
        return None
    if value.upper() not in _METHODS:
        raise InvalidParameter(f"{name} must be GET or POST, not {value!r}", INVALID_METHOD)
    return value.upper()


def _int(params: MultiMapping[str], name: str, code: int) -> int | None:
    value = get_param(params, name)
    if value is None:
        return None
    if not _INTEGER.fullmatch(value):
        raise InvalidParameter(f"{name} must be an integer, not {value!r}", code)
    return int(value)


def _twiml(params: MultiMapping[str]) -> str | None:
    value = get_param(params, "Twiml", strip=False)
    if value is not None and len(value) > MAX_TWIML:
        raise InvalidParameter(
            f"Twiml size ({len(value)} characters) exceeds the maximum of {MAX_TWIML}", TWIML_TOO_LONG
        )
    return value


def _events(params: MultiMapping[str]) -> frozenset[CallbackEvent]:
    # The official client repeats the parameter; curl users often send one space-separated value.
    words = [w for value in params.getall("StatusCallbackEvent", []) for w in value.replace(",", " ").split()]
    events = set()
    for word in words:
        try:
            events.add(CallbackEvent(word.lower()))
        except ValueError:
            raise InvalidParameter(
                f"Invalid StatusCallbackEvent {word!r}: use initiated, ringing, answered or completed",
                INVALID_STATUS_CALLBACK_EVENT,
            ) from None
    return frozenset(events) if events else frozenset({CallbackEvent.COMPLETED})


def _timeout(params: MultiMapping[str]) -> int:
    timeout = _int(params, "Timeout", INVALID_TIMEOUT)
    if timeout is None:
        return DEFAULT_TIMEOUT
    if timeout < 1:
        raise InvalidParameter(f"Timeout must be at least 1 second, not {timeout}", INVALID_TIMEOUT)
    return min(timeout, MAX_TIMEOUT)


def _time_limit(params: MultiMapping[str]) -> int:
    limit = _int(params, "TimeLimit", INVALID_PARAMETER)
    if limit is None:
        return DEFAULT_TIME_LIMIT
    if not 1 <= limit <= MAX_TIME_LIMIT:
        raise InvalidParameter(f"TimeLimit must be between 1 and {MAX_TIME_LIMIT} seconds, not {limit}")
    return limit


def _send_digits(params: MultiMapping[str]) -> str | None:
    value = get_param(params, "SendDigits")
    if value is not None and not _SEND_DIGITS.fullmatch(value):
        raise InvalidParameter(
            f"SendDigits may contain only 0-9, A-D, #, * and w/W, not {value!r}", INVALID_SEND_DIGITS
        )
    return value


def _caller_id(params: MultiMapping[str]) -> str | None:
    value = get_param(params, "CallerId")
    # Twilio also accepts a bare SIP address (name@host) here.
    if value is not None and not (is_address(value) or re.fullmatch(r"[^\s@<>\"]+@[^\s@<>\"]+", value)):
        raise InvalidParameter(f"Invalid 'CallerId': {value}", INVALID_FROM)
    return value


RECORDING_CHANNELS = ("mono", "dual")
RECORDING_TRACKS = ("inbound", "outbound", "both")
RECORDING_TRIMS = ("trim-silence", "do-not-trim")
RECORDING_EVENTS = ("in-progress", "completed", "absent")


@dataclass(frozen=True)
class RecordingOptions:
    """How to record a call: the Recording* parameters shared by Calls create and Call Recordings create."""

    channels: str = "mono"
    status_callback: str | None = None
    status_callback_method: str = "POST"
    status_callback_events: tuple[str, ...] = ("completed",)
    track: str = "both"
    trim: str = "trim-silence"


def _choice(params: MultiMapping[str], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = get_param(params, name)
    if value is None:
        return default
    if value.lower() not in allowed:
        raise InvalidParameter(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return value.lower()


def _bool(params: MultiMapping[str], name: str) -> bool:
    value = get_param(params, name)
    if value is None or value.lower() == "false":
        return False
    if value.lower() == "true":
        return True
    raise InvalidParameter(f"{name} must be true or false, not {value!r}")


def parse_recording_options(params: MultiMapping[str], default_trim: str) -> RecordingOptions:
    """RecordingChannels, RecordingStatusCallback(Method|Event), RecordingTrack and Trim.

    The events may be repeated (the official client) or space separated in one value; the default is
    `completed`.  `default_trim` differs by resource: trim-silence on Calls, do-not-trim on Recordings.
    """
    words = [w.lower() for value in params.getall("RecordingStatusCallbackEvent", [])
             for w in value.replace(",", " ").split()]
    for word in words:
        if word not in RECORDING_EVENTS:
            raise InvalidParameter(f"Invalid RecordingStatusCallbackEvent {word!r}: use {', '.join(RECORDING_EVENTS)}")
    return RecordingOptions(
        channels=_choice(params, "RecordingChannels", RECORDING_CHANNELS, "mono"),
        status_callback=parse_url(params, "RecordingStatusCallback"),
        status_callback_method=parse_method(params, "RecordingStatusCallbackMethod") or "POST",
        status_callback_events=tuple(dict.fromkeys(words)) or ("completed",),
        track=_choice(params, "RecordingTrack", RECORDING_TRACKS, "both"),
        trim=_choice(params, "Trim", RECORDING_TRIMS, default_trim),
    )


# MachineDetection's values, and the ranges of its tuning parameters (Twilio's answering-machine detection docs).
MACHINE_DETECTION = {"enable": "enable", "detectmessageend": "detect_message_end"}
AMD_RANGES: dict[str, tuple[int, int, int]] = {  # parameter: (minimum, maximum, default)
    "MachineDetectionTimeout": (3, 59, 30),  # seconds
    "MachineDetectionSpeechThreshold": (1000, 6000, 2400),  # milliseconds from here on
    "MachineDetectionSpeechEndThreshold": (500, 5000, 1200),
    "MachineDetectionSilenceTimeout": (2000, 10000, 5000),
}


def _amd_number(params: MultiMapping[str], name: str) -> int:
    low, high, default = AMD_RANGES[name]
    value = _int(params, name, INVALID_PARAMETER)
    if value is None:
        return default
    if not low <= value <= high:
        raise InvalidParameter(f"{name} must be between {low} and {high}, not {value}")
    return value


class MachineDetectionFields(TypedDict):
    """The answering-machine detection fields of a `NewCall`."""

    machine_detection: str | None
    machine_detection_timeout: int
    machine_detection_speech_threshold: int
    machine_detection_speech_end_threshold: int
    machine_detection_silence_timeout: int
    async_amd: bool
    async_amd_status_callback: str | None
    async_amd_status_callback_method: str


def parse_machine_detection(params: MultiMapping[str]) -> MachineDetectionFields:
    """MachineDetection (Enable | DetectMessageEnd), its tuning parameters and AsyncAmd* as `NewCall` fields.

    As Twilio documents, MachineDetection is ignored when SendDigits is given (the digits would be heard as the
    answer).  AsyncAmdStatusCallback without AsyncAmd=true changes nothing: the answer goes to the Url request."""
    raw = get_param(params, "MachineDetection")
    mode = None if raw is None else MACHINE_DETECTION.get(raw.lower())
    if raw is not None and mode is None:
        raise InvalidParameter(f"MachineDetection must be Enable or DetectMessageEnd, not {raw!r}")
    return {
        "machine_detection": None if get_param(params, "SendDigits") else mode,
        "machine_detection_timeout": _amd_number(params, "MachineDetectionTimeout"),
        "machine_detection_speech_threshold": _amd_number(params, "MachineDetectionSpeechThreshold"),
        "machine_detection_speech_end_threshold": _amd_number(params, "MachineDetectionSpeechEndThreshold"),
        "machine_detection_silence_timeout": _amd_number(params, "MachineDetectionSilenceTimeout"),
        "async_amd": _bool(params, "AsyncAmd"),
        "async_amd_status_callback": parse_url(params, "AsyncAmdStatusCallback"),
        "async_amd_status_callback_method": parse_method(params, "AsyncAmdStatusCallbackMethod") or "POST",
    }


def parse_new_call(params: MultiMapping[str]) -> NewCall:
    """Validate `POST .../Calls.json` parameters.

    When both Url and Twiml are given, Url wins and Twiml is dropped, as Twilio documents.
    """
    to = _address(params, "To", NO_TO, INVALID_TO)
    from_ = _address(params, "From", NO_FROM, INVALID_FROM)
    url = parse_url(params, "Url")
    twiml = _twiml(params)
    if url is None and twiml is None:
        message = "Url parameter is required"
        if get_param(params, "ApplicationSid"):
            message += " (ApplicationSid is not supported; pass Url or Twiml)"
        raise InvalidParameter(message, INVALID_URL)
    recording = parse_recording_options(params, default_trim="trim-silence")
    return NewCall(
        to=to,
        from_=from_,
        url=url,
        method=parse_method(params, "Method") or "POST",
        fallback_url=parse_url(params, "FallbackUrl"),
        fallback_method=parse_method(params, "FallbackMethod") or "POST",
        twiml=None if url is not None else twiml,
        status_callback=parse_url(params, "StatusCallback"),
        status_callback_method=parse_method(params, "StatusCallbackMethod") or "POST",
        status_callback_events=_events(params),
        timeout=_timeout(params),
        time_limit=_time_limit(params),
        send_digits=_send_digits(params),
        sip_auth_username=get_param(params, "SipAuthUsername"),
        sip_auth_password=get_param(params, "SipAuthPassword", strip=False),
        caller_id=_caller_id(params),
        record=_bool(params, "Record"),
        recording_channels=recording.channels,
        recording_status_callback=recording.status_callback,
        recording_status_callback_method=recording.status_callback_method,
        recording_status_callback_events=recording.status_callback_events,
        recording_track=recording.track,
        trim=recording.trim,
        **parse_machine_detection(params),
    )


def parse_call_update(params: MultiMapping[str]) -> CallUpdate:
    """Validate `POST .../Calls/{Sid}.json` parameters (Url wins over Twiml, as on create)."""
    status: CallStatus | None = None
    raw_status = get_param(params, "Status")
    if raw_status is not None:
        try:
            status = CallStatus(raw_status.lower())
        except ValueError:
            status = None
        if status not in _UPDATE_STATUSES:
            raise InvalidParameter(f"Status must be 'completed' or 'canceled', not {raw_status!r}")
    url = parse_url(params, "Url")
    twiml = _twiml(params)
    return CallUpdate(
        url=url,
        method=parse_method(params, "Method"),
        twiml=None if url is not None else twiml,
        fallback_url=parse_url(params, "FallbackUrl"),
        fallback_method=parse_method(params, "FallbackMethod"),
        status=status,
        status_callback=parse_url(params, "StatusCallback"),
        status_callback_method=parse_method(params, "StatusCallbackMethod"),
    )


def _date(params: MultiMapping[str], name: str) -> dt.date | None:
    """`YYYY-MM-DD`, or the `YYYY-MM-DDTHH:MM:SSZ` the official client sends for date/datetime objects."""
    value = get_param(params, name)
    return None if value is None else day_of(name, value)


def day_of(name: str, value: str) -> dt.date:
    """The UTC day of filter `name`'s `value`: `YYYY-MM-DD`, or a datetime (one with a zone is moved to UTC)."""
    try:
        if len(value) == 10:
            return dt.date.fromisoformat(value)
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidParameter(f"{name} must be a date as YYYY-MM-DD, not {value!r}") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
    return moment.date()


def parse_date(params: MultiMapping[str], name: str) -> dt.date | None:
    """A date filter (`YYYY-MM-DD`, or the datetime the official client sends), as the Calls filters take it."""
    return _date(params, name)


def parse_moment(params: MultiMapping[str], name: str) -> dt.datetime | None:
    """A time filter's value as a moment in UTC.

    `YYYY-MM-DD` is that day's UTC midnight.  The official clients send datetimes: twilio-python
    `YYYY-MM-DDTHH:MM:SSZ` (`serialize.iso8601_datetime`, dates as their midnight), twilio-node `toISOString()`
    with milliseconds; any ISO 8601 datetime is taken, a naive one as UTC.
    """
    value = get_param(params, name)
    if value is None:
        return None
    try:
        if len(value) == 10:
            return dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), dt.UTC)
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidParameter(f"{name} must be a date (YYYY-MM-DD) or an ISO 8601 datetime, not {value!r}") from None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def _time_range(params: MultiMapping[str], name: str) -> tuple[dt.datetime | None, dt.datetime | None]:
    """`Name`, `Name>` and `Name<` as one half-open range [after, before) of moments (None: unbounded).

    `Name>` is "on or after" the moment and `Name<` "before" it, to the microsecond (Twilio: "started on or after
    / before this date"; with a date, its midnight).  `Name=` is "on this date": the UTC day of the moment given,
    whatever its time of day.  Given together, they narrow each other.
    """
    lower: list[dt.datetime] = []
    upper: list[dt.datetime] = []
    on = parse_moment(params, name)
    if on is not None:
        day = on.replace(hour=0, minute=0, second=0, microsecond=0)
        lower.append(day)
        upper.append(day + dt.timedelta(days=1))
    if (after := parse_moment(params, f"{name}>")) is not None:
        lower.append(after)
    if (before := parse_moment(params, f"{name}<")) is not None:
        upper.append(before)
    return max(lower, default=None), min(upper, default=None)


def parse_call_filter(params: MultiMapping[str]) -> CallFilter:
    """Validate the filters of `GET .../Calls.json`."""
    status: CallStatus | None = None
    raw_status = get_param(params, "Status")
    if raw_status is not None:
        try:
            status = CallStatus(raw_status.lower())
        except ValueError:
            raise InvalidParameter(f"Invalid Status {raw_status!r}") from None
    start_after, start_before = _time_range(params, "StartTime")
    end_after, end_before = _time_range(params, "EndTime")
    return CallFilter(
        to=get_param(params, "To"),
        from_=get_param(params, "From"),
        status=status,
        parent_call_sid=get_param(params, "ParentCallSid"),
        start_time_after=start_after,
        start_time_before=start_before,
        end_time_after=end_after,
        end_time_before=end_before,
    )
