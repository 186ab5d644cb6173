"""Twilio's attribute tables for the call-center elements (``<Conference>``, ``<Queue>``, ``<Enqueue>``,
``<Leave>``), mapped to :mod:`twiml.verbs_callcenter` fields; :data:`twiml.schema.ELEMENTS` includes them.

Codes are Twilio's where it has one (``Dial->Conference: Invalid muted value`` is 13230, ...;
``endConferenceOnExit`` is logged at ERROR level, so a bad one fails the document), else 12200.
"""

from __future__ import annotations

from twiml.schema_values import (
    Attr,
    BadValue,
    ElementSpec,
    boolean,
    choice,
    events,
    integer,
    method,
    optional_text,
    url,
)
from twiml.verbs_callcenter import MAX_CONFERENCE_PARTICIPANTS, MIN_CONFERENCE_PARTICIPANTS

_BEEPS = {"true": "true", "false": "false", "onenter": "onEnter", "onexit": "onExit"}


def beep(raw: str) -> str:
    """``<Conference>``'s beep: ``true``, ``false``, ``onEnter`` or ``onExit``, in any case (stored as written
    in Twilio's docs)."""
    value = _BEEPS.get(raw.strip().lower())
    if value is None:
        raise BadValue("expected true, false, onEnter or onExit")
    return value


def wait_url(raw: str) -> str:
    """``<Conference>``'s waitUrl, stripped; an empty value is kept (``""``: no wait music)."""
    return raw.strip()


CONFERENCE = ElementSpec(
    attributes={
        "muted": Attr("muted", boolean, 13230),
        "beep": Attr("beep", beep, 13235),
        "startConferenceOnEnter": Attr("start_conference_on_enter", boolean, 13232),
        "endConferenceOnExit": Attr("end_conference_on_exit", boolean, 13231, fatal=True),
        "waitUrl": Attr("wait_url", wait_url, 13233),
        "waitMethod": Attr("wait_method", method, 13234),
        "maxParticipants": Attr("max_participants", integer(MIN_CONFERENCE_PARTICIPANTS, MAX_CONFERENCE_PARTICIPANTS)),
        "record": Attr("record", choice("do-not-record", "record-from-start")),
        "region": Attr("region", optional_text),
        "trim": Attr("trim", choice("trim-silence", "do-not-trim")),
        "coach": Attr("coach", optional_text),
        "participantLabel": Attr("participant_label", optional_text),
        "statusCallback": Attr("status_callback", url),
        "statusCallbackMethod": Attr("status_callback_method", method),
        "statusCallbackEvent": Attr(
            "status_callback_event",
            events("start", "end", "join", "leave", "mute", "hold", "modify", "speaker", "announcement"),
        ),
        "recordingStatusCallback": Attr("recording_status_callback", url),
        "recordingStatusCallbackMethod": Attr("recording_status_callback_method", method),
        "recordingStatusCallbackEvent": Attr(
            "recording_status_callback_event", events("in-progress", "completed", "absent", "failed"), 13621, fatal=True
        ),
    },
    ignored=frozenset({"jitterBufferSize", "eventCallbackUrl", "recordingConfigurationId"}),
)

QUEUE = ElementSpec(
    attributes={"url": Attr("url", url), "method": Attr("method", method)},
    ignored=frozenset({"reservationSid", "postWorkActivitySid"}),
)

ENQUEUE = ElementSpec(
    attributes={
        "action": Attr("action", url),
        "method": Attr("method", method),
        "waitUrl": Attr("wait_url", url),
        "waitUrlMethod": Attr("wait_url_method", method),
    },
    ignored=frozenset({"workflowSid", "maxQueueSize"}),
)

LEAVE = ElementSpec(attributes={})
