"""Call-center TwiML: the ``<Conference>`` and ``<Queue>`` nouns of ``<Dial>``, and the ``<Enqueue>`` and
``<Leave>`` verbs, as frozen dataclasses with Twilio's defaults.

Same conventions as :mod:`twiml.verbs` (which re-exports these classes and puts them in its ``DialNoun`` and
``Verb`` unions): snake_case typed fields, ``None`` for "not given, use Twilio's behaviour", and attributes
accepted but not acted on listed under "Accepted and ignored" (the parser warns about them). The attribute
tables are in :mod:`twiml.schema_callcenter`, the builders in :mod:`twiml.parse_callcenter`.

A ``<Dial>`` holding a ``<Conference>`` or a ``<Queue>`` holds exactly that one noun.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

from twiml.verbtypes import HttpMethod, Trim

ConferenceBeep: TypeAlias = Literal["true", "false", "onEnter", "onExit"]
ConferenceRecord: TypeAlias = Literal["do-not-record", "record-from-start"]
ConferenceEvent: TypeAlias = Literal[
    "start", "end", "join", "leave", "mute", "hold", "modify", "speaker", "announcement"
]
ConferenceRecordingEvent: TypeAlias = Literal["in-progress", "completed", "absent", "failed"]

MIN_CONFERENCE_PARTICIPANTS = 2
MAX_CONFERENCE_PARTICIPANTS = 250
"""Twilio's conference capacity, and the default of ``maxParticipants``."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Conference:
    """``<Conference>``: join the caller to a named conference room, inside ``<Dial>`` (alone).

    Attributes (XML name, default):
        name: the element's text, stripped, never empty; any text, kept as written (rooms are per account).
        muted (``muted``, ``False``): join muted (the caller hears but is not heard).
        beep (``beep``, ``"true"``): notification beep: ``true`` (on enter and exit), ``false``, ``onEnter`` or
            ``onExit``.
        start_conference_on_enter (``startConferenceOnEnter``, ``True``): this caller starts the conference;
            when ``False`` the caller waits (hearing ``wait_url``) until someone who starts it joins.
        end_conference_on_exit (``endConferenceOnExit``, ``False``): the conference ends when this caller leaves.
        wait_url (``waitUrl``, ``None``): TwiML or audio played while waiting for the conference to start;
            ``None`` is the default hold music, ``""`` (an empty attribute) is silence.
        wait_method (``waitMethod``, ``"POST"``): ``GET`` or ``POST`` for ``wait_url``.
        max_participants (``maxParticipants``, ``250``): the room's capacity, 2..250.
        record (``record``, ``"do-not-record"``): ``do-not-record`` or ``record-from-start``.
        region (``region``, ``None``): Twilio's hosting region; kept, but softswitch has one region.
        trim (``trim``, ``"trim-silence"``): ``trim-silence`` or ``do-not-trim`` for the recording.
        coach (``coach``, ``None``): the CallSid of a participant this caller coaches (heard only by them).
        participant_label (``participantLabel``, ``None``): a label for this participant, unique in the room.
        status_callback (``statusCallback``, ``None``): URL told the conference events below.
        status_callback_method (``statusCallbackMethod``, ``"POST"``).
        status_callback_event (``statusCallbackEvent``, ``()``): any of ``start``, ``end``, ``join``,
            ``leave``, ``mute``, ``hold``, ``modify``, ``speaker``, ``announcement``, space separated.
        recording_status_callback (``recordingStatusCallback``, ``None``): URL told about the recording.
        recording_status_callback_method (``recordingStatusCallbackMethod``, ``"POST"``).
        recording_status_callback_event (``recordingStatusCallbackEvent``, ``("completed",)``): any of
            ``in-progress``, ``completed``, ``absent``, ``failed``.

    Accepted and ignored: ``jitterBufferSize``, ``eventCallbackUrl`` (deprecated), ``recordingConfigurationId``.
    """

    name: str
    muted: bool = False
    beep: ConferenceBeep = "true"
    start_conference_on_enter: bool = True
    end_conference_on_exit: bool = False
    wait_url: str | None = None
    wait_method: HttpMethod = "POST"
    max_participants: int = MAX_CONFERENCE_PARTICIPANTS
    record: ConferenceRecord = "do-not-record"
    region: str | None = None
    trim: Trim = "trim-silence"
    coach: str | None = None
    participant_label: str | None = None
    status_callback: str | None = None
    status_callback_method: HttpMethod = "POST"
    status_callback_event: tuple[ConferenceEvent, ...] = ()
    recording_status_callback: str | None = None
    recording_status_callback_method: HttpMethod = "POST"
    recording_status_callback_event: tuple[ConferenceRecordingEvent, ...] = ("completed",)


@dataclass(frozen=True, kw_only=True, slots=True)
class Queue:
    """``<Queue>``: bridge the caller to the call waiting longest in a named queue, inside ``<Dial>`` (alone).
    An empty queue is waited on until a call is enqueued or the ``<Dial>`` timeout passes.

    Attributes (XML name, default):
        name: the element's text, stripped, never empty.
        url (``url``, ``None``): TwiML run on the dequeued caller before bridging (``<Play>``, ``<Say>``,
            ``<Pause>``, ``<Redirect>``).
        method (``method``, ``"POST"``): ``GET`` or ``POST`` for ``url``.

    Accepted and ignored: ``reservationSid``, ``postWorkActivitySid`` (TaskRouter).
    """

    name: str
    url: str | None = None
    method: HttpMethod = "POST"


MAX_QUEUE_NAME = 64
"""Twilio: "The queue name must be 64 characters or less in length"."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Enqueue:
    """``<Enqueue>``: put the caller in a named queue (made on demand), where it hears ``wait_url`` until it is
    dequeued by a ``<Dial><Queue>``, taken out over REST, or runs ``<Leave>``.

    Attributes (XML name, default):
        name: the element's text, stripped; 1..64 characters (:data:`MAX_QUEUE_NAME`).
        action (``action``, ``None``): URL requested when the call leaves the queue (with ``QueueResult``);
            ``None`` continues with the next verb.
        method (``method``, ``"POST"``): ``GET`` or ``POST`` for ``action``.
        wait_url (``waitUrl``, ``None``): TwiML run (repeatedly) while the caller waits; ``None`` is the
            default hold music.
        wait_url_method (``waitUrlMethod``, ``"POST"``): ``GET`` or ``POST`` for ``wait_url``.

    Accepted and ignored: ``workflowSid`` (TaskRouter; the name is still required), ``maxQueueSize`` (in
    Twilio's helper libraries only), nested ``<Task>``.
    """

    name: str
    action: str | None = None
    method: HttpMethod = "POST"
    wait_url: str | None = None
    wait_url_method: HttpMethod = "POST"


@dataclass(frozen=True, kw_only=True, slots=True)
class Leave:
    """``<Leave>``: take the caller out of its queue; the verbs after its ``<Enqueue>`` run (or the
    ``<Enqueue action>``). No attributes; meant for an ``<Enqueue waitUrl>`` document.
    """
