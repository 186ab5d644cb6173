"""`<Enqueue>`: wait in a call queue (`switch.core.queues`) until an agent, a REST update or `<Leave>` takes the
call out."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from switch.core.errors import INTERNAL_FAILURE, RequestError
from switch.core.queues import Handoff, Queues, Waiter
from switch.session.voice import LiveCall
from switch.verbs.base import Task, ensure_answered
from switch.verbs.wait_loop import run_wait_url
from twiml import verbs
from twiml.control import CONTINUE, STOP, Outcome
from twiml.fetch import resolve
from twiml.verbs_callcenter import Enqueue as EnqueueVerb, Leave

log = logging.getLogger("switch.verbs.enqueue")

SYSTEM_ERROR = INTERNAL_FAILURE
# What a waitUrl document may hold (Twilio): the rest is skipped with a warning.
WAIT_VERBS = frozenset({verbs.Play, verbs.Say, verbs.Pause, verbs.Gather, verbs.Redirect, verbs.Hangup, Leave})
# What the `<Dial><Queue url>` document the dequeued caller hears may hold.
ANNOUNCE_VERBS = frozenset({verbs.Play, verbs.Say, verbs.Pause, verbs.Redirect})


class Enqueue(Task[EnqueueVerb]):
    """`<Enqueue action method waitUrl waitUrlMethod>name</Enqueue>`: put the call at the back of the queue
    `name` (made on first use, max_size 1000) and run `waitUrl` in a loop while it waits (the default hold music
    without one), with QueuePosition, QueueSid, QueueTime, AvgQueueTime, CurrentQueueSize and MaxQueueSize.

    The wait ends when an agent's `<Dial><Queue>` takes the call (it first hears the Queue noun's url TwiML,
    then talks to the agent), when a REST update of the member redirects it, when the wait document says
    `<Leave>` or `<Hangup>`, or when the caller hangs up.  Then `action` is requested with QueueResult (bridged,
    queue-full, redirected, leave, hangup, error, system-error), QueueSid and QueueTime (the last two only when
    the call was queued): at once for leave, redirect and hang-up, after the bridge ends for bridged.  Without
    `action` the call goes on with the next verb.  A redirected or hung-up call's action answer is ignored.
    """

    verb = EnqueueVerb

    async def run(self, call: LiveCall) -> Outcome:
        await ensure_answered(call)
        action = resolve(self.document_url, self.v.action) if self.v.action else None
        queues = call.engine.queues
        if queues is None:
            call.notify(SYSTEM_ERROR, "<Enqueue>: this switch has no call queues")
            return self._then(action, (("QueueResult", "system-error"),))
        try:
            queue, waiter = queues.join(self.v.name, call.sid)
        except RequestError as exc:
            call.notify(SYSTEM_ERROR, f"<Enqueue> could not use queue {self.v.name!r}: {exc.message}")
            return self._then(action, (("QueueResult", "system-error"),))
        if waiter is None:
            log.info("%s: queue %s is full (%d)", call.sid, queue.sid, queue.max_size)
            return self._then(action, (("QueueResult", "queue-full"),))
        return await _Wait(call, queues, waiter, self.v, self.document_url, action).run()

    def _then(self, action: str | None, params: tuple[tuple[str, str], ...]) -> Outcome:
        if action is None:
            return CONTINUE
        return Outcome(next_url=action, method=self.v.method, extra=params)


class _Wait:
    """One call's stay in a queue, from joining to the action."""

    def __init__(self, call: LiveCall, queues: Queues, waiter: Waiter, verb: EnqueueVerb, document_url: str | None,
                 action: str | None) -> None:
        self.call = call
        self.queues = queues
        self.waiter = waiter
        self.verb = verb
        self.document_url = document_url
        self.action = action
        self.handoff: Handoff | None = None

    def _told(self, result: str) -> tuple[tuple[str, str], ...]:
        return (("QueueResult", result), ("QueueSid", self.waiter.queue_sid),
                ("QueueTime", str(self.queues.wait_time(self.waiter))))

    def wait_params(self) -> list[tuple[str, str]]:
        """The waitUrl's parameters, as they are now."""
        queue = self.queues.queue(self.waiter.queue_sid)
        return [("QueuePosition", str(self.queues.position(self.waiter))), ("QueueSid", queue.sid),
                ("QueueTime", str(self.queues.wait_time(self.waiter))),
                ("AvgQueueTime", str(queue.average_wait_time)), ("CurrentQueueSize", str(queue.current_size)),
                ("MaxQueueSize", str(queue.max_size))]

    def _then(self, result: str) -> Outcome:
        if self.action is None:
            return CONTINUE
        return Outcome(next_url=self.action, method=self.verb.method, extra=self._told(result))

    def _detached(self, result: str) -> None:
        if self.action is not None:
            self.call.post_detached(self.action, self.verb.method, self._told(result))

    async def run(self) -> Outcome:
        waiting = asyncio.create_task(run_wait_url(
            self.call, self.verb.wait_url, self.verb.wait_url_method, self.wait_params, self.document_url,
            WAIT_VERBS))
        try:
            pending: set[asyncio.Future[object]] = {waiting, self.waiter.taken}  # type: ignore[arg-type]
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if not self.waiter.taken.done():
                return self._left(waiting.result())
            await _stop(waiting)
            self.handoff = self.waiter.taken.result()
            if self.handoff.redirected:  # the REST update redirects the call at once: its TwiML runs next
                self._detached("redirected")
                return CONTINUE
            return await self._bridged(self.handoff)
        except asyncio.CancelledError:
            self._interrupted()
            raise
        except Exception:
            log.exception("%s: <Enqueue> failed", self.call.sid)
            self.queues.remove(self.waiter)
            self.call.notify(SYSTEM_ERROR, "<Enqueue> failed while the call waited")
            return self._then("system-error")
        finally:
            waiting.cancel()
            handoff = self.handoff
            if handoff is not None and not handoff.ready.done():
                handoff.ready.set_result(False)

    def _left(self, how: str) -> Outcome:
        """The wait document ended the wait: `<Leave>` goes on, `<Hangup>` hangs up."""
        self.queues.remove(self.waiter)
        if how == "hangup":
            self._detached("hangup")
            self.call.hangup()
            return STOP
        return self._then("leave")

    async def _bridged(self, handoff: Handoff) -> Outcome:
        """An agent took the call: hear the Queue noun's url TwiML, then stay while the agent's side bridges."""
        if handoff.url:
            params = [("QueueSid", self.waiter.queue_sid), ("QueueTime", str(self.queues.wait_time(self.waiter))),
                      ("DequeingCallSid", handoff.agent_sid or "")]
            how = await run_wait_url(self.call, handoff.url, handoff.method, lambda: params, None, ANNOUNCE_VERBS,
                                     loop=False)
            if how == "hangup":  # not allowed in that document, so not reached
                self.call.hangup()
                return STOP
        handoff.ready.set_result(True)
        await handoff.ended.wait()
        return self._then("bridged")

    def _interrupted(self) -> None:
        """Cancelled: the caller hung up or the call was redirected; the action is told, its answer ignored."""
        in_queue = self.queues.remove(self.waiter)
        handoff = self.handoff
        if handoff is None and self.waiter.taken.done() and not self.waiter.taken.cancelled():
            handoff = self.handoff = self.waiter.taken.result()
        if handoff is not None and handoff.redirected:
            self._detached("redirected")
        elif handoff is not None and handoff.ready.done() and handoff.ready.result():
            self._detached("bridged")  # the caller hung up while bridged: the bridge is over
        elif self.call.call.terminal or (in_queue and not self.call.answered):
            self._detached("hangup")
        elif handoff is not None:
            self._detached("hangup")  # hung up while hearing the announcement
        else:
            self._detached("redirected")  # a REST redirect of the call itself (not of the member)


async def _stop(task: asyncio.Task[str]) -> None:
    """Cancel the wait music and wait until it stopped (its player with it)."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
