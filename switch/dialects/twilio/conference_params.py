"""Twilio's Conference and Participant request parameters -> validated `switch.core.conference_model` requests.

Each function takes the request's parameters (form body or query string) and returns what the service takes, or
raises `InvalidParameter` with Twilio's code: 16024 for a bad participant label, the Calls resource's codes for
To/From (21201, 21213, 21211, 21212), Timeout (21208), URLs (21205) and methods (21209), 20001 otherwise.  Empty
values count as absent, except an empty WaitUrl, which is Twilio's "no wait music".
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

from multidict import MultiMapping

from switch.core.conference_model import (
    MAX_PARTICIPANTS,
    ConferenceFilter,
    ConferenceStatus,
    ParticipantCreate,
    ParticipantUpdate,
)
from switch.dialects.errors import InvalidParameter
from switch.dialects.forms import get_param, is_address, parse_url
from switch.dialects.twilio.params import (
    INVALID_FROM,
    INVALID_TIMEOUT,
    INVALID_TO,
    NO_FROM,
    NO_TO,
    day_of,
    parse_method,
)

LABEL_INVALID = 16024  # "Invalid participant label, must not exceed 128 characters, must not be a CallSid, ..."
LABEL_IN_USE = 16026  # "Participant label is in use by another participant"
MAX_LABEL = 128
BEEPS = {"true": "true", "false": "false", "onenter": "onEnter", "onexit": "onExit"}
CONFERENCE_RECORD = {"true": "record-from-start", "record-from-start": "record-from-start",
                     "false": "do-not-record", "do-not-record": "do-not-record"}
TRIMS = ("trim-silence", "do-not-trim")
CALL_EVENTS = ("initiated", "ringing", "answered", "completed")
CONFERENCE_EVENTS = ("start", "end", "join", "leave", "mute", "hold", "modify", "speaker", "announcement")
RECORDING_EVENTS = ("in-progress", "completed", "failed", "absent")
_CALL_SID = re.compile(r"CA[0-9a-f]{32}")
_SIP_USER = re.compile(r"[^\s@<>\"]+@[^\s@<>\"]+")
_INTEGER = re.compile(r"-?[0-9]{1,9}")


def flag(params: MultiMapping[str], name: str) -> bool | None:
    """A true/false parameter (any case); None when absent."""
    value = get_param(params, name)
    if value is None:
        return None
    if value.lower() not in ("true", "false"):
        raise InvalidParameter(f"{name} must be true or false, not {value!r}")
    return value.lower() == "true"


def integer(params: MultiMapping[str], name: str, low: int, high: int, default: int, code: int = 20001) -> int:
    """An integer parameter within [low, high]; `default` when absent."""
    value = get_param(params, name)
    if value is None:
        return default
    if not _INTEGER.fullmatch(value) or not low <= int(value) <= high:
        raise InvalidParameter(f"{name} must be an integer from {low} to {high}, not {value!r}", code)
    return int(value)


def _choice(params: MultiMapping[str], name: str, allowed: dict[str, str], default: str) -> str:
    value = get_param(params, name)
    if value is None:
        return default
    if value.lower() not in allowed:
        raise InvalidParameter(f"{name} must be one of {', '.join(dict.fromkeys(allowed.values()))}, not {value!r}")
    return allowed[value.lower()]


def _events(params: MultiMapping[str], name: str, allowed: Sequence[str], default: tuple[str, ...]) -> tuple[str, ...]:
    """An event list: repeated (the official client) or space/comma separated in one value."""
    words = [w.lower() for value in params.getall(name, []) for w in value.replace(",", " ").split()]
    for word in words:
        if word not in allowed:
            raise InvalidParameter(f"Invalid {name} {word!r}: use {', '.join(allowed)}")
    return tuple(dict.fromkeys(words)) or default


def _address(params: MultiMapping[str], name: str, missing: int, invalid: int) -> str:
    value = get_param(params, name)
    if value is None:
        raise InvalidParameter(f"No '{name}' number is specified", missing)
    if not (is_address(value) or (name == "From" and _SIP_USER.fullmatch(value))):
        raise InvalidParameter(f"Invalid '{name}' Phone Number: {value}", invalid)
    return value


def _wait_url(params: MultiMapping[str]) -> str | None:
    """WaitUrl: absent is the default hold music (None); an empty value is silence ("")."""
    if "WaitUrl" in params and not params["WaitUrl"].strip():
        return ""
    return parse_url(params, "WaitUrl")


def parse_label(value: str | None) -> str | None:
    """A participant label: at most 128 characters, not a CallSid, no '/'."""
    if value is not None and (len(value) > MAX_LABEL or _CALL_SID.fullmatch(value) or "/" in value):
        raise InvalidParameter(f"Invalid participant label {value!r}: it must not exceed {MAX_LABEL} characters, "
                               "must not be a CallSid, must not contain '/'", LABEL_INVALID)
    return value


def _coaching(params: MultiMapping[str]) -> tuple[bool | None, str | None]:
    coaching = flag(params, "Coaching")
    to_coach = get_param(params, "CallSidToCoach")
    if coaching and to_coach is None:
        raise InvalidParameter("CallSidToCoach is required when Coaching is true")
    if coaching is None and to_coach is not None:
        coaching = True  # Twilio: Coaching defaults to true when CallSidToCoach is given
    return coaching, to_coach


def parse_participant_create(params: MultiMapping[str]) -> ParticipantCreate:
    """Validate `POST .../Participants.json`."""
    to = _address(params, "To", NO_TO, INVALID_TO)
    from_ = _address(params, "From", NO_FROM, INVALID_FROM)
    if flag(params, "Record"):
        raise InvalidParameter("Record=true (recording a participant's call) is not supported; use ConferenceRecord")
    if get_param(params, "MachineDetection") is not None:
        raise InvalidParameter("MachineDetection is not supported on conference participants")
    caller_id = get_param(params, "CallerId")
    if caller_id is not None and not (is_address(caller_id) or _SIP_USER.fullmatch(caller_id)):
        raise InvalidParameter(f"Invalid 'CallerId': {caller_id}", INVALID_FROM)
    coaching, to_coach = _coaching(params)
    return ParticipantCreate(
        from_=from_,
        to=to,
        label=parse_label(get_param(params, "Label")),
        muted=bool(flag(params, "Muted")),
        beep=_choice(params, "Beep", BEEPS, "true"),
        start_conference_on_enter=flag(params, "StartConferenceOnEnter") is not False,
        end_conference_on_exit=bool(flag(params, "EndConferenceOnExit")),
        wait_url=_wait_url(params),
        wait_method=parse_method(params, "WaitMethod") or "POST",
        max_participants=integer(params, "MaxParticipants", 2, MAX_PARTICIPANTS, MAX_PARTICIPANTS),
        early_media=flag(params, "EarlyMedia") is not False,
        coaching=bool(coaching),
        call_sid_to_coach=to_coach,
        timeout=integer(params, "Timeout", 5, 600, 60, INVALID_TIMEOUT),
        time_limit=integer(params, "TimeLimit", 1, 86400, 14400),
        status_callback=parse_url(params, "StatusCallback"),
        status_callback_method=parse_method(params, "StatusCallbackMethod") or "POST",
        status_callback_event=_events(params, "StatusCallbackEvent", CALL_EVENTS, ("completed",)),
        conference_status_callback=parse_url(params, "ConferenceStatusCallback"),
        conference_status_callback_method=parse_method(params, "ConferenceStatusCallbackMethod") or "POST",
        conference_status_callback_event=_events(params, "ConferenceStatusCallbackEvent", CONFERENCE_EVENTS,
                                                 ("start", "end")),
        conference_record=_choice(params, "ConferenceRecord", CONFERENCE_RECORD, "do-not-record"),
        conference_trim=_choice(params, "ConferenceTrim", {t: t for t in TRIMS}, "trim-silence"),
        conference_recording_status_callback=parse_url(params, "ConferenceRecordingStatusCallback"),
        conference_recording_status_callback_method=(
            parse_method(params, "ConferenceRecordingStatusCallbackMethod") or "POST"),
        conference_recording_status_callback_event=_events(
            params, "ConferenceRecordingStatusCallbackEvent", RECORDING_EVENTS, ("completed",)),
        recording_status_callback=parse_url(params, "RecordingStatusCallback"),
        caller_id=caller_id,
        sip_auth_username=get_param(params, "SipAuthUsername"),
        sip_auth_password=get_param(params, "SipAuthPassword", strip=False),
    )


def parse_participant_update(params: MultiMapping[str]) -> ParticipantUpdate:
    """Validate `POST .../Participants/{key}.json` (WaitUrl, WaitMethod and BeepOnExit are checked and ignored)."""
    _wait_url(params)
    parse_method(params, "WaitMethod")
    flag(params, "BeepOnExit")
    hold_url = parse_url(params, "HoldUrl")
    announce_url = parse_url(params, "AnnounceUrl")
    coaching, to_coach = _coaching(params)
    return ParticipantUpdate(
        muted=flag(params, "Muted"),
        hold=flag(params, "Hold"),
        hold_url=hold_url,
        hold_method=parse_method(params, "HoldMethod") or ("GET" if hold_url else None),  # Twilio's default: GET
        announce_url=announce_url,
        announce_method=parse_method(params, "AnnounceMethod") or ("POST" if announce_url else None),
        end_conference_on_exit=flag(params, "EndConferenceOnExit"),
        coaching=coaching,
        call_sid_to_coach=to_coach,
    )


def parse_day(params: MultiMapping[str], name: str) -> dt.date | None:
    """A date filter: `YYYY-MM-DD` or the datetime the official client sends.  A raw `DateCreated<=2024-01-01`
    arrives as the key `DateCreated<` with the value `=2024-01-01`: the `=` is dropped."""
    value = get_param(params, name)
    return None if value is None else day_of(name, value.removeprefix("="))


def parse_conference_filter(params: MultiMapping[str]) -> ConferenceFilter:
    """Validate the filters of `GET .../Conferences.json`."""
    raw = get_param(params, "Status")
    status = None
    if raw is not None:
        try:
            status = ConferenceStatus(raw.lower())
        except ValueError:
            raise InvalidParameter(f"Status must be init, in-progress or completed, not {raw!r}") from None
    return ConferenceFilter(
        friendly_name=get_param(params, "FriendlyName"),
        status=status,
        created_on=parse_day(params, "DateCreated"),
        created_before=parse_day(params, "DateCreated<"),
        created_after=parse_day(params, "DateCreated>"),
        updated_on=parse_day(params, "DateUpdated"),
        updated_before=parse_day(params, "DateUpdated<"),
        updated_after=parse_day(params, "DateUpdated>"),
    )
