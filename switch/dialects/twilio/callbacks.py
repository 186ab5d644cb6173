"""Twilio's rendering of call events: status and recording callbacks, and the parameters of TwiML requests.

`TwilioCallbacks` subscribes to the core's `CallEvents` and turns them into Twilio's webhooks:

* `CallStatusChanged` -> a call-progress status callback (`CallbackSource=call-progress-events`) when the call
  has a StatusCallback and asked for that event (StatusCallbackEvent, from the core's one status -> event
  table).  `SequenceNumber` counts from 0 the status callbacks already sent about the call, to whichever URL
  (Twilio: "the order in which the events were fired"; a StatusCallback changed by a REST update mid-call goes
  on from where the old one stopped): the store's one record of what was sent.  The terminal callback of a
  call created with Record=true also names its recording (RecordingUrl, RecordingSid, RecordingDuration), as
  Twilio's does.
* `RecordingStarted` / `RecordingStatusChanged` -> a recording status callback (`in-progress`, `completed`,
  `absent`) when the recording asked for it; keyed by the call, so it never overtakes the call's own callbacks.

`standard_params` is what Twilio sends with every request about a call.  The TwiML session gets it (and the
error codes of its notifications) through `TwilioTwiml`, which the application hands to the voice engine: the
session and the verbs sit below the dialects and never spell a Twilio name themselves.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable

from switch.core.errors import RequestError
from switch.core.events import (
    CallEvent,
    CallStatusChanged,
    MachineDetected,
    RecordingStarted,
    RecordingStatusChanged,
)
from switch.core.model import Call, CallbackEvent
from switch.core.recording_model import Recording, RecordingProblem, RecordingSource, RecordingStatus
from switch.core.webhooks import WebhookSender
from switch.dialects.errors import API_ROOT, twilio_code
from switch.dialects.formats import rfc2822

API_VERSION = "2010-04-01"
CALL_PROGRESS = "call-progress-events"

# Recording sources in Twilio's words.  A value an older release stored (already Twilio's) passes through.
SOURCES: dict[str, str] = {
    RecordingSource.CALL: "OutboundAPI",
    RecordingSource.DIAL: "DialVerb",
    RecordingSource.RECORD: "RecordVerb",
    RecordingSource.API: "StartCallRecordingAPI",
    RecordingSource.CONFERENCE: "Conference",
}
_REPORTED = (RecordingStatus.COMPLETED, RecordingStatus.ABSENT)
# What a call-progress status callback reports (the `event` it is stored with): the ones SequenceNumber counts.
_PROGRESS_EVENTS = tuple(str(event) for event in CallbackEvent)


def recording_source(source: str) -> str:
    """A recording's Source / RecordingSource in Twilio's words."""
    return SOURCES.get(source, source)


def recording_url(base_url: str, account_sid: str, recording_sid: str) -> str:
    """Twilio's RecordingUrl: the media resource without an extension (it serves WAV)."""
    return f"{base_url.rstrip('/')}{API_ROOT}/Accounts/{account_sid}/Recordings/{recording_sid}"


def standard_params(call: Call) -> list[tuple[str, str]]:
    """The parameters Twilio sends with every request about a call (TwiML fetches and callbacks)."""
    params = [
        ("CallSid", call.sid),
        ("AccountSid", call.account_sid),
        ("From", call.from_),
        ("To", call.to),
        ("Caller", call.from_),
        ("Called", call.to),
        ("CallStatus", str(call.status)),
        ("ApiVersion", API_VERSION),
        ("Direction", str(call.direction)),
    ]
    if call.forwarded_from:
        params.append(("ForwardedFrom", call.forwarded_from))
    if call.caller_name:
        params.append(("CallerName", call.caller_name))
    if call.parent_call_sid:
        params.append(("ParentCallSid", call.parent_call_sid))
    if call.sip_params:
        params += call.sip_params.items()
    if call.answered_by:  # answering-machine detection decided: the Url request of synchronous AMD, and after
        params.append(("AnsweredBy", call.answered_by))
        if call.machine_detection_duration is not None:
            params.append(("MachineDetectionDuration", str(call.machine_detection_duration)))
    return params


def amd_callback_params(call: Call) -> list[tuple[str, str]]:
    """The AsyncAmdStatusCallback (and a `<Number>`/`<Sip>` amdStatusCallback): who answered, and how many
    milliseconds of the call's audio that took."""
    return [
        ("CallSid", call.sid),
        ("AccountSid", call.account_sid),
        ("AnsweredBy", call.answered_by or "unknown"),
        ("MachineDetectionDuration", str(call.machine_detection_duration or 0)),
    ]


def status_callback_params(call: Call, sequence: int, at: dt.datetime) -> list[tuple[str, str]]:
    """A call-progress status callback for the call's current status."""
    params = standard_params(call)
    params += [
        ("CallbackSource", CALL_PROGRESS),
        ("SequenceNumber", str(sequence)),
        ("Timestamp", rfc2822(at)),
    ]
    if call.sip_response_code is not None:
        params.append(("SipResponseCode", str(call.sip_response_code)))
    if call.status.terminal:
        seconds = call.duration or 0
        params.append(("CallDuration", str(seconds)))
        params.append(("Duration", str(math.ceil(seconds / 60))))
    return params


def recording_callback_params(rec: Recording, event: str, media_url: str) -> list[tuple[str, str]]:
    """A recording status callback reporting `event` (in-progress, completed, absent)."""
    params = [
        ("AccountSid", rec.account_sid),
        ("CallSid", rec.call_sid),
        ("RecordingSid", rec.sid),
        ("RecordingUrl", media_url),
        ("RecordingStatus", event),
    ]
    if rec.conference_sid:
        params.append(("ConferenceSid", rec.conference_sid))
    if rec.status.final:
        params.append(("RecordingDuration", str(rec.duration or 0)))
    params += [
        ("RecordingChannels", str(rec.channels)),
        ("RecordingSource", recording_source(rec.source)),
        ("RecordingStartTime", rfc2822(rec.start_time or rec.date_created)),
        ("RecordingTrack", rec.track),
    ]
    code = recording_error_code(rec)
    if code is not None:
        params.append(("ErrorCode", str(code)))
    return params


def call_recording_params(rec: Recording, duration: int, media_url: str) -> list[tuple[str, str]]:
    """What the `completed` status callback of a call created with Record=true adds: its recording, which may
    still be processing (Twilio: "the recording file may not yet be accessible"; its own callback says when)."""
    return [("RecordingUrl", media_url), ("RecordingSid", rec.sid), ("RecordingDuration", str(duration))]


# Why a recording is absent, in Twilio's codes: 16101 "recording too short", 16102 "recording silent".
RECORDING_PROBLEM_CODES = {RecordingProblem.NOTHING_CAPTURED: 16101, RecordingProblem.SILENT: 16102}


def recording_error_code(rec: Recording) -> int | None:
    return None if rec.problem is None else RECORDING_PROBLEM_CODES[rec.problem]


class TwilioCallbacks:
    """Renders the core's call events as Twilio's status and recording callbacks (subscribe it to `CallEvents`)."""

    def __init__(self, webhooks: WebhookSender, base_url: str) -> None:
        self.webhooks = webhooks
        self.base_url = base_url
        # The Record=true recording of a call and its duration so far (`RecordingManager.call_recording`),
        # reported in the call's `completed` callback; set once the recordings exist.
        self.call_recording: Callable[[str], tuple[Recording, int] | None] | None = None

    def __call__(self, event: CallEvent) -> None:
        if isinstance(event, CallStatusChanged):
            self._status(event)
        elif isinstance(event, RecordingStarted):
            self._recording(event.recording, str(RecordingStatus.IN_PROGRESS))
        elif isinstance(event, RecordingStatusChanged) and event.recording.status in _REPORTED:
            self._recording(event.recording, str(event.recording.status))
        elif isinstance(event, MachineDetected):
            self._machine_detected(event.call)

    def _status(self, event: CallStatusChanged) -> None:
        call, progress = event.call, event.progress
        url = call.status_callback
        if not url or progress is None or progress not in call.status_callback_events:
            return
        params = status_callback_params(call, self.webhooks.count(call.sid, None, _PROGRESS_EVENTS), event.at)
        if call.record and call.status.terminal and self.call_recording is not None:
            found = self.call_recording(call.sid)
            if found is not None:
                params += call_recording_params(*found, recording_url(self.base_url, call.account_sid, found[0].sid))
        self.webhooks.send(call.sid, url, call.status_callback_method, params, event=str(progress))

    def _machine_detected(self, call: Call) -> None:
        """Asynchronous AMD: its answer to AsyncAmdStatusCallback, keyed by the call (after its earlier callbacks).
        Synchronous AMD told the Url request instead."""
        url = call.async_amd_status_callback
        if not call.async_amd or not url:
            return
        self.webhooks.send(call.sid, url, call.async_amd_status_callback_method, amd_callback_params(call),
                           event="amd")

    def _recording(self, rec: Recording, event: str) -> None:
        url = rec.status_callback
        if not url or event not in rec.status_callback_events:
            return
        params = recording_callback_params(rec, event, recording_url(self.base_url, rec.account_sid, rec.sid))
        # Keyed by the call: delivered after the call's own earlier callbacks, never before them.
        self.webhooks.send(rec.call_sid, url, rec.status_callback_method, params, event=f"recording:{rec.sid}:{event}")


class TwilioTwiml:
    """What a call's TwiML session needs from the dialect that speaks TwiML (`switch.session.voice.TwimlDialect`)."""

    def request_params(self, call: Call) -> list[tuple[str, str]]:
        return standard_params(call)

    def error_code(self, error: RequestError) -> int:
        return twilio_code(error)
