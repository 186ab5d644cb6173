"""The call engine of the control plane: REST requests and worker events in, status changes out.

Every status change goes through `_set_status` (switch.core.call_core), the only place that changes
`Call.status`.  It checks the transition table (so a call gets exactly one terminal status), writes the call and
the event to the store, and emits one `CallStatusChanged` on `CallManager.events` (switch.core.events): the
dialects render it (Twilio's status callbacks, Exotel's, `<Conversation>`'s).  Worker events arrive on the
event loop from `WorkerPool`; REST requests arrive from the dialect edges through the `CallService` methods.
Ring timeouts and time limits are loop timers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import msgspec

from switch.core.call_core import CallCore
from switch.core.call_updates import apply_update
from switch.core.errors import (
    INTERNAL_FAILURE,
    CallNotLive,
    CapacityError,
    InvalidState,
    NotFound,
    Problem,
    Unavailable,
)
from switch.core.logs import CALL_SID_RE, call_context
from switch.core.model import Call, Direction, new_sid
from switch.core.paging import Cursor
from switch.core.routing import Route, from_uri, route, user_part
from switch.core.service import CallFilter, CallUpdate, NewCall
from switch.core.sip_calls import client_identity, inbound_app, inbound_call
from switch.core.status import CallStatus, EndReason, status_for_provisional
from switch.workers.pool import NoCapacity
from switch.workers.protocol import (
    Answer,
    Answered,
    AnswerFailed,
    Command,
    Dial,
    DialFailed,
    DtmfFailed,
    DtmfReceived,
    Ended,
    Event,
    Hangup,
    HangupFailed,
    HoldChanged,
    Incoming,
    InviteSent,
    LegEvent,
    Log,
    MediaReady,
    MediaResult,
    PortFailed,
    Progress,
    ReferReceived,
    ReferRefused,
    Ring,
    RingFailed,
    SendDtmf,
)

log = logging.getLogger("switch.core.calls")

# pjsua plays each RFC 2833 digit for 160 ms and leaves a gap before the next: about a quarter second.
DTMF_DIGIT_SECONDS = 0.25
WORKER_LOST = INTERNAL_FAILURE  # the notification of a call lost with its media worker


class CallManager(CallCore):
    """Implements `switch.core.service.CallService` over a worker pool, a store and a webhook dispatcher."""

    # -- CallService ----------------------------------------------------------------------------
    async def create_call(self, request: NewCall) -> Call:
        if self.draining:
            raise Unavailable("The switch is shutting down and takes no new calls; try again later")
        target = await self.route_client(request.to) or route(request.to, self.config.trunks,
                                                              request.sip_auth_username, request.sip_auth_password)
        fields = {f.name: getattr(request, f.name) for f in dataclasses.fields(request)}
        call = self._place(target, Direction.OUTBOUND_API, None, fields)
        return dataclasses.replace(call)

    async def route_client(self, to: str) -> Route | None:
        """The Route of a `client:` destination (switch.core.sip_calls), None for any other."""
        return None if client_identity(to) is None else await self.clients.route(to, self.account_sid)

    def create_child(self, parent: Call, request: NewCall, target: Route | None = None) -> Call:
        """A `<Dial>` leg: direction outbound-dial, on the parent's worker (bridging needs one bridge); `target`
        when the caller routed it already (`route_client`)."""
        target = target or route(request.to, self.config.trunks, request.sip_auth_username, request.sip_auth_password)
        fields = {f.name: getattr(request, f.name) for f in dataclasses.fields(request)}
        return self._place(target, Direction.OUTBOUND_DIAL, parent, fields)

    def _place(self, target: Route, direction: Direction, parent: Call | None, fields: dict[str, Any]) -> Call:
        """Reserve a slot, record the call as queued, and send the INVITE."""
        assert self.pool is not None
        sid = new_sid("CA")
        try:
            worker = self.pool.reserve(sid, parent.worker if parent is not None else None)
        except NoCapacity as exc:  # before anything is recorded
            raise CapacityError(str(exc)) from exc
        call = Call(sid=sid, account_sid=self.account_sid, direction=direction, status=CallStatus.QUEUED,
                    date_created=self.clock(), date_updated=self.clock(), sip_uri=target.uri, worker=worker,
                    parent_call_sid=parent.sid if parent is not None else None, **fields)
        self.live[sid] = call
        self.webhooks.fresh(sid)
        self._bind_leg(sid, call)
        handle = self.pool.workers[worker]
        command = Dial(leg=sid, uri=target.uri,
                       from_uri=from_uri(call.from_, call.caller_id, handle.sip_host, handle.sip_port),
                       auth=(target.auth[0], target.auth[1]) if target.auth else None)
        # The INVITE goes first, the row while it is on its way: the worker's answer is read on a later turn.
        sent = self.pool.send(worker, command)
        self.store.save_call(call)
        self.store.add_event(sid, "status", "queued", None)
        self._created(call)
        if not sent:
            self._finish(call, None, EndReason.ERROR, "media worker unavailable")
        else:  # on the next turn: whoever placed the call sees it queued first (the REST answer says so)
            asyncio.get_running_loop().call_soon(self._dialing, call)
        return call

    def _dialing(self, call: Call) -> None:
        """The worker has the call's Dial: it is `initiated` (Twilio: "starts dialing"), and its ring timer runs.
        Not at the worker's `InviteSent`, a loop turn and a SIP transaction later: the `initiated` callback leaves
        while the INVITE does, so a quick 180 does not wait behind it (callback latency)."""
        if call.status is CallStatus.QUEUED and call.end_reason is None:
            call.start_time = self.clock()
            self._set_status(call, CallStatus.INITIATED)
            self._start_timer(call, call.timeout, lambda: self._hang_up(call, EndReason.RING_TIMEOUT, 487))

    def watch(self, sid: str, listener: Callable[[Call], None]) -> Callable[[], None]:
        """Call `listener(call)` after every status change of `sid`; returns the function that stops it."""
        return self.watchers.watch(sid, listener)

    async def wait_until(self, call: Call, reached: Callable[[Call], bool], timeout: float | None) -> bool:
        """Wait until `reached(call)` holds, now or after one of its status changes; False after `timeout` s."""
        return await self.watchers.wait_until(call, reached, timeout)

    def cancel(self, call: Call) -> None:
        """End a leg the switch no longer wants: CANCEL while ringing (canceled), BYE once answered."""
        if call.answer_time is not None:
            self._hang_up(call, EndReason.HANGUP)
        else:
            self._hang_up(call, EndReason.CANCELED, 487)

    def get_call(self, sid: str) -> Call | None:
        live = self.live.get(sid)
        if live is not None:
            return dataclasses.replace(live)
        call = self.store.get_call(sid)
        return call if call is not None and call.account_sid == self.account_sid else None

    def list_calls(self, flt: CallFilter, offset: int, limit: int, cursor: Cursor | None = None) -> list[Call]:
        return self.store.list_calls(self.account_sid, flt, offset, limit, cursor)

    async def update_call(self, sid: str, update: CallUpdate) -> Call:
        """Twilio's rules: `canceled` ends a queued or ringing call and leaves an answered one alone (no error);
        `completed` ends it either way.  The call returned shows the status the hang-up leads to (the far end's
        answer to it arrives later), as Twilio's response to the update does."""
        call = self.live.get(sid)
        if call is None:
            if self.get_call(sid) is None:
                raise NotFound(f"/Calls/{sid}")
            raise CallNotLive("Call is not in-progress. Cannot redirect or modify.")
        return apply_update(call, update, self._hang_up, self.redirect_hook, self.store, self.clock())

    def delete_call(self, sid: str) -> None:
        if sid in self.live:
            raise InvalidState("Cannot delete this resource before it is complete: hang the call up first",
                               Problem.NOT_COMPLETE)
        if self.get_call(sid) is None:
            raise NotFound(f"/Calls/{sid}")
        self.store.delete_call(sid)

    # -- worker events ------------------------------------------------------------------------
    def on_worker_event(self, worker: int, event: Event) -> None:
        """A worker's event, handled with its leg's CallSid on the log lines (and tasks) it leads to."""
        found = self.legs.by_id(event.leg) if isinstance(event, LegEvent) else None
        with call_context(None if found is None else found.call.sid):
            log.debug("worker %d: %s %s", worker, type(event).__name__, getattr(event, "leg", ""))
            self._on_worker_event(worker, event)

    def _on_worker_event(self, worker: int, event: Event) -> None:
        if isinstance(event, Incoming):
            self._incoming(worker, event)
            return
        if isinstance(event, MediaResult):
            self.media.on_event(None, event)  # plays, recordings, bridges: by their id
            return
        if not isinstance(event, LegEvent):
            if isinstance(event, Log):
                log.log(logging.WARNING if event.level == "warning" else logging.INFO, "worker %d: %s", worker,
                        event.message)
            else:
                log.warning("worker %d: unexpected %s", worker, type(event).__name__)
            return
        found = self.legs.by_id(event.leg)
        call = None if found is None else self.live.get(found.call.sid)
        if call is None or found is None:
            if not isinstance(event, DtmfReceived):
                log.info("worker %d: %s for unknown leg %s", worker, type(event).__name__, event.leg)
            return
        if isinstance(event, MediaReady | DtmfReceived | ReferReceived | ReferRefused):
            self.media.on_event(call.sid, event)
            return
        if isinstance(event, HoldChanged):
            found.held = event.held
            self.store.add_event(call.sid, "sip", "held by the far end" if event.held else "taken off hold")
            return
        try:
            self._call_event(call, event)
        except Exception:
            log.exception("%s: handling worker event %s failed", call.sid, type(event).__name__)
            self._hang_up(call, EndReason.ERROR, 500)

    def _call_event(self, call: Call, event: LegEvent) -> None:
        match event:
            case InviteSent():
                call.sip_call_id = event.call_id
                self.store.add_event(call.sid, "sip", "INVITE sent", None)
                self._dialing(call)  # a no-op when `_place`'s turn came first, as it does with a real worker
            case Progress():
                code = event.code
                self.store.add_event(call.sid, "sip", f"{code} {event.reason}", code)
                status = status_for_provisional(code)
                if status is not None and call.status in (CallStatus.QUEUED, CallStatus.INITIATED):
                    self._set_status(call, status, code, "early media" if event.sdp else "")
            case Answered():
                self.store.add_event(call.sid, "sip", "200 OK", 200)
                if call.end_reason is not None:
                    return  # our CANCEL crossed the 200; the worker is sending BYE
                self._set_status(call, CallStatus.IN_PROGRESS, 200)
                self._start_timer(call, call.time_limit, lambda: self._hang_up(call, EndReason.HANGUP))
                if call.send_digits:
                    self._spawn(call, self._send_digits(call, call.send_digits))
                for hook in self.answered_hooks:
                    if (work := hook(call)) is not None:
                        self._spawn(call, work)
            case Ended():
                self.store.add_event(call.sid, "sip", f"ended {event.code} {event.reason}", event.code)
                if event.rtp is not None:  # saved with the terminal status, in the same row write
                    call.media_quality = msgspec.structs.asdict(event.rtp)
                self._finish(call, event.code, EndReason.REMOTE)
            case DialFailed():
                self._finish(call, event.code, EndReason.ERROR, f"dial failed: {event.reason}")
            case PortFailed():
                self._finish(call, None, EndReason.ERROR, f"browser leg failed: {event.error}")
            case AnswerFailed():
                # The caller will never be answered: end the leg (its Ended finishes the call).
                self._command_failed(call, "answer", event.error)
                self._hang_up(call, EndReason.ERROR, 500)
            case RingFailed():
                self._command_failed(call, "180 Ringing", event.error)
            case HangupFailed():
                self._command_failed(call, f"hangup ({event.code})", event.error)
            case DtmfFailed():
                self._command_failed(call, f"DTMF {event.digits!r}", event.error)
            case _:
                log.info("%s: worker event %s ignored", call.sid, type(event).__name__)

    async def _send_digits(self, call: Call, digits: str) -> None:
        """SendDigits: RFC 2833 digits; each `w` is a half-second pause after the digits before it end."""
        assert self.pool is not None
        chunk = ""
        for char in digits + "w":
            if char not in "wW":
                chunk += char
                continue
            if chunk and not call.terminal and call.worker is not None:
                self.pool.send(call.worker, SendDtmf(leg=self._leg_of(call), digits=chunk))
            await asyncio.sleep(len(chunk) * DTMF_DIGIT_SECONDS + 0.5)
            chunk = ""

    def _incoming(self, worker: int, event: Incoming) -> None:
        assert self.pool is not None
        leg = event.leg
        dialed = user_part(event.request_uri or event.to_uri)
        # a softphone's call into a SIP domain runs the domain's app, From/To as SIP URIs; others the number's
        number, sip = inbound_app(event, self.edge_headers, self.lookup_domain, self.lookup_number)
        if self.draining:  # the edge already sends new calls nowhere; one that slipped through gets 503 too
            log.info("worker %d: INVITE for %r from %s while draining: 503", worker, dialed, event.from_uri)
            self.pool.send(worker, Hangup(leg=leg, code=503))
            return
        if number is None:
            log.warning("worker %d: INVITE for unknown number %r from %s: 404", worker, dialed, event.from_uri)
            self.pool.send(worker, Hangup(leg=leg, code=404))
            return
        self.pool.adopt(leg, worker)
        now = self.clock()
        # the worker names an inbound leg like a CallSid: the call takes it, so the worker's log lines name the call
        sid = leg if CALL_SID_RE.match(leg) and leg not in self.live else new_sid("CA")
        self.webhooks.fresh(sid)  # a worker's leg name is as random as ours: nothing was sent about it
        call = inbound_call(sid, event, number, sip, self.account_sid, worker, now)
        self.start_inbound(call, leg, Ring(leg=leg), f"INVITE received from {event.from_uri}")

    def start_inbound(self, call: Call, leg: str, first: Command, note: str) -> None:
        """Take a ringing inbound `call` whose leg `leg` is on `call.worker`: record it, send the worker `first`
        (`Ring` for an INVITE, `PortOpen` for a browser's call) and run its app (`inbound_hook`)."""
        assert self.pool is not None and call.worker is not None
        self.live[call.sid] = call
        self._bind_leg(leg, call)
        self.store.save_call(call)
        self.store.add_event(call.sid, "sip", note, None)
        self.store.add_event(call.sid, "status", "ringing", None)
        self._created(call)
        self.pool.send(call.worker, first)
        if self.inbound_hook is None or not self.inbound_hook(call):
            self.answer(call)  # no app for the number: answer and hold until the caller hangs up

    # -- call control for the TwiML engine ----------------------------------------------------
    def answer(self, call: Call) -> None:
        """200 OK on an inbound call; its `answered` event moves it to in-progress."""
        leg = self.legs.get(call.sid)
        if leg is not None and not call.terminal:
            leg.answer_sent = True
            self._send(leg.worker, Answer(leg=leg.id))

    def answered(self, call: Call) -> bool:
        """Answered by the switch (200 sent) or by the far end."""
        leg = self.legs.get(call.sid)
        return call.answer_time is not None if leg is None else leg.answered

    def reject(self, call: Call, code: int) -> None:
        """A final response (486, 603, ...) to an unanswered inbound call."""
        if call.worker is not None and not call.terminal:
            self.store.add_event(call.sid, "sip", f"rejected with {code}", code)
            self._send(call.worker, Hangup(leg=self._leg_of(call), code=code))

    def hangup(self, call: Call) -> None:
        self._hang_up(call, EndReason.HANGUP)

    async def send_digits(self, call: Call, digits: str) -> None:
        await self._send_digits(call, digits)

    def on_worker_lost(self, worker: int, why: str = "") -> None:
        """A worker died (`why`: how its process ended): every call it held ends `failed`, with a notification
        that says so; records and callbacks are kept.  The pool ends the calls' SIP dialogs (BYE, CANCEL, or 503
        to a caller not answered yet: switch.workers.reaper)."""
        self.media.worker_lost(worker)
        how = f" ({why})" if why else ""
        for call in [c for c in self.live.values() if c.worker == worker]:
            self.store.add_event(call.sid, "error", f"media worker {worker} exited{how}")
            ending = ("BYE" if call.answer_time is not None or self.answered(call)
                      else "CANCEL" if call.direction is not Direction.INBOUND else "503 Service Unavailable")
            self.notifications.add(call.sid, WORKER_LOST, f"The media worker that carried this call stopped"
                                   f"{': ' + why if why else ''}. The call failed; its far end was sent {ending}.")
            self._finish(call, None, EndReason.ERROR, f"media worker {worker} exited during the call{how}")

    # -- start-up and shutdown ----------------------------------------------------------------
    def recover(self) -> int:
        """Close calls a previous run left live (it crashed): `failed`, with their callbacks."""
        count = 0
        for call in self.store.live_calls():
            if call.account_sid != self.account_sid:
                continue
            self.store.add_event(call.sid, "error", "switch restarted while the call was live")
            self._finish(call, None, EndReason.ERROR, "the switch stopped while the call was live")
            count += 1
        return count

    async def shutdown(self, timeout: float = 3.0) -> None:
        """Hang up every live call and wait for their ends; whatever remains is closed as failed."""
        waits = []
        for call in list(self.live.values()):
            self._ended.setdefault(call.sid, asyncio.Event())
            waits.append(self._ended[call.sid].wait())
            self._hang_up(call, EndReason.HANGUP if call.answer_time else EndReason.ERROR, 503)
        if waits:
            await asyncio.wait([asyncio.ensure_future(w) for w in waits], timeout=timeout)
        for call in list(self.live.values()):
            self._finish(call, None, EndReason.ERROR, "switch shut down")

    def stats(self) -> dict[str, Any]:
        return {"live_calls": len(self.live)}
