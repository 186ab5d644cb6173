"""The Conversations dialect's rendering of call events: `<Conversation>` status callbacks and routing requests.

* `ConversationLegPlaced`, then the leg's `CallStatusChanged` -> the session's statusCallback: ``call-initiated``,
  ``call-ringing``, ``call-answered``, ``call-completed`` (the core's one status -> event table, spelled with
  ``call-``), with ``CallbackSource=voice-conversation-service`` and a ``SequenceNumber`` numbered from 1 per
  session: one more than the callbacks already sent to that URL about the session's legs (the store's one record
  of what was sent, which also makes ``call-completed`` leave once).  Each is keyed by the dialed leg, so it
  cannot renumber anyone's call-progress callbacks.
* `ConversationRouting` -> a POST to the service's routing URL naming the conversation and its customer.
"""

from __future__ import annotations

import datetime as dt

from switch.core.events import (
    CallEvent,
    CallStatusChanged,
    ConversationLegPlaced,
    ConversationRouting,
    ConversationSession,
)
from switch.core.model import CallbackEvent
from switch.core.webhooks import WebhookSender
from switch.dialects.formats import rfc2822

CALLBACK_SOURCE = "voice-conversation-service"
STATUS_PREFIX = "call-"


def status_name(event: CallbackEvent) -> str:
    """`<Conversation statusCallbackEvent>`'s word for a callback event (``call-answered``, ...)."""
    return f"{STATUS_PREFIX}{event}"


def session_params(session: ConversationSession, leg_sid: str, event: CallbackEvent, sequence: int,
                   at: dt.datetime) -> list[tuple[str, str]]:
    """A `<Conversation>` status callback about the dialed leg `leg_sid`."""
    return [
        ("AccountSid", session.account_sid),
        ("ConversationSid", session.conversation_sid),
        ("DialCallSid", leg_sid),
        ("WorkerInitiated", "true" if session.worker_initiated else "false"),
        ("Status", status_name(event)),
        ("SequenceNumber", str(sequence)),
        ("Timestamp", rfc2822(at)),
        ("CallbackSource", CALLBACK_SOURCE),
    ]


def routing_params(event: ConversationRouting) -> list[tuple[str, str]]:
    """What the routing URL of a service is told about a conversation autocreated for a call."""
    params = [
        ("AccountSid", event.account_sid),
        ("ChatServiceSid", event.service_sid),
        ("ConversationSid", event.conversation_sid),
        ("CustomerAddress", event.customer_address),
        ("MessagingBinding.Address", event.customer_address),
    ]
    if event.proxy_address:
        params.append(("MessagingBinding.ProxyAddress", event.proxy_address))
    return params


class ConversationCallbacks:
    """Renders `<Conversation>` sessions and routing requests (subscribe it to `CallEvents`).

    It follows the legs sessions placed until each has ended, and a session's list of legs (what its
    SequenceNumber counts over) until its call and all its legs have ended.
    """

    def __init__(self, webhooks: WebhookSender) -> None:
        self.webhooks = webhooks
        self._legs: dict[str, ConversationSession] = {}  # leg SID -> its session, until the leg ends
        self._members: dict[str, list[str]] = {}  # session id -> every leg it placed
        self._sessions: dict[str, set[str]] = {}  # call SID -> ids of the sessions it runs, until it ends
        self._ended: set[str] = set()  # sessions whose call has ended

    def __call__(self, event: CallEvent) -> None:
        if isinstance(event, ConversationLegPlaced):
            self._placed(event.session, event.leg.sid)
            if event.leg.terminal:  # it failed before it could start: its end went by unheard
                self._status(event.leg.sid, CallbackEvent.COMPLETED, event.leg.end_time or event.leg.date_updated)
        elif isinstance(event, CallStatusChanged):
            sid = event.call.sid
            if event.progress is not None:
                self._status(sid, event.progress, event.at)
            if event.call.terminal:
                self._ended_call(sid)
        elif isinstance(event, ConversationRouting):
            self.webhooks.send(event.call_sid, event.routing_url, "POST", routing_params(event),
                               event="routing:" + event.conversation_sid)

    def _placed(self, session: ConversationSession, leg_sid: str) -> None:
        self._legs[leg_sid] = session
        self._members.setdefault(session.id, []).append(leg_sid)
        self._sessions.setdefault(session.parent_sid, set()).add(session.id)

    def _status(self, leg_sid: str, event: CallbackEvent, at: dt.datetime) -> None:
        session = self._legs.get(leg_sid)
        if session is None or session.callback is None or event not in session.callback.events:
            return
        target = session.callback
        name = status_name(event)
        if self.webhooks.sent(leg_sid, target.url, name):
            return
        sequence = 1 + sum(self.webhooks.count(leg, target.url) for leg in self._members[session.id])
        self.webhooks.send(leg_sid, target.url, target.method, session_params(session, leg_sid, event, sequence, at),
                           event=name)

    def _ended_call(self, sid: str) -> None:
        """`sid` ended: as a leg, it is no longer followed; as a session's call, its sessions may be forgotten."""
        session = self._legs.pop(sid, None)
        ids = set(self._sessions.pop(sid, ()))
        self._ended |= ids
        if session is not None:
            ids.add(session.id)
        for session_id in ids:
            members = self._members.get(session_id, [])
            if session_id in self._ended and not any(leg in self._legs for leg in members):
                self._members.pop(session_id, None)
                self._ended.discard(session_id)
