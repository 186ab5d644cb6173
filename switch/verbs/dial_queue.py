"""`<Dial><Queue url method>name</Queue></Dial>`: an agent takes the oldest caller of a queue and talks to it.

The agent's side of the meeting `switch.core.queues` arranges: `Queues.take` hands over the front member (or the
next to join, up to the Dial's timeout: Twilio's Dial waits on an empty queue); the caller's `<Enqueue>` task
stops its wait music, runs the Queue noun's url TwiML (Play, Say, Pause, Redirect; with QueueSid, QueueTime and
DequeingCallSid) and says it is ready; this side then connects the two calls.  Calls on one media worker are
bridged there; calls on two workers meet in a two-member conference of the control-plane mixer
(`calls.media.conferences`).  The conversation ends when either side hangs up, at the Dial's timeLimit, or on `*`
from the agent with hangupOnStar; the caller then goes on with its `<Enqueue>` action (QueueResult=bridged).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from switch.core.errors import INTERNAL_FAILURE
from switch.core.model import Call
from switch.core.queues import Handoff, Waiter
from switch.session.voice import LiveCall
from switch.verbs.base import ensure_answered, run_session
from switch.workers.media import MediaError
from twiml import verbs
from twiml.control import CONTINUE, Outcome
from twiml.fetch import resolve
from twiml.verbs_callcenter import Queue

log = logging.getLogger("switch.verbs.dial_queue")

SYSTEM_ERROR = INTERNAL_FAILURE

Undo = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class QueueDialResult:
    """What the agent's Dial action is told: DialCallSid is the dequeued caller."""

    status: str  # completed, no-answer (nobody came within the timeout), failed (no such queue), canceled
    call_sid: str | None = None
    duration: int = 0
    queue_sid: str | None = None

    def params(self) -> tuple[tuple[str, str], ...]:
        out = [("DialCallStatus", self.status)]
        if self.call_sid:
            out += [("DialCallSid", self.call_sid), ("DialCallDuration", str(self.duration))]
        if self.queue_sid:
            out.append(("QueueSid", self.queue_sid))
        return tuple(out)


async def dial_queue(call: LiveCall, dial_verb: verbs.Dial, queue_noun: Queue, document_url: str | None) -> Outcome:
    """Run `<Dial>` with its one `<Queue>` noun on the agent's `call`; the Dial action is then requested with
    DialCallStatus, DialCallSid, DialCallDuration and QueueSid, or the agent goes on with the next verb."""
    action = resolve(document_url, dial_verb.action) if dial_verb.action else None
    session = QueueDial(call, dial_verb, queue_noun, document_url)
    result = await run_session(call, session, action, dial_verb.method)
    if action is None:
        return CONTINUE
    return Outcome(next_url=action, method=dial_verb.method, extra=result.params())


class QueueDial:
    """One agent's `<Dial><Queue>`: take a caller, connect, talk."""

    def __init__(self, live: LiveCall, dial: verbs.Dial, noun: Queue, document_url: str | None) -> None:
        self.live = live
        self.dial = dial
        self.noun = noun
        self.document_url = document_url
        self.result: QueueDialResult | None = None
        self._bridged_at: float | None = None

    async def run(self) -> QueueDialResult:
        await ensure_answered(self.live)
        queues = self.live.engine.queues
        name = self.noun.name.strip()
        queue = queues.queue_named(name) if queues is not None else None
        if queues is None or queue is None:
            self.live.notify(SYSTEM_ERROR, f"<Dial><Queue>: no queue named {name!r}", warning=True)
            self.result = QueueDialResult("failed")
            return self.result
        self.result = QueueDialResult("canceled", queue_sid=queue.sid)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.dial.timeout
        while True:
            waiter = await queues.take(queue.sid, max(0.0, deadline - loop.time()))
            if waiter is None:
                self.result = QueueDialResult("no-answer", queue_sid=queue.sid)
                return self.result
            handoff = Handoff(self.live.sid, resolve(self.document_url, self.noun.url) if self.noun.url else None,
                              self.noun.method)
            try:
                waiter.taken.set_result(handoff)
                caller = await self._ready(waiter, handoff)
                if caller is None:
                    continue  # the caller hung up before the bridge: the next one
                return await self._talk(caller, queue.sid)
            finally:
                handoff.ended.set()

    async def _ready(self, waiter: Waiter, handoff: Handoff) -> Call | None:
        """Wait while the caller hears the Queue noun's url; None when it is gone."""
        if not await handoff.ready:
            return None
        caller = self.live.engine.calls.live.get(waiter.call_sid)
        return None if caller is None or caller.terminal else caller

    async def _talk(self, caller: Call, queue_sid: str) -> QueueDialResult:
        calls = self.live.engine.calls
        loop = asyncio.get_running_loop()
        try:
            undo = await connect(self.live, caller.sid)
        except MediaError as exc:
            self.live.notify(SYSTEM_ERROR, f"<Dial><Queue> could not connect the caller {caller.sid}: {exc}")
            self.result = QueueDialResult("failed", caller.sid, 0, queue_sid)
            return self.result
        self._bridged_at = loop.time()
        self.result = QueueDialResult("completed", caller.sid, 0, queue_sid)
        waits: list[asyncio.Task[object]] = [
            asyncio.create_task(calls.wait_until(caller, lambda c: c.terminal, None))]
        if self.dial.hangup_on_star:
            waits.append(asyncio.create_task(self._star()))
        try:
            await asyncio.wait(waits, timeout=self.dial.time_limit, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
            self.result = QueueDialResult("completed", caller.sid, round(loop.time() - self._bridged_at), queue_sid)
            await asyncio.shield(undo())
        return self.result

    async def _star(self) -> object:
        digits = self.live.digits()
        while await digits.get() != "*":
            pass
        return None


async def connect(live: LiveCall, other_sid: str) -> Undo:
    """Connect `live`'s call with `other_sid`'s: a bridge on their worker when they share one, else both in a
    two-member conference of the control-plane mixer.  Returns what disconnects them."""
    calls = live.engine.calls
    mine, theirs = calls.legs.get(live.sid), calls.legs.get(other_sid)
    if mine is None or theirs is None or mine.gone or theirs.gone:
        raise MediaError("a call left before it could be connected")
    if mine.worker == theirs.worker:
        await calls.media.bridge(live.sid, other_sid)

        async def unbridge() -> None:
            with contextlib.suppress(MediaError):
                calls.media.unbridge(live.sid)

        return unbridge
    mixer = calls.media.conferences
    room = f"queue-{live.sid}"
    await mixer.join(room, live.sid)
    try:
        await mixer.join(room, other_sid)
    except MediaError:
        with contextlib.suppress(MediaError):
            await mixer.leave(room, live.sid)
        raise

    async def leave() -> None:
        for sid in (other_sid, live.sid):
            with contextlib.suppress(MediaError):
                await mixer.leave(room, sid)

    return leave
