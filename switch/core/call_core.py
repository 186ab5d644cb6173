"""The state of the control plane's calls and the one path that changes a call's status (`CallCore`).

`CallCore._set_status` is the only place that changes `Call.status`: it checks the transition table (so a call
gets exactly one terminal status), writes the call and the event to the store, and emits one
`CallStatusChanged` on `events`.  `CallManager` (switch.core.calls) builds the REST calls, the worker events and
the inbound calls on it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from switch.core.call_updates import StatusWatchers
from switch.core.config import Config, Number
from switch.core.events import CallEvents, CallStatusChanged, snapshot
from switch.core.legs import Leg, Legs
from switch.core.model import Call, utcnow
from switch.core.notifications import Notifications
from switch.core.sip_calls import ClientRouter
from switch.core.sip_domains import SipDomainRoute
from switch.core.status import CallStatus, EndReason, check_transition, status_for_sip_code
from switch.core.store import Store
from switch.core.tasks import TaskSet
from switch.core.webhooks import WebhookDispatcher
from switch.workers.media import CallMedia
from switch.workers.pool import WorkerPool
from switch.workers.protocol import Command, Hangup

log = logging.getLogger("switch.core.calls")

Clock = Callable[[], dt.datetime]
AnswerHook = Callable[[Call], Coroutine[Any, Any, None] | None]  # the work to run in a task, or None: nothing
EndHook = Callable[[Call], None]


class CallCore:
    """A call's status, legs and timers: the state `CallManager` keeps and the one path that changes a status."""

    def __init__(self, config: Config, account_sid: str, auth_token: str, store: Store,
                 webhooks: WebhookDispatcher, clock: Clock = utcnow, notifications: Notifications | None = None
                 ) -> None:
        self.config = config
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.store = store
        self.webhooks = webhooks
        self.clock = clock
        self.notifications = notifications or Notifications(store, account_sid)
        self.pool: WorkerPool | None = None
        self.live: dict[str, Call] = {}
        self.draining = False  # SIGTERM: no new calls (REST 503, inbound INVITE 503); live ones go on
        self.legs = Legs()  # one record per live leg: call, worker, leg id, answer, media, digits, timer
        self._ended: dict[str, asyncio.Event] = {}
        self._tasks = TaskSet()
        self.watchers = StatusWatchers()
        # Every status change (and recording change) as a typed event, for the dialects to render.
        self.events = CallEvents()
        # Extension points: the TwiML interpreter, recordings and dialects plug in here.
        self.answered_hooks: list[AnswerHook] = []
        self.ended_hooks: list[EndHook] = []
        self.created_hooks: list[EndHook] = []  # a leg was recorded (metrics count it); keep them cheap
        # An inbound call to a number: True when an app took it over (it will answer or reject).
        self.inbound_hook: Callable[[Call], bool] | None = None
        # A REST update brought new Url/Twiml for a live call.
        self.redirect_hook: Callable[[Call], None] | None = None
        self.media = CallMedia(self._send, self.legs)
        config_numbers = {n.number: n for n in config.numbers}
        # Which app answers a dialed number; the IncomingPhoneNumbers registry replaces this at start-up.
        self.lookup_number: Callable[[str], Number | None] = config_numbers.get
        # SIP domains and `client:` destinations (switch.core.sip_calls); edge headers believed only behind one
        self.lookup_domain: Callable[[str], SipDomainRoute | None] = lambda name: None
        self.clients = ClientRouter(list, None)  # no SIP domains until app.py gives it the directory and the edge
        self.edge_headers = config.edge.enabled

    def attach(self, pool: WorkerPool) -> None:
        self.pool = pool

    def _send(self, worker: int, command: Command) -> bool:
        return self.pool is not None and self.pool.send(worker, command)

    def send_worker(self, worker: int, command: Command) -> bool:
        """Send `command` to worker `worker` (a browser's `PortSignal`s, its tap's audio); False if it is gone."""
        return self._send(worker, command)

    # -- the one status path ------------------------------------------------------------------
    def _set_status(self, call: Call, status: CallStatus, sip_code: int | None = None,
                    detail: str = "") -> None:
        check_transition(call.sid, call.status, status)
        now = self.clock()
        previous = call.status
        call.status = status
        call.date_updated = now
        if sip_code is not None:
            call.sip_response_code = sip_code
        if status is CallStatus.IN_PROGRESS:
            call.answer_time = now
        if status.terminal:
            call.end_time = now
            if call.answer_time is not None:
                call.duration = max(0, round((now - call.answer_time).total_seconds()))
            else:
                call.duration = 0
            self.live.pop(call.sid, None)
        self.store.save_call(call)
        self.store.add_event(call.sid, "status", f"{status}{': ' + detail if detail else ''}", sip_code)
        # INFO for the end of a call only: a line per change was a quarter of this method's cost
        log.log(logging.INFO if status.terminal else logging.DEBUG, "%s %s -> %s%s", call.sid, call.direction,
                status, f" (SIP {sip_code})" if sip_code is not None else "")
        # Exactly one event per change; the dialects render it (Twilio's status callback, Exotel's, ...).
        self.events.emit(CallStatusChanged(snapshot(call), previous, now, sip_code, detail))
        self.watchers.notify(call)
        if status.terminal:
            ended = self._ended.pop(call.sid, None)
            if ended is not None:
                ended.set()

    def _finish(self, call: Call, code: int | None, reason: EndReason, detail: str = "") -> None:
        """End `call` with the terminal status `code` and `reason` imply, and free its slot."""
        if call.terminal:
            return
        if call.end_reason is None:
            call.end_reason = str(reason)
        effective = EndReason(call.end_reason) if reason is EndReason.REMOTE else reason
        status = status_for_sip_code(code or 0, call.answer_time is not None, effective)
        if status is CallStatus.FAILED and detail:
            call.error = detail
        leg = self.legs.remove(call.sid)
        if self.pool is not None and leg is not None:
            self.pool.release(leg.id, leg.worker)
        self._set_status(call, status, code, detail)
        for hook in self.ended_hooks:
            try:
                hook(call)
            except Exception:
                log.exception("%s: end hook failed", call.sid)

    def _leg_of(self, call: Call) -> str:
        leg = self.legs.get(call.sid)
        return call.sid if leg is None else leg.id

    def _bind_leg(self, leg_id: str, call: Call) -> None:
        assert call.worker is not None
        self.legs.add(Leg(call, leg_id, call.worker))

    def _start_timer(self, call: Call, seconds: float, action: Callable[[], None]) -> None:
        leg = self.legs.get(call.sid)
        if leg is not None:
            leg.set_timer(asyncio.get_running_loop().call_later(seconds, action))

    def _hang_up(self, call: Call, reason: EndReason, code: int = 200) -> None:
        """Ask the worker to end the leg (CANCEL before answer, BYE after); its `ended` event finishes it."""
        if call.terminal:
            return
        call.end_reason = str(reason)
        self.store.add_event(call.sid, "sip", f"hangup requested ({reason})", None)
        sent = (self.pool is not None and call.worker is not None
                and self.pool.send(call.worker, Hangup(leg=self._leg_of(call), code=code)))
        if not sent:
            self._finish(call, None, EndReason.ERROR, "media worker unavailable")

    def _created(self, call: Call) -> None:
        for hook in self.created_hooks:
            try:
                hook(call)
            except Exception:
                log.exception("%s: created hook failed", call.sid)

    def _command_failed(self, call: Call, what: str, error: str) -> None:
        log.warning("%s: %s failed in the worker: %s", call.sid, what, error)
        self.store.add_event(call.sid, "error", f"{what} failed: {error}")

    def _spawn(self, call: Call, coro: Coroutine[Any, Any, None]) -> None:
        """Run a per-call task; its failure is logged with the call SID and never lost silently."""
        self._tasks.spawn(coro, call.sid)
