"""TwiML verbs and nouns as frozen dataclasses, with Twilio's defaults.

:func:`twiml.parse.parse` builds these from a document after checking every attribute; the interpreter only
reads them. Fields are snake_case and typed (real ``bool`` and ``int``, enumerated strings as ``Literal``);
the table from Twilio's camelCase attribute names to these fields is in :mod:`twiml.schema`.

A field that is ``None`` means "not given, use Twilio's behaviour": for ``action`` that is the current
document's URL (Gather, Record) or "continue with the next verb" (Dial, Connect).

Twilio attributes that softswitch accepts but does not act on yet are listed in each docstring under
"Accepted and ignored"; the parser reports them in :attr:`Response.warnings` instead of failing the call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

from twiml.errors import TwimlWarning
from twiml.verbs_callcenter import Conference as Conference, Enqueue as Enqueue, Leave as Leave, Queue as Queue
from twiml.verbtypes import HttpMethod as HttpMethod, Trim as Trim

RecordMode: TypeAlias = Literal[
    "do-not-record",
    "record-from-answer",
    "record-from-ringing",
    "record-from-answer-dual",
    "record-from-ringing-dual",
]
RejectReason: TypeAlias = Literal["rejected", "busy"]
RecordingEvent: TypeAlias = Literal["in-progress", "completed", "absent"]
CallEvent: TypeAlias = Literal["initiated", "ringing", "answered", "completed"]
MachineDetection: TypeAlias = Literal["enable", "detect_message_end"]
ConversationEvent: TypeAlias = Literal["call-initiated", "call-ringing", "call-answered", "call-completed"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Say:
    """``<Say>``: speak text with text-to-speech.

    Attributes (XML name, default):
        text: the element's text, stripped; SSML markup inside is flattened to its text.
        voice (``voice``, ``"man"``): any voice name (``man``, ``woman``, ``alice``, ``Polly.*``, ``Google.*``).
        language (``language``, ``"en-US"``): language/locale tag.
        loop (``loop``, ``1``): times to speak, >= 0; 0 means repeat until the call moves on.
    """

    text: str = ""
    voice: str = "man"
    language: str = "en-US"
    loop: int = 1


@dataclass(frozen=True, kw_only=True, slots=True)
class Play:
    """``<Play>``: play an audio file, or send DTMF tones.

    Attributes (XML name, default):
        url: the element's text, stripped; may be empty only when ``digits`` is given.
        loop (``loop``, ``1``): times to play, >= 0; 0 means repeat until the call moves on.
        digits (``digits``, ``None``): DTMF to send, ``0-9``, ``*``, ``#`` and ``w`` (a half-second wait).
    """

    url: str = ""
    loop: int = 1
    digits: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Pause:
    """``<Pause>``: wait silently.

    Attributes (XML name, default):
        length (``length``, ``1``): seconds to wait, >= 0.
    """

    length: int = 1


GatherChild: TypeAlias = Say | Play | Pause


@dataclass(frozen=True, kw_only=True, slots=True)
class Gather:
    """``<Gather>``: collect DTMF digits or speech while playing its nested ``<Say>``/``<Play>``/``<Pause>``.

    Attributes (XML name, default):
        input (``input``, ``"dtmf"``): ``dtmf``, ``speech`` or ``dtmf speech``.
        action (``action``, ``None``): URL to send the digits to; ``None`` is the current document.
        method (``method``, ``"POST"``): ``GET`` or ``POST`` for ``action``.
        timeout (``timeout``, ``5``): seconds to wait for the next digit, >= 1.
        finish_on_key (``finishOnKey``, ``"#"``): one key of ``0-9*#`` that ends input, or ``""`` for none.
        num_digits (``numDigits``, ``None``): stop after this many digits, >= 1; ``None`` is no limit.
        action_on_empty_result (``actionOnEmptyResult``, ``False``): request ``action`` even with no input.
        speech_timeout (``speechTimeout``, ``None``): seconds of silence that end speech, 1..60, or ``"auto"``
            (a pause in speech); ``None`` is ``timeout``'s value.
        max_speech_time (``maxSpeechTime``, ``60``): longest speech in seconds, 1..60.
        hints (``hints``, ``None``): comma-separated words and phrases the caller is likely to say.
        language (``language``, ``"en-US"``): the language spoken; only en-US is recognized (others: a
            warning, and en-US).
        partial_result_callback (``partialResultCallback``, ``None``): URL told each partial result.
        partial_result_callback_method (``partialResultCallbackMethod``, ``"POST"``).
        barge_in (``bargeIn``, ``True``): speech or a digit stops the nested verbs.
        profanity_filter (``profanityFilter``, ``True``): mask profane words of SpeechResult (``f***``).
        children: the nested ``Say``, ``Play`` and ``Pause`` in document order.

    Accepted and ignored: ``debug``, ``speechModel``, ``enhanced``.
    """

    input: str = "dtmf"
    action: str | None = None
    method: HttpMethod = "POST"
    timeout: int = 5
    finish_on_key: str = "#"
    num_digits: int | None = None
    action_on_empty_result: bool = False
    speech_timeout: int | Literal["auto"] | None = None
    max_speech_time: int = 60
    hints: str | None = None
    language: str = "en-US"
    partial_result_callback: str | None = None
    partial_result_callback_method: HttpMethod = "POST"
    barge_in: bool = True
    profanity_filter: bool = True
    children: tuple[GatherChild, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class Record:
    """``<Record>``: record the caller, then request ``action`` with the recording.

    Attributes (XML name, default):
        action (``action``, ``None``): URL to send the recording to; ``None`` is the current document.
        method (``method``, ``"POST"``): ``GET`` or ``POST`` for ``action``.
        timeout (``timeout``, ``5``): seconds of silence that end the recording, >= 0; 0 turns it off.
        finish_on_key (``finishOnKey``, ``"1234567890*#"``): keys of ``0-9*#`` that end it, ``""`` for none.
        max_length (``maxLength``, ``3600``): longest recording in seconds, 1..86400.
        play_beep (``playBeep``, ``True``): beep before recording.
        trim (``trim``, ``"trim-silence"``): ``trim-silence`` or ``do-not-trim``.
        recording_status_callback (``recordingStatusCallback``, ``None``): URL told about the recording.
        recording_status_callback_method (``recordingStatusCallbackMethod``, ``"POST"``).
        recording_status_callback_event (``recordingStatusCallbackEvent``, ``("completed",)``): any of
            ``in-progress``, ``completed``, ``absent``, space separated.
        transcribe (``transcribe``, ``False``): transcribe the recording (the configured recognizer).
        transcribe_callback (``transcribeCallback``, ``None``): URL told the transcription; setting it
            implies ``transcribe``.

    Accepted and ignored: ``recordingConfigurationId``.
    """

    action: str | None = None
    method: HttpMethod = "POST"
    timeout: int = 5
    finish_on_key: str = "1234567890*#"
    max_length: int = 3600
    play_beep: bool = True
    trim: Trim = "trim-silence"
    recording_status_callback: str | None = None
    recording_status_callback_method: HttpMethod = "POST"
    recording_status_callback_event: tuple[RecordingEvent, ...] = ("completed",)
    transcribe: bool = False
    transcribe_callback: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Redirect:
    """``<Redirect>``: continue with the TwiML at another URL.

    Attributes (XML name, default):
        url: the element's text, stripped, never empty.
        method (``method``, ``"POST"``): ``GET`` or ``POST``.
    """

    url: str
    method: HttpMethod = "POST"


@dataclass(frozen=True, kw_only=True, slots=True)
class Hangup:
    """``<Hangup>``: end the call. No attributes.

    Accepted and ignored: nested ``<Parameter>`` (Voice SDK custom parameters).
    """


@dataclass(frozen=True, kw_only=True, slots=True)
class Reject:
    """``<Reject>``: refuse an incoming call without answering it.

    Attributes (XML name, default):
        reason (``reason``, ``"rejected"``): ``rejected`` or ``busy``.

    Accepted and ignored: nested ``<Parameter>`` (Voice SDK custom parameters).
    """

    reason: RejectReason = "rejected"


@dataclass(frozen=True, kw_only=True, slots=True)
class _MachineDetectionAttributes:
    """The answering-machine detection attributes ``<Number>`` and ``<Sip>`` share (documented on ``Number``)."""

    machine_detection: MachineDetection | None = None
    machine_detection_timeout: int = 30
    machine_detection_speech_threshold: int = 2400
    machine_detection_speech_end_threshold: int = 1200
    machine_detection_silence_timeout: int = 5000
    amd_status_callback: str | None = None
    amd_status_callback_method: HttpMethod = "POST"


@dataclass(frozen=True, kw_only=True, slots=True)
class Number(_MachineDetectionAttributes):
    """``<Number>``: a phone number to ring, inside ``<Dial>``.

    Plain text directly inside ``<Dial>`` becomes a ``Number`` with the defaults.

    Attributes (XML name, default):
        number: the element's text, stripped, never empty.
        send_digits (``sendDigits``, ``None``): DTMF sent on answer, ``0-9*#w``.
        url (``url``, ``None``): TwiML run on the called party before bridging.
        method (``method``, ``"POST"``): ``GET`` or ``POST`` for ``url``.
        status_callback (``statusCallback``, ``None``): URL told about this leg's progress.
        status_callback_method (``statusCallbackMethod``, ``"POST"``).
        status_callback_event (``statusCallbackEvent``, ``("completed",)``): any of ``initiated``,
            ``ringing``, ``answered``, ``completed``; Twilio sends only ``completed`` when none are given.
        machine_detection (``machineDetection``, ``None``): answering-machine detection on the leg once it
            answers, ``Enable`` (stored ``"enable"``) or ``DetectMessageEnd`` (``"detect_message_end"``); always
            asynchronous: the answer goes to ``amdStatusCallback`` while the leg is bridged.
        machine_detection_timeout (``machineDetectionTimeout``, ``30``): seconds, 3..60.
        machine_detection_speech_threshold (``machineDetectionSpeechThreshold``, ``2400``): ms, 1000..6000.
        machine_detection_speech_end_threshold (``machineDetectionSpeechEndThreshold``, ``1200``): ms, 500..5000.
        machine_detection_silence_timeout (``machineDetectionSilenceTimeout``, ``5000``): ms, 2000..10000.
        amd_status_callback (``amdStatusCallback``, ``None``), amd_status_callback_method
            (``amdStatusCallbackMethod``, ``"POST"``): told AnsweredBy and MachineDetectionDuration.

    Accepted and ignored: ``byoc``.
    """

    number: str
    send_digits: str | None = None
    url: str | None = None
    method: HttpMethod = "POST"
    status_callback: str | None = None
    status_callback_method: HttpMethod = "POST"
    status_callback_event: tuple[CallEvent, ...] = ("completed",)


@dataclass(frozen=True, kw_only=True, slots=True)
class Sip(_MachineDetectionAttributes):
    """``<Sip>``: a SIP URI to ring, inside ``<Dial>``.

    Attributes (XML name, default):
        uri: the element's text, stripped; must start with ``sip:`` or ``sips:``.
        username (``username``, ``None``), password (``password``, ``None``): digest credentials.
        url (``url``, ``None``): TwiML run on the called party before bridging.
        method (``method``, ``"POST"``): ``GET`` or ``POST`` for ``url``.
        status_callback (``statusCallback``, ``None``), status_callback_method (``statusCallbackMethod``,
            ``"POST"``), status_callback_event (``statusCallbackEvent``, ``("completed",)``): as on ``Number``.
        machine_detection (``machineDetection``), machine_detection_timeout, machine_detection_speech_threshold,
            machine_detection_speech_end_threshold, machine_detection_silence_timeout, amd_status_callback,
            amd_status_callback_method: answering-machine detection, as on ``Number``.
    """

    uri: str
    username: str | None = None
    password: str | None = None
    url: str | None = None
    method: HttpMethod = "POST"
    status_callback: str | None = None
    status_callback_method: HttpMethod = "POST"
    status_callback_event: tuple[CallEvent, ...] = ("completed",)


@dataclass(frozen=True, kw_only=True, slots=True)
class Client:
    """``<Client>``: a Voice SDK client identity to ring, inside ``<Dial>``.

    The identity is either the element's text (``<Client>alice</Client>``) or a nested
    ``<Identity>alice</Identity>``; nested ``<Parameter name value>`` are custom parameters for the client.

    Attributes (XML name, default):
        identity: the text or ``<Identity>``, stripped; 1..256 characters, no whitespace or control characters
            (otherwise Twilio's error 31105, the document fails).
        parameters: the nested ``<Parameter>`` as ``(name, value)`` in document order; a missing ``value``
            is ``""``.
        url (``url``, ``None``): TwiML run on the called party before bridging.
        method (``method``, ``"POST"``): ``GET`` or ``POST`` for ``url``.
        status_callback (``statusCallback``, ``None``), status_callback_method (``statusCallbackMethod``,
            ``"POST"``), status_callback_event (``statusCallbackEvent``, ``("completed",)``): as on ``Number``.

    Accepted and ignored: ``clientNotificationUrl``.
    """

    identity: str
    parameters: tuple[tuple[str, str], ...] = ()
    url: str | None = None
    method: HttpMethod = "POST"
    status_callback: str | None = None
    status_callback_method: HttpMethod = "POST"
    status_callback_event: tuple[CallEvent, ...] = ("completed",)


DialNoun: TypeAlias = Number | Sip | Client | Conference | Queue

MAX_DIAL_NOUNS = 10
"""Twilio rings at most ten nouns at once, whatever their kinds."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Dial:
    """``<Dial>``: ring one or more parties and bridge the first to answer.

    Attributes (XML name, default):
        action (``action``, ``None``): URL requested when the dial ends; ``None`` continues the document.
        method (``method``, ``"POST"``): ``GET`` or ``POST`` for ``action``.
        timeout (``timeout``, ``30``): seconds to ring, 1..600.
        time_limit (``timeLimit``, ``14400``): longest bridged call in seconds, 1..86400.
        caller_id (``callerId``, ``None``): caller ID for the new leg; ``None`` keeps the caller's.
        hangup_on_star (``hangupOnStar``, ``False``): the caller pressing ``*`` ends the bridge.
        answer_on_bridge (``answerOnBridge``, ``False``): keep the caller ringing until the far end answers.
        ring_tone (``ringTone``, ``"us"``): ringback country code (``at`` .. ``za``, ``us-old``).
        record (``record``, ``"do-not-record"``): a :data:`RecordMode`; ``true``/``false`` are aliases of
            ``record-from-answer``/``do-not-record``.
        trim (``trim``, ``"do-not-trim"``): ``trim-silence`` or ``do-not-trim``.
        recording_status_callback (``recordingStatusCallback``, ``None``).
        recording_status_callback_method (``recordingStatusCallbackMethod``, ``"POST"``).
        recording_status_callback_event (``recordingStatusCallbackEvent``, ``("completed",)``).
        sequential (``sequential``, ``False``): ring the nouns one after another instead of all at once.
        passthru_url (``passthruUrl``, ``None``): softswitch extension, not a Twilio attribute.
        refer_url (``referUrl``, ``None``): URL requested when the dialed party sends a SIP REFER; its TwiML
            runs on the caller.  ``None``: a REFER is refused (Twilio's error 13802).
        refer_method (``referMethod``, ``"POST"``): ``GET`` or ``POST`` for ``refer_url``.
        nouns: the ``Number``/``Sip``/``Client`` to ring, 1..10 (:data:`MAX_DIAL_NOUNS`) of any mix; or exactly
            one ``Conference`` or ``Queue`` (:mod:`twiml.verbs_callcenter`), alone.

    Accepted and ignored: ``recordingTrack``, ``recordingConfigurationId``, ``events``, ``passports``.
    """

    action: str | None = None
    method: HttpMethod = "POST"
    timeout: int = 30
    time_limit: int = 14400
    caller_id: str | None = None
    hangup_on_star: bool = False
    answer_on_bridge: bool = False
    ring_tone: str = "us"
    record: RecordMode = "do-not-record"
    trim: Trim = "do-not-trim"
    recording_status_callback: str | None = None
    recording_status_callback_method: HttpMethod = "POST"
    recording_status_callback_event: tuple[RecordingEvent, ...] = ("completed",)
    sequential: bool = False
    passthru_url: str | None = None
    refer_url: str | None = None
    refer_method: HttpMethod = "POST"
    nouns: tuple[DialNoun, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class Conversation:
    """``<Conversation>``: hand the call to a Frontline Conversation, inside ``<Connect>``.

    Attributes (XML name, default):
        service_instance_sid (``serviceInstanceSid``): required.
        inbound_autocreation (``inboundAutocreation``, ``True``): create a Conversation for unknown callers.
        routing_assignment_timeout (``routingAssignmentTimeout``, ``5``): seconds to wait for a worker, >= 0.
        inbound_timeout (``inboundTimeout``, ``60``): seconds to ring the worker, >= 0.
        url (``url``, ``None``), method (``method``, ``"POST"``): TwiML run on the called party first.
        record (``record``, ``"do-not-record"``): a :data:`RecordMode` (``true``/``false`` aliases).
        trim (``trim``, ``"do-not-trim"``).
        recording_status_callback (``recordingStatusCallback``, ``None``).
        recording_status_callback_method (``recordingStatusCallbackMethod``, ``"POST"``).
        recording_status_callback_event (``recordingStatusCallbackEvent``, ``("completed",)``).
        status_callback (``statusCallback``, ``None``).
        status_callback_method (``statusCallbackMethod``, ``"POST"``).
        status_callback_event (``statusCallbackEvent``, ``("call-completed",)``): any of ``call-initiated``,
            ``call-ringing``, ``call-answered``, ``call-completed``.
    """

    service_instance_sid: str
    inbound_autocreation: bool = True
    routing_assignment_timeout: int = 5
    inbound_timeout: int = 60
    url: str | None = None
    method: HttpMethod = "POST"
    record: RecordMode = "do-not-record"
    trim: Trim = "do-not-trim"
    recording_status_callback: str | None = None
    recording_status_callback_method: HttpMethod = "POST"
    recording_status_callback_event: tuple[RecordingEvent, ...] = ("completed",)
    status_callback: str | None = None
    status_callback_method: HttpMethod = "POST"
    status_callback_event: tuple[ConversationEvent, ...] = ("call-completed",)


StreamTrack: TypeAlias = Literal["inbound_track", "outbound_track", "both_tracks"]

MAX_STREAM_PARAMETERS = 99
"""Twilio passes at most 99 custom parameters to a stream (``Parameter1`` .. ``Parameter99`` over REST)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Stream:
    """``<Stream>``: a Media Stream of the call's audio to a WebSocket server, inside ``<Start>``,
    ``<Connect>`` or ``<Stop>``.

    Attributes (XML name, default):
        url (``url``, ``None``): the ``ws://`` or ``wss://`` URL (relative: against the document, with ``http``
            become ``ws``); required in ``<Start>`` and ``<Connect>``, not used in ``<Stop>``.
        name (``name``, ``None``): a name unique on the call, to stop it by (``<Stop>``, REST).
        track (``track``, ``"inbound_track"``): ``inbound_track``, ``outbound_track`` or ``both_tracks``.
        status_callback (``statusCallback``, ``None``): URL told ``stream-started``, ``stream-stopped`` and
            ``stream-error``.
        status_callback_method (``statusCallbackMethod``, ``"POST"``).
        parameters: the nested ``<Parameter name value>`` as ``(name, value)``, the stream's customParameters.
    """

    url: str | None = None
    name: str | None = None
    track: StreamTrack = "inbound_track"
    status_callback: str | None = None
    status_callback_method: HttpMethod = "POST"
    parameters: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class Start:
    """``<Start>``: start a listen-only (unidirectional) ``<Stream>`` and go on with the next verb at once.

    Attributes:
        stream: the nested ``Stream`` (its ``url`` is given).

    Accepted and ignored: ``action``, ``method``.
    """

    stream: Stream


@dataclass(frozen=True, kw_only=True, slots=True)
class Stop:
    """``<Stop>``: stop the call's listen-only stream named by the nested ``<Stream name>``; a ``<Stream>``
    without a name stops all of them.

    Attributes:
        stream: the nested ``Stream`` (only its ``name`` is read).
    """

    stream: Stream


ConnectNoun: TypeAlias = Conversation | Stream


@dataclass(frozen=True, kw_only=True, slots=True)
class Connect:
    """``<Connect>``: hand the call to a service; exactly one nested noun, ``<Conversation>`` or ``<Stream>``
    (bidirectional: the next verb runs when the server closes the socket or the stream is stopped).

    Attributes (XML name, default):
        action (``action``, ``None``): URL requested when the session ends; ``None`` continues the document.
        method (``method``, ``"POST"``): ``GET`` or ``POST`` for ``action``.
        noun: the nested ``Conversation`` or ``Stream``.
    """

    noun: ConnectNoun
    action: str | None = None
    method: HttpMethod = "POST"


Verb: TypeAlias = (
    Say | Play | Pause | Gather | Record | Redirect | Hangup | Reject | Dial | Connect | Start | Stop | Enqueue | Leave
)
"""A verb that may appear directly under ``<Response>``."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Response:
    """A whole parsed and validated TwiML document.

    Attributes:
        verbs: the verbs under ``<Response>`` in document order; empty for ``<Response/>``.
        warnings: one per problem ignored or skipped (an unknown attribute or element, a bad value, a Twilio
            feature softswitch does not act on), with Twilio's code, for the interpreter to record on the call.
    """

    verbs: tuple[Verb, ...] = ()
    warnings: tuple[TwimlWarning, ...] = ()
