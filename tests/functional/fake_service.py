"""An in-memory `CallService` for REST tests: it stores `Call`s and never touches SIP.

It follows the `switch.core.service.CallService` docstrings (create returns `queued`, list is newest first,
update/delete raise the core's neutral `NotFound` / `CallNotLive` / `InvalidState`), records every request it
was given, and lets a test move a call along the state machine with `advance` to see what the REST edge renders
for it.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field

from switch.core.errors import CallNotLive, InvalidState, NotFound, Problem
from switch.core.model import Call, Direction, new_sid, utcnow
from switch.core.paging import Cursor, PageKey, select_page
from switch.core.service import CallFilter, CallUpdate, NewCall
from switch.core.status import CallStatus, check_transition


def _within(moment: dt.datetime | None, after: dt.datetime | None, before: dt.datetime | None) -> bool:
    """Whether `moment` lies in [after, before) (a missing moment passes no bound)."""
    if after is None and before is None:
        return True
    if moment is None:
        return False
    return (after is None or moment >= after) and (before is None or moment < before)


def matches(call: Call, flt: CallFilter) -> bool:
    """Whether `call` passes every filter of `flt`."""
    return (
        (flt.to is None or call.to == flt.to)
        and (flt.from_ is None or call.from_ == flt.from_)
        and (flt.status is None or call.status is flt.status)
        and (flt.parent_call_sid is None or call.parent_call_sid == flt.parent_call_sid)
        and _within(call.start_time, flt.start_time_after, flt.start_time_before)
        and _within(call.end_time, flt.end_time_after, flt.end_time_before)
    )


@dataclass
class FakeCallService:
    """A REST-only `CallService`: calls live in a dict, in creation order."""

    account_sid: str = field(default_factory=lambda: new_sid("AC"))
    auth_token: str = field(default_factory=lambda: secrets.token_hex(16))
    calls: dict[str, Call] = field(default_factory=dict)
    created: list[NewCall] = field(default_factory=list)
    updates: list[tuple[str, CallUpdate]] = field(default_factory=list)

    async def create_call(self, request: NewCall) -> Call:
        """Store a new outbound-api call in status `queued`."""
        self.created.append(request)
        call = Call(
            sid=new_sid("CA"),
            account_sid=self.account_sid,
            to=request.to,
            from_=request.from_,
            direction=Direction.OUTBOUND_API,
            status=CallStatus.QUEUED,
            url=request.url,
            method=request.method,
            fallback_url=request.fallback_url,
            fallback_method=request.fallback_method,
            twiml=request.twiml,
            status_callback=request.status_callback,
            status_callback_method=request.status_callback_method,
            status_callback_events=request.status_callback_events,
            timeout=request.timeout,
            time_limit=request.time_limit,
            send_digits=request.send_digits,
            sip_auth_username=request.sip_auth_username,
            sip_auth_password=request.sip_auth_password,
            caller_id=request.caller_id,
        )
        return self.add(call)

    def add(self, call: Call) -> Call:
        """Store `call` as the newest one (for inbound calls and `<Dial>` children in tests)."""
        self.calls[call.sid] = call
        return call

    def get_call(self, sid: str) -> Call | None:
        """The call with `sid`, or None."""
        return self.calls.get(sid)

    def list_calls(self, flt: CallFilter, offset: int, limit: int, cursor: Cursor | None = None) -> list[Call]:
        """Newest first by (date_created, sid), as the store lists them; a cursor replaces the offset."""
        found = [c for c in self.calls.values() if matches(c, flt)]
        return select_page(found, lambda c: PageKey(c.date_created, c.sid), True, cursor, offset, limit)

    def advance(self, sid: str, status: CallStatus, at: dt.datetime | None = None) -> Call:
        """Move a call to `status` as the engine would, stamping start/answer/end times at `at`."""
        call = self.calls[sid]
        check_transition(sid, call.status, status)
        now = at or utcnow()
        if status is not CallStatus.QUEUED and call.start_time is None:
            call.start_time = now
        if status is CallStatus.IN_PROGRESS:
            call.answer_time = now
        if status.terminal:
            call.end_time = now
            answered = call.answer_time
            call.duration = int((now - answered).total_seconds()) if answered else 0
        call.status = status
        call.date_updated = now
        return call

    async def update_call(self, sid: str, update: CallUpdate) -> Call:
        """Redirect, hang up or cancel, with Twilio's rules for which status accepts what."""
        call = self.calls.get(sid)
        if call is None:
            raise NotFound(sid)
        if call.terminal:
            raise CallNotLive("Call is not in-progress. Cannot redirect.")
        self.updates.append((sid, update))
        if update.url is not None or update.twiml is not None:
            call.url, call.twiml = update.url, update.twiml
        call.method = update.method or call.method
        call.fallback_url = update.fallback_url or call.fallback_url
        call.fallback_method = update.fallback_method or call.fallback_method
        call.status_callback = update.status_callback or call.status_callback
        call.status_callback_method = update.status_callback_method or call.status_callback_method
        answered = call.status is CallStatus.IN_PROGRESS
        if update.status is CallStatus.COMPLETED:
            self.advance(sid, CallStatus.COMPLETED if answered else CallStatus.CANCELED)
        elif update.status is CallStatus.CANCELED and not answered:
            # Twilio: `canceled` ends queued or ringing calls and leaves answered ones alone.
            self.advance(sid, CallStatus.CANCELED)
        call.date_updated = utcnow()
        return call

    def delete_call(self, sid: str) -> None:
        """Forget an ended call; a live one cannot be deleted."""
        call = self.calls.get(sid)
        if call is None:
            raise NotFound(sid)
        if not call.terminal:
            raise InvalidState("Cannot delete a call that has not ended", Problem.NOT_COMPLETE)
        del self.calls[sid]
