"""Call queues (Twilio's Queue and Member resources, `<Enqueue>` and `<Dial><Queue>`).

Queues are records in the store (`switch.core.sip_domain_table.RecordTable`, table `queues`), made by REST or by
the first `<Enqueue>` of an unknown name (max_size 1000, Twilio's default).  Their members are live calls, so they
are kept in memory only, oldest first: a member's position counts from 1 at the front, its wait time from when it
joined, and a queue's `current_size` and `average_wait_time` (the mean wait of the calls in it now, as Twilio
computes it when the queue is read) are filled in at every read.

A member leaves the queue in one of four ways, each settling its `Waiter.taken` future at most once:

- an agent's `<Dial><Queue>` takes the front member (`take`): `taken` gets a `Handoff` the two calls' tasks use to
  meet (the caller runs the Queue noun's url, says it is `ready`; the agent bridges; `ended` when the bridge ends);
- a REST update of the member with a Url (`dequeue`): `taken` gets a `Handoff` with `redirected`, then the call is
  redirected to the new TwiML (its `<Enqueue>` action is told QueueResult=redirected);
- `<Leave>` in the wait document, or the caller hanging up: the `<Enqueue>` task calls `remove`.

Agents waiting on an empty queue (`take` with a timeout) are woken by the next `join`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from switch.core.conference_model import DEFAULT_MAX_QUEUE, MAX_QUEUE, Member, Queue
from switch.core.errors import Conflict, InvalidArgument, NotFound
from switch.core.model import Call, new_sid, utcnow
from switch.core.service import CallUpdate
from switch.core.sip_domain_table import RecordTable
from switch.core.store import Store

log = logging.getLogger("switch.core.queues")

MAX_NAME = 64  # Twilio: a queue's friendly name is at most 64 characters
FRONT = "Front"  # the member key that means "the call at the front of the queue"


def _loop_time() -> float:
    """The running event loop's clock (the verbs' timers use it too), else the monotonic clock."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


class CallUpdater(Protocol):
    """The part of the call manager a REST dequeue needs: redirecting a live call to new TwiML."""

    async def update_call(self, sid: str, update: CallUpdate) -> Call: ...


@dataclass(eq=False)
class Handoff:
    """How a member left the queue for someone else: an agent's `<Dial><Queue>` (`agent_sid` set) or a REST
    redirect (`redirected`).  `url`/`method` are the Queue noun's TwiML for the caller before the bridge (or the
    REST update's new TwiML)."""

    agent_sid: str | None
    url: str | None = None
    method: str = "POST"
    redirected: bool = False
    # The caller's side: True once it ran `url` and waits to be bridged, False when it could not (it hung up).
    ready: asyncio.Future[bool] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # the agent's side: the bridge is over


@dataclass(eq=False)
class Waiter:
    """A call in a queue: `taken` is settled when someone else takes it out of the queue (`Handoff`)."""

    call_sid: str
    queue_sid: str
    date_enqueued: dt.datetime
    started: float  # the manager's clock
    taken: asyncio.Future[Handoff] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    left_at: float | None = None  # when it left the queue (the wait time stops there)


class Queues:
    """Implements `switch.core.conference_model.QueueService`, and the queue side of `<Enqueue>`/`<Dial><Queue>`.

    Use it from the control plane's event loop.  `calls` redirects a member's call (REST dequeue with Url); None
    in tests that never do.  `clock` times waits (seconds; the event loop's by default); `now` dates records.
    """

    def __init__(self, store: Store, account_sid: str, calls: CallUpdater | None = None,
                 clock: Callable[[], float] | None = None, now: Callable[[], dt.datetime] = utcnow) -> None:
        self._account_sid = account_sid
        self._table = RecordTable(store, "queues", Queue, account_sid)
        self._calls = calls
        self._clock = clock or _loop_time
        self._now = now
        self._members: dict[str, list[Waiter]] = {}  # queue sid -> waiters, oldest first
        self._arrivals: dict[str, asyncio.Event] = {}  # queue sid -> set when someone joins (wakes agents)

    # -- reads ------------------------------------------------------------------------------------------------
    def _shown(self, queue: Queue) -> Queue:
        members = self._members.get(queue.sid, [])
        waits = [self.wait_time(w) for w in members]
        average = round(sum(waits) / len(waits)) if waits else 0
        return dataclasses.replace(queue, current_size=len(members), average_wait_time=average)

    def _record(self, sid: str) -> Queue:
        queue = self._table.get(sid)
        if queue is None:
            raise NotFound(f"/Queues/{sid}")
        return queue

    def list_queues(self) -> list[Queue]:
        """Every queue of the account, oldest first."""
        return [self._shown(q) for q in sorted(self._table.values(), key=lambda q: (q.date_created, q.sid))]

    def queue(self, sid: str) -> Queue:
        return self._shown(self._record(sid))

    def queue_named(self, name: str) -> Queue | None:
        """The queue called `name` (exactly), or None."""
        found = self._table.where(lambda q: q.friendly_name == name)
        return self._shown(found[0]) if found else None

    def wait_time(self, waiter: Waiter) -> int:
        """Whole seconds `waiter` has waited (until it left the queue, when it did)."""
        end = waiter.left_at if waiter.left_at is not None else self._clock()
        return max(0, int(end - waiter.started))

    def position(self, waiter: Waiter) -> int:
        """1 at the front; 0 once it left the queue."""
        members = self._members.get(waiter.queue_sid, [])
        return members.index(waiter) + 1 if waiter in members else 0

    def list_members(self, sid: str) -> list[Member]:
        self._record(sid)
        return [self._member(w, i + 1) for i, w in enumerate(self._members.get(sid, []))]

    def member(self, sid: str, key: str) -> Member:
        waiter = self._waiter(sid, key)
        return self._member(waiter, self.position(waiter))

    def _member(self, waiter: Waiter, position: int) -> Member:
        return Member(waiter.call_sid, waiter.queue_sid, waiter.date_enqueued, position, self.wait_time(waiter))

    def _waiter(self, sid: str, key: str) -> Waiter:
        self._record(sid)
        members = self._members.get(sid, [])
        if key == FRONT:
            if not members:
                raise NotFound(f"/Queues/{sid}/Members/{key}")
            return members[0]
        for waiter in members:
            if waiter.call_sid == key:
                return waiter
        raise NotFound(f"/Queues/{sid}/Members/{key}")

    # -- writes -----------------------------------------------------------------------------------------------
    @staticmethod
    def _check_size(max_size: int) -> int:
        if not 1 <= max_size <= MAX_QUEUE:
            raise InvalidArgument(f"MaxSize must be between 1 and {MAX_QUEUE}")
        return max_size

    def _check_name(self, name: str, sid: str | None = None) -> str:
        name = name.strip()
        if not name:
            raise InvalidArgument("FriendlyName is required")
        if len(name) > MAX_NAME:
            raise InvalidArgument(f"FriendlyName must be at most {MAX_NAME} characters")
        if self._table.where(lambda q: q.friendly_name == name and q.sid != sid):
            raise Conflict(f"A queue named {name!r} already exists")
        return name

    def create_queue(self, friendly_name: str, max_size: int | None = None) -> Queue:
        name = self._check_name(friendly_name)
        size = self._check_size(DEFAULT_MAX_QUEUE if max_size is None else max_size)
        now = self._now()
        made = self._table.insert(Queue(new_sid("QU"), self._account_sid, name, size, now, now))
        log.info("queue %s (%s) created, max size %d", made.sid, name, size)
        return self._shown(made)

    def update_queue(self, sid: str, friendly_name: str | None = None, max_size: int | None = None) -> Queue:
        queue = self._record(sid)
        name = queue.friendly_name if friendly_name is None else self._check_name(friendly_name, sid)
        size = queue.max_size if max_size is None else self._check_size(max_size)
        return self._shown(self._table.replace(
            dataclasses.replace(queue, friendly_name=name, max_size=size, date_updated=self._now())))

    def delete_queue(self, sid: str) -> None:
        self._record(sid)
        if self._members.get(sid):
            raise Conflict("Cannot delete a queue with calls in it")
        self._table.delete([sid])
        self._members.pop(sid, None)
        arrival = self._arrivals.pop(sid, None)
        if arrival is not None:  # agents waiting on it (`take`) give up now, not at their Dial's timeout
            arrival.set()

    # -- members: <Enqueue> -----------------------------------------------------------------------------------
    def join(self, name: str, call_sid: str) -> tuple[Queue, Waiter | None]:
        """`<Enqueue>`: put `call_sid` at the back of the queue `name` (made when unknown); no waiter when the
        queue is full.  The queue is returned as it is after the call joined."""
        queue = self.queue_named(name.strip()) or self.create_queue(name)
        members = self._members.setdefault(queue.sid, [])
        if len(members) >= queue.max_size:
            return queue, None
        waiter = Waiter(call_sid, queue.sid, self._now(), self._clock())
        members.append(waiter)
        arrival = self._arrivals.pop(queue.sid, None)
        if arrival is not None:
            arrival.set()
        return self._shown(self._record(queue.sid)), waiter

    def remove(self, waiter: Waiter) -> bool:
        """Take `waiter` out of its queue (`<Leave>`, a hang-up, a take); False when it was not there."""
        members = self._members.get(waiter.queue_sid, [])
        if waiter not in members:
            return False
        members.remove(waiter)
        waiter.left_at = self._clock()
        return True

    # -- members: <Dial><Queue> and REST ----------------------------------------------------------------------
    async def take(self, sid: str, timeout: float) -> Waiter | None:
        """`<Dial><Queue>`: the front member, out of the queue; when the queue is empty, the next to join within
        `timeout` seconds (Twilio's Dial waits up to its timeout), else None.  NotFound for an unknown queue."""
        self._record(sid)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            members = self._members.get(sid, [])
            for waiter in members:
                if not waiter.taken.done():
                    self.remove(waiter)
                    return waiter
            remaining = deadline - loop.time()
            if remaining <= 0 or sid not in {q.sid for q in self._table.values()}:
                return None
            arrival = self._arrivals.setdefault(sid, asyncio.Event())
            try:
                await asyncio.wait_for(arrival.wait(), remaining)
            except TimeoutError:
                return None

    async def dequeue(self, sid: str, key: str, url: str, method: str) -> Member:
        """REST: take the member out of the queue and run `url`'s TwiML on its call; its `<Enqueue>` action is
        told QueueResult=redirected.  Returns the member as it was."""
        waiter = self._waiter(sid, key)
        shown = self._member(waiter, self.position(waiter))
        if self._calls is None:
            raise Conflict("This switch cannot redirect queued calls")
        # The redirect first: a call it refuses (ended meanwhile) stays as it was, and the member with it.  The
        # redirect cancels the call's <Enqueue> at its next turn, which reads the handoff set below.
        await self._calls.update_call(waiter.call_sid, CallUpdate(url=url, method=method.upper()))
        self.remove(waiter)
        if not waiter.taken.done():
            waiter.taken.set_result(Handoff(None, url, method.upper(), redirected=True))
        return shown
