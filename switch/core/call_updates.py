"""Around `CallManager`: how a REST update changes a live call (Twilio's `POST /Calls/{Sid}`), and who waits for a
call's status changes (`StatusWatchers`)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from collections.abc import Callable

from switch.core.model import Call
from switch.core.service import CallUpdate
from switch.core.status import CallStatus, EndReason, status_for_sip_code
from switch.core.store import Store

log = logging.getLogger("switch.core.calls")
Listener = Callable[[Call], None]


class StatusWatchers:
    """Listeners of calls' status changes, by CallSid: the verbs wait on them (a <Dial> child answering...)."""

    def __init__(self) -> None:
        self._listeners: dict[str, list[Listener]] = {}

    def watch(self, sid: str, listener: Listener) -> Callable[[], None]:
        """Call `listener(call)` after every status change of `sid`; returns the function that stops it."""
        self._listeners.setdefault(sid, []).append(listener)

        def unwatch() -> None:
            listeners = self._listeners.get(sid, [])
            if listener in listeners:
                listeners.remove(listener)
            if not listeners:
                self._listeners.pop(sid, None)

        return unwatch

    def notify(self, call: Call) -> None:
        """`call` changed status: tell its listeners (a failing one is logged); a terminal status is the last."""
        for listener in list(self._listeners.get(call.sid, ())):
            try:
                listener(call)
            except Exception:
                log.exception("%s: status listener failed", call.sid)
        if call.terminal:
            self._listeners.pop(call.sid, None)

    async def wait_until(self, call: Call, reached: Callable[[Call], bool], timeout: float | None) -> bool:
        """Wait until `reached(call)` holds, now or after one of its status changes; False after `timeout` s."""
        if reached(call):
            return True
        done = asyncio.Event()
        unwatch = self.watch(call.sid, lambda c: done.set() if reached(c) else None)
        try:
            await asyncio.wait_for(done.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            unwatch()


HangUp = Callable[[Call, EndReason, int], None]


def apply_update(call: Call, update: CallUpdate, hang_up: HangUp, redirected: Listener | None, store: Store,
                 now: dt.datetime) -> Call:
    """Apply `update` to the live `call`: new status callback, a hang-up (`completed`; `canceled` only while not
    answered) or a redirect to new TwiML (then `redirected(call)`); returns the call as the response shows it."""
    call.status_callback = update.status_callback or call.status_callback
    call.status_callback_method = update.status_callback_method or call.status_callback_method
    answered = call.status is CallStatus.IN_PROGRESS
    # Twilio: canceled "will not affect calls already in progress"; the rest of the update applies.
    status = None if update.status is CallStatus.CANCELED and answered else update.status
    if status is not None and answered:
        hang_up(call, EndReason.HANGUP, 200)
    elif status is not None:
        hang_up(call, EndReason.CANCELED, 487)
    elif update.url is not None or update.twiml is not None:
        call.url, call.twiml = update.url, update.twiml
        for name in ("method", "fallback_url", "fallback_method"):  # given: replaced; absent: kept
            if (value := getattr(update, name)) is not None:
                setattr(call, name, value)
        store.add_event(call.sid, "twiml", f"redirect to {update.url or 'inline TwiML'}")
        if redirected is not None:
            redirected(call)
    if not call.terminal:
        call.date_updated = now
        store.save_call(call)
    shown = dataclasses.replace(call)
    if status is not None and not call.terminal and call.end_reason is not None:
        shown.status = status_for_sip_code(0, call.answer_time is not None, EndReason(call.end_reason))
    return shown
