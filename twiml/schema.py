"""Twilio's TwiML attribute names, mapped to :mod:`twiml.verbs` fields, with their value checks.

One explicit table per element: XML attribute name -> (dataclass field, converter). A converter turns the
attribute's text into a typed value or raises :class:`BadValue` with what it expected; the parser wraps that
into a 12200 :class:`~twiml.errors.TwimlError` naming the element and attribute.

``ignored`` lists real Twilio attributes softswitch accepts but does not act on yet, so documents written for
Twilio keep working; anything else is an unknown attribute and a 12200 error. ``required`` lists attributes
that must be present.

Value rules, everywhere: booleans are ``true``/``false`` in any case; integers are plain ASCII digits within
the documented range; methods are ``GET``/``POST`` in any case (stored upper-case); enumerated values are
matched case-insensitively (stored lower-case); event lists are separated by spaces or commas; an empty URL
attribute means "not given".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

Convert = Callable[[str], object]


class BadValue(Exception):
    """An attribute value a converter refused; the message says what was expected."""


class Attr(NamedTuple):
    """One attribute: the dataclass field it fills and how its text is converted."""

    field: str
    convert: Convert


@dataclass(frozen=True)
class ElementSpec:
    """The attributes an element may carry."""

    attributes: Mapping[str, Attr]
    ignored: frozenset[str] = field(default_factory=frozenset)
    required: frozenset[str] = field(default_factory=frozenset)


# --- converters --------------------------------------------------------------------------------------------

_INTEGER = re.compile(r"[+-]?[0-9]{1,12}")
_DTMF = re.compile(r"[0-9*#wW]+")
_KEYS = re.compile(r"[0-9*#]*")


def text(raw: str) -> str:
    """Free text, kept as written."""
    return raw


def name(raw: str) -> str:
    """A name that must not be blank (a voice, a language tag, a SID), stripped."""
    value = raw.strip()
    if not value:
        raise BadValue("expected a non-empty value")
    return value


def optional_text(raw: str) -> str | None:
    """Text stripped of surrounding whitespace; empty means not given."""
    return raw.strip() or None


def url(raw: str) -> str | None:
    """A relative or absolute URL, stripped; empty means not given (the current document for actions)."""
    return raw.strip() or None


def boolean(raw: str) -> bool:
    """``true`` or ``false``, in any case."""
    value = raw.strip().lower()
    if value == "true":
        return True
    if value == "false":
        return False
    raise BadValue("expected true or false")


def integer(minimum: int, maximum: int | None = None) -> Convert:
    """A converter for a whole number within ``minimum``..``maximum``."""
    expected = f"an integer >= {minimum}" if maximum is None else f"an integer from {minimum} to {maximum}"

    def convert(raw: str) -> int:
        value = raw.strip()
        if not _INTEGER.fullmatch(value):
            raise BadValue(f"expected {expected}")
        number = int(value)
        if number < minimum or (maximum is not None and number > maximum):
            raise BadValue(f"expected {expected}")
        return number

    return convert


def method(raw: str) -> str:
    """An HTTP method for a callback: ``GET`` or ``POST``, in any case."""
    value = raw.strip().upper()
    if value not in ("GET", "POST"):
        raise BadValue("expected GET or POST")
    return value


def choice(*allowed: str, aliases: Mapping[str, str] | None = None) -> Convert:
    """A converter for one of ``allowed`` (or an alias of one), matched case-insensitively."""
    table = dict(zip(allowed, allowed, strict=True))
    table.update(aliases or {})
    expected = "expected one of " + ", ".join((*allowed, *(aliases or {})))

    def convert(raw: str) -> str:
        value = raw.strip().lower()
        if value not in table:
            raise BadValue(expected)
        return table[value]

    return convert


def events(*allowed: str) -> Convert:
    """A converter for a space- or comma-separated list of ``allowed`` events, returned as a tuple in
    document order without repeats."""
    expected = "expected one or more of " + ", ".join(allowed)

    def convert(raw: str) -> tuple[str, ...]:
        names = [item.lower() for item in re.split(r"[\s,]+", raw.strip()) if item]
        if not names or any(item not in allowed for item in names):
            raise BadValue(expected)
        return tuple(dict.fromkeys(names))

    return convert


def dtmf(raw: str) -> str:
    """DTMF digits to send: ``0-9``, ``*``, ``#`` and ``w`` (wait half a second)."""
    value = raw.strip()
    if not _DTMF.fullmatch(value):
        raise BadValue("expected DTMF digits 0-9, *, # or w")
    return value


def finish_key(raw: str) -> str:
    """``<Gather>``'s finishOnKey: one key of ``0-9*#``, or empty for none."""
    value = raw.strip()
    if len(value) > 1 or not _KEYS.fullmatch(value):
        raise BadValue("expected one key of 0-9, * or #, or an empty value")
    return value


def finish_keys(raw: str) -> str:
    """``<Record>``'s finishOnKey: any keys of ``0-9*#``, or empty for none."""
    value = raw.strip()
    if not _KEYS.fullmatch(value):
        raise BadValue("expected keys from 0-9, * and #, or an empty value")
    return value


def gather_input(raw: str) -> str:
    """``<Gather>``'s input: ``dtmf``, ``speech`` or both, space separated; normalised to single spaces."""
    names = raw.strip().lower().split()
    if not names or any(item not in ("dtmf", "speech") for item in names):
        raise BadValue("expected dtmf, speech or 'dtmf speech'")
    return " ".join(dict.fromkeys(names))


# --- shared vocabularies ------------------------------------------------------------------------------------

RING_TONES = (
    "at", "au", "bg", "br", "be", "ch", "cl", "cn", "cz", "de", "dk", "ee", "es", "fi", "fr", "gr", "hu", "il",
    "in", "it", "lt", "jp", "mx", "my", "nl", "no", "nz", "ph", "pl", "pt", "ru", "se", "sg", "th", "uk", "us",
    "us-old", "tw", "ve", "za",
)  # fmt: skip

record_mode = choice(
    "do-not-record",
    "record-from-answer",
    "record-from-ringing",
    "record-from-answer-dual",
    "record-from-ringing-dual",
    aliases={"true": "record-from-answer", "false": "do-not-record"},
)
trim = choice("trim-silence", "do-not-trim")
recording_events = events("in-progress", "completed", "absent")
call_events = events("initiated", "ringing", "answered", "completed")
conversation_events = events("call-initiated", "call-ringing", "call-answered", "call-completed")

_AMD = frozenset(
    {
        "machineDetection",
        "machineDetectionTimeout",
        "machineDetectionSpeechThreshold",
        "machineDetectionSpeechEndThreshold",
        "machineDetectionSilenceTimeout",
        "amdStatusCallback",
        "amdStatusCallbackMethod",
    }
)

# --- one table per element ----------------------------------------------------------------------------------

SAY = ElementSpec(
    attributes={
        "voice": Attr("voice", name),
        "language": Attr("language", name),
        "loop": Attr("loop", integer(0)),
    },
)

PLAY = ElementSpec(
    attributes={
        "loop": Attr("loop", integer(0)),
        "digits": Attr("digits", dtmf),
    },
)

PAUSE = ElementSpec(attributes={"length": Attr("length", integer(0))})

GATHER = ElementSpec(
    attributes={
        "input": Attr("input", gather_input),
        "action": Attr("action", url),
        "method": Attr("method", method),
        "timeout": Attr("timeout", integer(1)),
        "finishOnKey": Attr("finish_on_key", finish_key),
        "numDigits": Attr("num_digits", integer(1)),
        "actionOnEmptyResult": Attr("action_on_empty_result", boolean),
    },
    ignored=frozenset(
        {
            "speechTimeout",
            "maxSpeechTime",
            "profanityFilter",
            "partialResultCallback",
            "partialResultCallbackMethod",
            "language",
            "hints",
            "bargeIn",
            "debug",
            "speechModel",
            "enhanced",
        }
    ),
)

RECORD = ElementSpec(
    attributes={
        "action": Attr("action", url),
        "method": Attr("method", method),
        "timeout": Attr("timeout", integer(0)),
        "finishOnKey": Attr("finish_on_key", finish_keys),
        "maxLength": Attr("max_length", integer(1, 86400)),
        "playBeep": Attr("play_beep", boolean),
        "trim": Attr("trim", trim),
        "recordingStatusCallback": Attr("recording_status_callback", url),
        "recordingStatusCallbackMethod": Attr("recording_status_callback_method", method),
        "recordingStatusCallbackEvent": Attr("recording_status_callback_event", recording_events),
        "transcribe": Attr("transcribe", boolean),
    },
    ignored=frozenset({"transcribeCallback", "recordingConfigurationId"}),
)

REDIRECT = ElementSpec(attributes={"method": Attr("method", method)})

HANGUP = ElementSpec(attributes={})

REJECT = ElementSpec(attributes={"reason": Attr("reason", choice("rejected", "busy"))})

DIAL = ElementSpec(
    attributes={
        "action": Attr("action", url),
        "method": Attr("method", method),
        "timeout": Attr("timeout", integer(1, 600)),
        "timeLimit": Attr("time_limit", integer(1, 86400)),
        "callerId": Attr("caller_id", optional_text),
        "hangupOnStar": Attr("hangup_on_star", boolean),
        "answerOnBridge": Attr("answer_on_bridge", boolean),
        "ringTone": Attr("ring_tone", choice(*RING_TONES)),
        "record": Attr("record", record_mode),
        "trim": Attr("trim", trim),
        "recordingStatusCallback": Attr("recording_status_callback", url),
        "recordingStatusCallbackMethod": Attr("recording_status_callback_method", method),
        "recordingStatusCallbackEvent": Attr("recording_status_callback_event", recording_events),
        "sequential": Attr("sequential", boolean),
        "passthruUrl": Attr("passthru_url", url),
        "referUrl": Attr("refer_url", url),
        "referMethod": Attr("refer_method", method),
    },
    ignored=frozenset({"recordingTrack", "recordingConfigurationId", "events", "passports"}),
)

NUMBER = ElementSpec(
    attributes={
        "sendDigits": Attr("send_digits", dtmf),
        "url": Attr("url", url),
        "method": Attr("method", method),
        "statusCallback": Attr("status_callback", url),
        "statusCallbackMethod": Attr("status_callback_method", method),
        "statusCallbackEvent": Attr("status_callback_event", call_events),
    },
    ignored=_AMD | {"byoc"},
)

SIP = ElementSpec(
    attributes={
        "username": Attr("username", text),
        "password": Attr("password", text),
        "url": Attr("url", url),
        "method": Attr("method", method),
        "statusCallback": Attr("status_callback", url),
        "statusCallbackMethod": Attr("status_callback_method", method),
        "statusCallbackEvent": Attr("status_callback_event", call_events),
    },
    ignored=_AMD,
)

CONNECT = ElementSpec(
    attributes={
        "action": Attr("action", url),
        "method": Attr("method", method),
    },
)

CONVERSATION = ElementSpec(
    attributes={
        "serviceInstanceSid": Attr("service_instance_sid", name),
        "inboundAutocreation": Attr("inbound_autocreation", boolean),
        "routingAssignmentTimeout": Attr("routing_assignment_timeout", integer(0)),
        "inboundTimeout": Attr("inbound_timeout", integer(0)),
        "url": Attr("url", url),
        "method": Attr("method", method),
        "record": Attr("record", record_mode),
        "trim": Attr("trim", trim),
        "recordingStatusCallback": Attr("recording_status_callback", url),
        "recordingStatusCallbackMethod": Attr("recording_status_callback_method", method),
        "recordingStatusCallbackEvent": Attr("recording_status_callback_event", recording_events),
        "statusCallback": Attr("status_callback", url),
        "statusCallbackMethod": Attr("status_callback_method", method),
        "statusCallbackEvent": Attr("status_callback_event", conversation_events),
    },
    required=frozenset({"serviceInstanceSid"}),
)

RESPONSE = ElementSpec(attributes={})

PARAMETER = ElementSpec(attributes={"name": Attr("name", text), "value": Attr("value", text)})

ELEMENTS: Mapping[str, ElementSpec] = {
    "Response": RESPONSE,
    "Say": SAY,
    "Play": PLAY,
    "Pause": PAUSE,
    "Gather": GATHER,
    "Record": RECORD,
    "Redirect": REDIRECT,
    "Hangup": HANGUP,
    "Reject": REJECT,
    "Dial": DIAL,
    "Number": NUMBER,
    "Sip": SIP,
    "Connect": CONNECT,
    "Conversation": CONVERSATION,
    "Parameter": PARAMETER,
}
"""Every element softswitch understands, by its TwiML tag."""

SSML_TAGS = frozenset({"break", "emphasis", "lang", "p", "phoneme", "prosody", "s", "say-as", "sub", "w"})
"""SSML elements Twilio allows inside ``<Say>``; softswitch reads their text and ignores the markup."""

UNSUPPORTED = frozenset(
    {
        "Enqueue", "Leave", "Queue", "Sms", "Pay", "Prompt", "Start", "Stop", "Stream", "Siprec", "Transcription",
        "Refer", "Echo", "Conference", "Client", "Sim", "Application", "WhatsApp", "Room", "Autopilot",
        "VirtualAgent", "ConversationRelay", "AiSession", "ConversationRelaySession", "Task", "Uri", "Headers",
        "Header", "Identity", "Config", "Language",
    }
)  # fmt: skip
"""Real Twilio verbs and nouns softswitch does not implement: a clearer 12200 than "unknown element"."""
