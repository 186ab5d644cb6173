"""The Twilio dialect's rendering of conference events: a `<Conference statusCallback>`'s requests.

Every `ConferenceEvent` of a room goes to the room's callback as Twilio's form parameters: ConferenceSid,
FriendlyName, AccountSid, SequenceNumber, Timestamp, StatusCallbackEvent; the participant's CallSid, Muted,
Hold, Coaching, EndConferenceOnExit, StartConferenceOnEnter (ParticipantLabel, CallSidToCoach when set) for
participant and announcement events; ReasonConferenceEnded and CallSidEndingConference (and
ParticipantLabelEndingConference) on conference-end; ReasonParticipantLeft and ParticipantCallStatus on
participant-leave.  They are keyed by the conference, so one room's requests leave in order.
"""

from __future__ import annotations

from switch.core.events import CallEvent, ConferenceEvent
from switch.core.webhooks import WebhookSender
from switch.dialects.formats import rfc2822


def _bool(value: bool) -> str:
    return "true" if value else "false"


def conference_params(event: ConferenceEvent) -> list[tuple[str, str]]:
    """The form parameters of one conference status callback."""
    conf = event.conference
    params = [("ConferenceSid", conf.sid), ("FriendlyName", conf.friendly_name), ("AccountSid", conf.account_sid),
              ("SequenceNumber", str(event.sequence)), ("Timestamp", rfc2822(event.at)),
              ("StatusCallbackEvent", event.kind)]
    who = event.participant
    if who is not None:
        params += [("CallSid", who.call_sid), ("Muted", _bool(who.muted)), ("Hold", _bool(who.hold)),
                   ("Coaching", _bool(who.coaching)), ("EndConferenceOnExit", _bool(who.end_conference_on_exit)),
                   ("StartConferenceOnEnter", _bool(who.start_conference_on_enter))]
        if who.label:
            params.append(("ParticipantLabel", who.label))
        if who.call_sid_to_coach:
            params.append(("CallSidToCoach", who.call_sid_to_coach))
    if event.kind == "conference-end":
        params.append(("ReasonConferenceEnded", event.reason or ""))
        if event.ending is not None:
            params.append(("CallSidEndingConference", event.ending.call_sid))
            if event.ending.label:
                params.append(("ParticipantLabelEndingConference", event.ending.label))
    if event.kind == "participant-leave":
        params.append(("ReasonParticipantLeft", event.reason or ""))
        if event.call_status:
            params.append(("ParticipantCallStatus", event.call_status))
    return params


class TwilioConferenceCallbacks:
    """Sends conference status callbacks (subscribe it to `CallEvents`)."""

    def __init__(self, webhooks: WebhookSender) -> None:
        self.webhooks = webhooks

    def __call__(self, event: CallEvent) -> None:
        if isinstance(event, ConferenceEvent):
            self.webhooks.send(event.conference.sid, event.url, event.method, conference_params(event),
                               event=f"{event.kind}:{event.sequence}")
