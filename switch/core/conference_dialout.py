"""REST-created participants (`POST .../Conferences/{Sid}/Participants`): dial `To` and seat it when it answers.

The call is placed like any REST call, with inline TwiML that holds one `<Dial><Conference>` carrying the create
request's options, so the participant runs the same verb as a caller who dialed in.  Until it answers, its
participant record says queued, then ringing; a call that ends unanswered leaves a `failed` record, and a room
made only for it (a friendly name no one was in) ends again.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Protocol
from xml.sax.saxutils import escape, quoteattr

from switch.core.conference_model import Conference, Participant, ParticipantCreate, ParticipantStatus
from switch.core.errors import NotFound
from switch.core.model import Call, CallbackEvent
from switch.core.service import NewCall
from switch.core.status import CallStatus

if TYPE_CHECKING:
    from switch.core.calls import CallManager


class Rooms(Protocol):
    """What dialing a participant needs of the rooms (`switch.core.conferences.Conferences`)."""

    def conference(self, sid: str) -> Conference: ...
    def live_room(self, sid: str) -> Any: ...
    def room_named(self, name: str) -> Any: ...
    def pending_participant(self, room: Any, call_sid: str, create: ParticipantCreate) -> Participant: ...
    def set_pending(self, call_sid: str, status: ParticipantStatus) -> None: ...
    def pending_ended(self, room: Any, call_sid: str) -> None: ...


def conference_twiml(name: str, create: ParticipantCreate) -> str:
    """The TwiML a REST-created participant runs when it answers."""
    attributes = {
        "muted": str(create.muted).lower(), "beep": create.beep,
        "startConferenceOnEnter": str(create.start_conference_on_enter).lower(),
        "endConferenceOnExit": str(create.end_conference_on_exit).lower(),
        "maxParticipants": str(create.max_participants), "record": create.conference_record,
        "trim": create.conference_trim, "waitMethod": create.wait_method,
        "statusCallbackMethod": create.conference_status_callback_method,
        "recordingStatusCallbackMethod": create.conference_recording_status_callback_method,
        "recordingStatusCallbackEvent": " ".join(create.conference_recording_status_callback_event),
    }
    optional = {"waitUrl": create.wait_url, "participantLabel": create.label,
                "coach": create.call_sid_to_coach if create.coaching else None,
                "statusCallback": create.conference_status_callback,
                "statusCallbackEvent": " ".join(create.conference_status_callback_event) or None,
                "recordingStatusCallback": create.conference_recording_status_callback}
    attributes.update({key: value for key, value in optional.items() if value is not None})
    text = " ".join(f"{key}={quoteattr(value)}" for key, value in attributes.items())
    return f"<Response><Dial><Conference {text}>{escape(name)}</Conference></Dial></Response>"


async def add_participant(conferences: Rooms, calls: CallManager, sid_or_name: str,
                          create: ParticipantCreate) -> Participant:
    """Dial `create.to` into the conference `sid_or_name` (a CF sid, or a friendly name: its live room, or a new
    one), and return its participant record (queued)."""
    if sid_or_name.startswith("CF") and len(sid_or_name) == 34:
        conf = conferences.conference(sid_or_name)
        room = conferences.live_room(conf.sid)
        if room is None:
            raise NotFound(f"Conference {conf.sid} is not in progress")
    else:
        room = conferences.room_named(sid_or_name)
    name = conferences.conference(room.sid).friendly_name
    events = frozenset(CallbackEvent(e) for e in create.status_callback_event if e in set(CallbackEvent)) \
        or frozenset({CallbackEvent.COMPLETED})
    call = await calls.create_call(NewCall(
        to=create.to, from_=create.from_, twiml=conference_twiml(name, create),
        status_callback=create.status_callback, status_callback_method=create.status_callback_method,
        status_callback_events=events, timeout=create.timeout, time_limit=create.time_limit,
        sip_auth_username=create.sip_auth_username, sip_auth_password=create.sip_auth_password,
        caller_id=create.caller_id))
    record = conferences.pending_participant(room, call.sid, create)

    def follow(changed: Call) -> None:
        if changed.status is CallStatus.RINGING:
            conferences.set_pending(changed.sid, ParticipantStatus.RINGING)
        elif changed.terminal:
            stop()
            conferences.pending_ended(room, changed.sid)

    stop = calls.watch(call.sid, follow)
    return dataclasses.replace(record)
