"""Twilio's TwiML attribute names, mapped to :mod:`twiml.verbs` fields, with their value checks.

One explicit table per element: XML attribute name -> (dataclass field, converter, Twilio's code). A converter
turns the attribute's text into a typed value or raises :class:`BadValue` with what it expected. As on Twilio,
a bad value is a warning with the verb's own code (``Gather: Invalid numDigits value`` is 13314) and the
attribute's default is used; the few attributes Twilio checks at ERROR level are marked ``fatal``, and an
element with an ``error_code`` (``<Conversation>``, Twilio's 32501) fails the document on any attribute problem.

``ignored`` lists real Twilio attributes softswitch accepts but does not act on yet; they are a warning. Any
other attribute is unknown: a 12200 warning, and ignored. ``required`` lists attributes that must be present.

Value rules, everywhere: booleans are ``true``/``false`` in any case; integers are plain ASCII digits within
the documented range; methods are ``GET``/``POST`` in any case (stored upper-case); enumerated values are
matched case-insensitively (stored lower-case); event lists are separated by spaces or commas; an empty URL
attribute means "not given".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

from twiml.errors import CONVERSATION_INVALID_ATTRIBUTES
from twiml.schema_callcenter import CONFERENCE, ENQUEUE, LEAVE, QUEUE
from twiml.schema_values import (
    Attr as Attr,
    BadValue as BadValue,
    Convert as Convert,
    ElementSpec as ElementSpec,
    boolean,
    choice,
    events,
    integer,
    method,
    name,
    optional_text,
    text,
    url,
)

# --- converters particular to one element -------------------------------------------------------------------

_DTMF = re.compile(r"[0-9*#wW]+")
_KEYS = re.compile(r"[0-9*#]*")


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


def speech_timeout(raw: str) -> int | str:
    """``<Gather>``'s speechTimeout: ``auto`` (in any case) or whole seconds, 1 to 60 (Twilio: "auto or a
    positive integer")."""
    value = raw.strip().lower()
    if value == "auto":
        return "auto"
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= 60:
        raise BadValue("expected auto or an integer from 1 to 60")
    return int(value)


MAX_CLIENT_IDENTITY = 256
"""Twilio: "The client identifier may be up to 256 characters"."""


def client_identity(raw: str) -> str:
    """A ``<Client>`` identity (its text or its ``<Identity>``), stripped: not empty, at most
    :data:`MAX_CLIENT_IDENTITY` characters, and no whitespace or control characters inside. The
    :class:`BadValue` message completes "the identity ..."."""
    value = raw.strip()
    if not value:
        raise BadValue("is empty")
    if len(value) > MAX_CLIENT_IDENTITY:
        raise BadValue(f"is {len(value)} characters long, more than {MAX_CLIENT_IDENTITY}")
    bad = next((ch for ch in value if ch.isspace() or unicodedata.category(ch) == "Cc"), None)
    if bad is not None:
        raise BadValue(f"contains whitespace or a control character (U+{ord(bad):04X})")
    return value


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

# Answering-machine detection on a <Dial> leg (<Number>, <Sip>): Twilio's ranges and defaults (its <Number> docs).
_AMD = {
    "machineDetection": Attr("machine_detection", choice("enable", aliases={"detectmessageend": "detect_message_end"})),
    "machineDetectionTimeout": Attr("machine_detection_timeout", integer(3, 60)),
    "machineDetectionSpeechThreshold": Attr("machine_detection_speech_threshold", integer(1000, 6000)),
    "machineDetectionSpeechEndThreshold": Attr("machine_detection_speech_end_threshold", integer(500, 5000)),
    "machineDetectionSilenceTimeout": Attr("machine_detection_silence_timeout", integer(2000, 10000)),
    "amdStatusCallback": Attr("amd_status_callback", url),
    "amdStatusCallbackMethod": Attr("amd_status_callback_method", method),
}

# --- one table per element ----------------------------------------------------------------------------------

SAY = ElementSpec(
    attributes={
        "voice": Attr("voice", name, 13511),
        "language": Attr("language", name),
        "loop": Attr("loop", integer(0), 13510),
    },
)

PLAY = ElementSpec(
    attributes={
        "loop": Attr("loop", integer(0), 13410),
        "digits": Attr("digits", dtmf, 13430),
    },
)

PAUSE = ElementSpec(attributes={"length": Attr("length", integer(0), 13910)})

GATHER = ElementSpec(
    attributes={
        "input": Attr("input", gather_input, 13326),
        "action": Attr("action", url),
        "method": Attr("method", method, 13312),
        "timeout": Attr("timeout", integer(1), 13313),
        "finishOnKey": Attr("finish_on_key", finish_key, 13310),
        "numDigits": Attr("num_digits", integer(1), 13314),
        "actionOnEmptyResult": Attr("action_on_empty_result", boolean, 13338, fatal=True),
        "speechTimeout": Attr("speech_timeout", speech_timeout, 13327),
        "maxSpeechTime": Attr("max_speech_time", integer(1, 60), 13328),
        "hints": Attr("hints", optional_text),
        "language": Attr("language", name),
        "partialResultCallback": Attr("partial_result_callback", url),
        "partialResultCallbackMethod": Attr("partial_result_callback_method", method),
        "bargeIn": Attr("barge_in", boolean),
        "profanityFilter": Attr("profanity_filter", boolean),
    },
    ignored=frozenset({"debug", "speechModel", "enhanced"}),
)

RECORD = ElementSpec(
    attributes={
        "action": Attr("action", url),
        "method": Attr("method", method, 13610),
        "timeout": Attr("timeout", integer(0), 13611),
        "finishOnKey": Attr("finish_on_key", finish_keys, 13613),
        "maxLength": Attr("max_length", integer(1, 86400), 13612),
        "playBeep": Attr("play_beep", boolean, 13616),
        "trim": Attr("trim", trim, 13699),
        "recordingStatusCallback": Attr("recording_status_callback", url),
        "recordingStatusCallbackMethod": Attr("recording_status_callback_method", method),
        "recordingStatusCallbackEvent": Attr("recording_status_callback_event", recording_events, 13621, fatal=True),
        "transcribe": Attr("transcribe", boolean, 13614),
        "transcribeCallback": Attr("transcribe_callback", url),
    },
    ignored=frozenset({"recordingConfigurationId"}),
)

REDIRECT = ElementSpec(attributes={"method": Attr("method", method, 13710)})

HANGUP = ElementSpec(attributes={})

REJECT = ElementSpec(attributes={"reason": Attr("reason", choice("rejected", "busy"), 13810)})

DIAL = ElementSpec(
    attributes={
        "action": Attr("action", url),
        "method": Attr("method", method, 13210),
        "timeout": Attr("timeout", integer(1, 600), 13212),
        "timeLimit": Attr("time_limit", integer(1, 86400), 13216),
        "callerId": Attr("caller_id", optional_text, 13214),
        "hangupOnStar": Attr("hangup_on_star", boolean, 13213),
        "answerOnBridge": Attr("answer_on_bridge", boolean, 13219),
        "ringTone": Attr("ring_tone", choice(*RING_TONES), 13220),
        "record": Attr("record", record_mode, 13217),
        "trim": Attr("trim", trim),
        "recordingStatusCallback": Attr("recording_status_callback", url),
        "recordingStatusCallbackMethod": Attr("recording_status_callback_method", method),
        "recordingStatusCallbackEvent": Attr("recording_status_callback_event", recording_events, 13621, fatal=True),
        "sequential": Attr("sequential", boolean, 13218),
        "passthruUrl": Attr("passthru_url", url),
        "referUrl": Attr("refer_url", url),
        "referMethod": Attr("refer_method", method),
    },
    ignored=frozenset({"recordingTrack", "recordingConfigurationId", "events", "passports"}),
)

NUMBER = ElementSpec(
    attributes={
        "sendDigits": Attr("send_digits", dtmf, 13222),
        "url": Attr("url", url),
        "method": Attr("method", method, 13221),
        "statusCallback": Attr("status_callback", url),
        "statusCallbackMethod": Attr("status_callback_method", method),
        "statusCallbackEvent": Attr("status_callback_event", call_events),
        **_AMD,
    },
    ignored=frozenset({"byoc"}),
)

SIP = ElementSpec(
    attributes={
        "username": Attr("username", text, 13249),
        "password": Attr("password", text, 13249),
        "url": Attr("url", url),
        "method": Attr("method", method, 13241),
        "statusCallback": Attr("status_callback", url),
        "statusCallbackMethod": Attr("status_callback_method", method),
        "statusCallbackEvent": Attr("status_callback_event", call_events),
        **_AMD,
    },
)

CLIENT = ElementSpec(
    attributes={
        "url": Attr("url", url),
        "method": Attr("method", method),
        "statusCallback": Attr("status_callback", url),
        "statusCallbackMethod": Attr("status_callback_method", method),
        "statusCallbackEvent": Attr("status_callback_event", call_events),
    },
    ignored=frozenset({"clientNotificationUrl"}),
)

IDENTITY = ElementSpec(attributes={})

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
    error_code=CONVERSATION_INVALID_ATTRIBUTES,  # Twilio: "Voice Conversation: TwiML attributes validation error"
)

RESPONSE = ElementSpec(attributes={})

PARAMETER = ElementSpec(attributes={"name": Attr("name", text), "value": Attr("value", text)})

STREAM = ElementSpec(
    attributes={
        "url": Attr("url", url),
        "name": Attr("name", optional_text),
        "track": Attr("track", choice("inbound_track", "outbound_track", "both_tracks")),
        "statusCallback": Attr("status_callback", url),
        "statusCallbackMethod": Attr("status_callback_method", method),
    },
)

START = ElementSpec(attributes={}, ignored=frozenset({"action", "method"}))

STOP = ElementSpec(attributes={})

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
    "Client": CLIENT,
    "Identity": IDENTITY,
    "Connect": CONNECT,
    "Conversation": CONVERSATION,
    "Parameter": PARAMETER,
    "Stream": STREAM,
    "Start": START,
    "Stop": STOP,
    "Conference": CONFERENCE,
    "Queue": QUEUE,
    "Enqueue": ENQUEUE,
    "Leave": LEAVE,
}
"""Every element softswitch understands, by its TwiML tag."""

SSML_TAGS = frozenset({"break", "emphasis", "lang", "p", "phoneme", "prosody", "s", "say-as", "sub", "w"})
"""SSML elements Twilio allows inside ``<Say>``; softswitch reads their text and ignores the markup."""

UNSUPPORTED: Mapping[str, frozenset[str]] = {
    "Response": frozenset({"Sms", "Pay", "Refer", "Echo"}),
    "Dial": frozenset({"Sim", "Application", "WhatsApp"}),
    "Connect": frozenset({
        "Room", "VirtualAgent", "ConversationRelay", "AiSession", "Autopilot", "Assistant",
    }),
    "Start": frozenset({"Siprec", "Transcription", "Recording"}),
    "Stop": frozenset({"Siprec", "Transcription", "Recording"}),
}  # fmt: skip
"""Real Twilio verbs and nouns softswitch does not implement, by the element they are valid in: a 13750 error
("TwiML verb not supported"). The same tag anywhere else is simply misplaced (a 12200 warning)."""
