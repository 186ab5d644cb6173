"""`<Connect><Conversation>`: connect a customer and a worker of a Conversations service, Frontline style.

Inbound (a customer calls the service's number, whose TwiML has `<Connect><Conversation>`):

1. find the open conversation whose customer is the caller and whose proxy address is the number called;
2. none, and ``inboundAutocreation`` on: create it (customer = caller), start routing (`Conversations.route`)
   and wait up to ``routingAssignmentTimeout`` s for a worker participant (else ``no-other-participants``);
   none, and autocreation off: refuse the call (603) -- ``no-existing-conversation``;
   the service is unknown and autocreation is on: ``failed-create-conversation``;
3. dial the workers (in parallel, at their SIP URIs) for ``inboundTimeout`` s.

Outbound, worker-initiated: the call names a conversation, and the customer is dialed.  A call names one
with a ``ConversationSid`` parameter in its SIP Request-URI (a worker's phone calling
``sip:+15550100@switch;ConversationSid=CH...``) or in the query string of the TwiML document that holds the
``<Connect>`` (a REST-created call to the worker with ``Url=https://app/frontline?ConversationSid=CH...``).
An unknown conversation (or one without a customer) is ``invalid-conversation``.

The dialing is a `switch.verbs.dial.DialSession` (ringback, whisper ``url`` on the called party, bridging, the
``record``/``trim`` recording, hang-up handling), run on a `verbs.Dial` built from the `<Conversation>`.  Its
outcome becomes the Result: completed = ``session-success`` (the session lasts until either side hangs up),
anything else = ``dialed-call-incomplete`` with DialCallStatus.  A leg that fails once connected (its media
worker died) and any unexpected exception give ``internal-error``; the call goes on with the action URL.

Status callbacks (``statusCallbackEvent``: ``call-initiated``, ``call-ringing``, ``call-answered``,
``call-completed``) describe the dialed legs: each leg placed is a `ConversationLegPlaced` call event naming the
session and its callback, and the Conversations dialect (`switch.dialects.conversations.callbacks`) renders the
legs' status changes for it, in order, numbered from 1, ``call-completed`` once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import urllib.parse
import uuid
from dataclasses import dataclass
from typing import Literal

from switch.core.conversations import Conversations, is_customer_address
from switch.core.errors import INTERNAL_FAILURE, RequestError
from switch.core.events import CallbackTarget, ConversationLegPlaced, ConversationSession, snapshot
from switch.core.model import Call, CallbackEvent, Direction
from switch.core.status import CallStatus, EndReason
from switch.session.voice import LiveCall
from switch.verbs.base import Task, run_session
from switch.verbs.dial import DialResult, DialSession
from switch.verbs.stream import connect_stream
from switch.workers.media import MediaError
from twiml import verbs
from twiml.control import CONTINUE, STOP, Outcome
from twiml.fetch import resolve

log = logging.getLogger("switch.verbs.connect")

Result = Literal[
    "session-success",
    "dialed-call-incomplete",
    "failed-create-conversation",
    "no-other-participants",
    "invalid-conversation",
    "no-existing-conversation",
    "internal-error",
]

OUTBOUND_TIMEOUT = 60  # seconds to ring the customer on a worker-initiated call (Twilio's default ring time)
MAX_RING = 600
RECORDING_SETTLE = 5.0  # seconds an interrupted session waits for its recording to be final
REJECT_CODE = 603
INCOMPLETE_CONVERSATION = 32504  # Twilio: an existing conversation has no worker participant
NO_WORKER_ASSIGNED = 32506  # Twilio: no worker assigned to an autocreated conversation in time
INTERNAL = INTERNAL_FAILURE  # as the interpreter reports its own internal errors
_CONVERSATION_PARAM = re.compile(r"[;?&]ConversationSid=([A-Za-z0-9]+)")


def named_conversation(document_url: str | None, request_uri: str | None) -> str | None:
    """The ConversationSid a worker-initiated call names (Request-URI parameter, or document URL query)."""
    if request_uri:
        match = _CONVERSATION_PARAM.search(request_uri)
        if match:
            return match.group(1)
    if document_url:
        values = urllib.parse.parse_qs(urllib.parse.urlsplit(document_url).query).get("ConversationSid")
        if values and values[0]:
            return values[0]
    return None


@dataclass(frozen=True)
class ConnectResult:
    """How a `<Connect><Conversation>` session ended, as its action URL is told."""

    result: Result
    worker_initiated: bool
    conversation_sid: str | None = None
    dial: DialResult | None = None
    ended: bool = False  # the session ended the call itself (refused it): no more TwiML runs

    def params(self) -> tuple[tuple[str, str], ...]:
        out = [("Result", self.result), ("WorkerInitiated", "true" if self.worker_initiated else "false")]
        if self.conversation_sid:
            out.append(("ConversationSid", self.conversation_sid))
        if self.dial is not None:
            out.append(("DialCallStatus", self.dial.status))
            if self.dial.child_sid:
                out += [("DialCallSid", self.dial.child_sid), ("DialCallDuration", str(self.dial.duration))]
            out += self.dial.recording  # RecordingUrl, RecordingSid, RecordingDuration: only with `record`
        return tuple(out)


class ConversationDial(DialSession):
    """A `DialSession` whose legs report to the `<Conversation>` session's statusCallback."""

    def __init__(self, live: LiveCall, dial: verbs.Dial, document_url: str | None,
                 session: ConversationSession) -> None:
        super().__init__(live, dial, document_url)
        self.session = session

    @property
    def recording_sid(self) -> str | None:
        """The SID of the session's recording while it records (`record`)."""
        return self.state.recording

    def placed(self, child: Call) -> None:
        super().placed(child)
        # The dialect follows the leg to its end, not to the dial's: a leg cancelled because the caller hung up
        # still reports call-completed; a leg that failed before it could start reports it at once.
        self.calls.events.emit(ConversationLegPlaced(self.session, snapshot(child)))


def _broke(call: Call) -> bool:
    """The call ended because of a local failure (its media worker died), not because someone hung up."""
    return call.status is CallStatus.FAILED and call.end_reason == EndReason.ERROR


class ConnectSession:
    """One run of `<Connect><Conversation>` on a call; `result` is set even when `run` is cancelled."""

    def __init__(self, live: LiveCall, verb: verbs.Connect, noun: verbs.Conversation, document_url: str | None,
                 conversations: Conversations | None) -> None:
        self.live = live
        self.verb = verb
        self.noun = noun
        self.document_url = document_url
        self.conversations = conversations
        self.calls = live.engine.calls
        self.result: ConnectResult | None = None
        named = named_conversation(document_url, live.call.sip_uri if live.call.direction is Direction.INBOUND
                                   else None)
        self.named = named
        self.worker_initiated = named is not None
        self.conversation_sid: str | None = None
        self._dial: ConversationDial | None = None
        callback = self.noun.status_callback
        # statusCallbackEvent's words are the core's callback events with `call-` in front.
        self.callback = CallbackTarget(
            resolve(document_url, callback), self.noun.status_callback_method,
            frozenset(CallbackEvent(e.removeprefix("call-")) for e in self.noun.status_callback_event),
        ) if callback else None
        self._waiting = False  # waiting for routing to assign a worker

    @property
    def parent(self) -> Call:
        return self.live.call

    def _done(self, result: Result, dial: DialResult | None = None, ended: bool = False) -> ConnectResult:
        if _broke(self.parent):
            result = "internal-error"  # the call itself broke (its media worker died): not the app's doing
        self.result = ConnectResult(result, self.worker_initiated, self.conversation_sid, dial, ended)
        log.info("%s: <Conversation> %s (%s)", self.parent.sid, result,
                 ", ".join(f"{k}={v}" for k, v in self.result.params()[1:]))
        return self.result

    async def run(self) -> ConnectResult:
        try:
            if self.conversations is None:
                raise RuntimeError("no Conversations services are wired into the voice engine")
            if self.named is not None:
                return await self._outbound(self.conversations, self.named)
            return await self._inbound(self.conversations)
        except asyncio.CancelledError:
            self._interrupted()
            await self._settle_recording()
            raise
        except Exception as exc:  # never leave the call hanging on a bug: report, clean up, go on
            log.exception("%s: <Connect><Conversation> failed", self.parent.sid)
            self.live.notify(INTERNAL, f"<Connect><Conversation> failed: {exc!r}")
            self._abandon()
            return self._done("internal-error", self._dial.result if self._dial is not None else None)

    # -- inbound ------------------------------------------------------------------------------------
    async def _inbound(self, conversations: Conversations) -> ConnectResult:
        caller, called = self.parent.from_, self.parent.to
        service = conversations.get_service(self.noun.service_instance_sid)
        conversation = None if service is None else conversations.find_for_customer(service.sid, caller, called)
        if conversation is None:
            if not self.noun.inbound_autocreation:
                log.info("%s: no conversation between %s and %s, and autocreation is off: refused",
                         self.parent.sid, caller, called)
                await self._refuse()
                return self._done("no-existing-conversation", ended=True)
            if service is None:
                self.live.notify(INTERNAL, f"<Conversation>: cannot create a conversation in service "
                                           f"{self.noun.service_instance_sid}: no such service", warning=True)
                return self._done("failed-create-conversation")
            try:
                conversation, customer = conversations.autocreate(service, caller, called)
            except RequestError as exc:
                self.live.notify(INTERNAL, f"<Conversation>: creating the conversation failed: {exc.message}",
                                 warning=True)
                return self._done("failed-create-conversation")
            self.conversation_sid = conversation.sid
            conversations.route(service, conversation, customer, self.parent.sid)
            incomplete = NO_WORKER_ASSIGNED
        else:
            assert service is not None
            self.conversation_sid = conversation.sid
            incomplete = INCOMPLETE_CONVERSATION
            known = conversations.customer(conversation.sid)
            if not conversations.workers(conversation.sid) and known is not None:
                conversations.route(service, conversation, known, self.parent.sid)
        self._waiting = True
        workers = await conversations.wait_for_worker(conversation.sid, self.noun.routing_assignment_timeout)
        self._waiting = False
        if not workers:
            self.live.notify(incomplete, f"<Conversation>: no worker assigned to {conversation.sid} within "
                                         f"{self.noun.routing_assignment_timeout} s", warning=True)
            return self._done("no-other-participants")
        uris = list(dict.fromkeys(u for w in workers if (u := conversations.worker_uri(service, w))))
        if not uris:
            self.live.notify(INTERNAL, f"<Conversation>: no SIP URI for the workers {[w.identity for w in workers]} "
                                       f"of {conversation.sid}: give the participant attributes "
                                       '{"sip_uri": ...} or map the identity in the config file')
            return self._done("internal-error")
        nouns = tuple(verbs.Sip(uri=u, url=self.noun.url, method=self.noun.method) for u in uris)
        return await self._connect(nouns, self.noun.inbound_timeout, caller_id=None)

    async def _refuse(self) -> None:
        if self.live.answered:
            self.live.hangup()
        else:
            await self.live.reject(REJECT_CODE)

    # -- outbound (worker-initiated) ------------------------------------------------------------------
    async def _outbound(self, conversations: Conversations, named: str) -> ConnectResult:
        service = conversations.get_service(self.noun.service_instance_sid)
        conversation = None if service is None else conversations.find_conversation(service.sid, named)
        customer = None if conversation is None else conversations.customer(conversation.sid)
        if conversation is None or customer is None or customer.address is None:
            log.info("%s: worker-initiated call names %s: %s", self.parent.sid, named,
                     "no such conversation" if conversation is None else "it has no customer")
            return self._done("invalid-conversation")
        self.conversation_sid = conversation.sid
        address = customer.address
        noun: verbs.Number | verbs.Sip
        if address.lower().startswith(("sip:", "sips:")):
            noun = verbs.Sip(uri=address, url=self.noun.url, method=self.noun.method)
        else:
            noun = verbs.Number(number=address, url=self.noun.url, method=self.noun.method)
        return await self._connect((noun,), OUTBOUND_TIMEOUT, caller_id=self._caller_id(customer.proxy_address))

    def _caller_id(self, proxy_address: str | None) -> str:
        """The customer sees the conversation's number: its proxy address, else the number the call is about."""
        if proxy_address and is_customer_address(proxy_address):
            return proxy_address
        return self.parent.to if self.parent.direction is Direction.INBOUND else self.parent.from_

    # -- the dial -------------------------------------------------------------------------------------
    async def _connect(self, nouns: tuple[verbs.Number | verbs.Sip, ...], timeout: int,
                       caller_id: str | None) -> ConnectResult:
        noun = self.noun
        dial = verbs.Dial(timeout=max(1, min(timeout, MAX_RING)), caller_id=caller_id, record=noun.record,
                          trim=noun.trim, recording_status_callback=noun.recording_status_callback,
                          recording_status_callback_method=noun.recording_status_callback_method,
                          recording_status_callback_event=noun.recording_status_callback_event, nouns=nouns)
        session = ConversationSession(uuid.uuid4().hex, self.parent.sid, self.calls.account_sid,
                                      self.conversation_sid or "", self.worker_initiated, self.callback)
        self._dial = ConversationDial(self.live, dial, self.document_url, session)
        result = await self._dial.run()
        return self._from_dial(result)

    def _leg(self, sid: str | None) -> Call | None:
        if self._dial is None or sid is None:
            return None
        return next((c for c in self._dial.children if c.sid == sid), None)

    def _from_dial(self, result: DialResult) -> ConnectResult:
        if result.status != "completed":
            return self._done("dialed-call-incomplete", result)
        leg = self._leg(result.child_sid)
        if leg is not None and _broke(leg):
            return self._done("internal-error", result)  # connected, then the leg broke
        return self._done("session-success", result)

    # -- endings --------------------------------------------------------------------------------------
    def _interrupted(self) -> None:
        """Cancelled (the caller hung up, the call failed, a REST redirect): say how far the session got."""
        if self._dial is not None and self._dial.result is not None:
            self._from_dial(self._dial.result)
        elif self._dial is not None:
            self._done("dialed-call-incomplete", DialResult("canceled"))
        elif self._waiting:
            self._done("no-other-participants")
        else:
            self._done("internal-error")

    async def _settle_recording(self) -> None:
        """Interrupted while recording (the customer hung up): wait, a little, for the recording to be final so
        that the action still gets RecordingUrl, RecordingSid and RecordingDuration."""
        dial = self._dial
        result = self.result
        if dial is None or dial.recording_sid is None or result is None or result.dial is None:
            return
        recordings = self.live.engine.recordings
        try:
            # shielded: giving up waiting must not cancel the recording's finalization
            done = await asyncio.wait_for(asyncio.shield(recordings.stop(dial.recording_sid)), RECORDING_SETTLE)
        except (TimeoutError, asyncio.CancelledError, RequestError) as exc:
            log.info("%s: recording %s not final for the action: %r", self.parent.sid, dial.recording_sid, exc)
            return
        if str(done.status) == "completed":
            recording = (("RecordingUrl", recordings.media_url(done)), ("RecordingSid", done.sid),
                         ("RecordingDuration", str(done.duration or 0)))
            self.result = dataclasses.replace(result, dial=dataclasses.replace(result.dial, recording=recording))

    def _abandon(self) -> None:
        """After an unexpected error: no leg of this session may ring or talk on."""
        if self._dial is None:
            return
        with contextlib.suppress(MediaError):
            self.calls.media.unbridge(self.parent.sid)
        for child in self._dial.children:
            if not child.terminal:
                self.calls.cancel(child)


class Connect(Task[verbs.Connect]):
    """`<Connect action method><Stream .../></Connect>`: a bidirectional Media Stream until it ends
    (`switch.verbs.stream.connect_stream`), then `action` or the next verb.

    `<Connect action method><Conversation .../></Connect>`: hand the call to a Conversations session
    (`ConnectSession`); then request `action` with Result, WorkerInitiated, DialCallStatus, DialCallSid,
    DialCallDuration and (with `record`) RecordingUrl, RecordingSid, RecordingDuration, and run its TwiML -- or,
    without `action`, go on with the next verb.  When the session is interrupted (caller hung up, REST redirect)
    or ends the call itself (refused it), the action is still told, and its answer ignored."""

    verb = verbs.Connect

    async def run(self, call: LiveCall) -> Outcome:
        if isinstance(self.v.noun, verbs.Stream):
            return await connect_stream(call, self.v, self.v.noun, self.document_url)
        action = resolve(self.document_url, self.v.action) if self.v.action else None
        session = ConnectSession(call, self.v, self.v.noun, self.document_url, call.engine.conversations)
        result = await run_session(call, session, action, self.v.method)
        if result.ended or call.call.terminal:  # nothing can run on the call any more
            if action is not None:
                call.post_detached(action, self.v.method, result.params())
            return STOP
        if action is None:
            return CONTINUE
        return Outcome(next_url=action, method=self.v.method, extra=result.params())
