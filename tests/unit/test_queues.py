"""Call queues on a real store (`switch.core.queues.Queues`): FIFO members and their positions, wait times and the
average Twilio computes at read, max size, the `Front` key, delete refused while callers wait, an agent's take
(waiting on an empty queue), a REST dequeue redirecting the member's call, and a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from switch.core.conference_model import DEFAULT_MAX_QUEUE
from switch.core.errors import CallNotLive, Conflict, InvalidArgument, NotFound
from switch.core.model import Call
from switch.core.queues import FRONT, Queues
from switch.core.service import CallUpdate
from switch.core.store import Store

ACCOUNT = "AC" + "a" * 32


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Redirects:
    """Records the call updates a REST dequeue makes; the calls in `ended` refuse them, as the engine does."""

    def __init__(self) -> None:
        self.updates: list[tuple[str, CallUpdate]] = []
        self.ended: set[str] = set()

    async def update_call(self, sid: str, update: CallUpdate) -> Call:
        if sid in self.ended:
            raise CallNotLive("Call is not in-progress. Cannot redirect or modify.")
        self.updates.append((sid, update))
        return None  # type: ignore[return-value]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "db.sqlite")


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_enqueue_makes_the_queue_and_keeps_fifo_positions(store: Store, clock: Clock) -> None:
    async def go() -> None:
        queues = Queues(store, ACCOUNT, clock=clock)
        queue, first = queues.join("support", "CA1")
        assert first is not None and queue.friendly_name == "support" and queue.sid.startswith("QU")
        assert queue.max_size == DEFAULT_MAX_QUEUE and queue.current_size == 1
        _, second = queues.join(" support ", "CA2")
        _, third = queues.join("support", "CA3")
        assert second is not None and third is not None
        assert [queues.position(w) for w in (first, second, third)] == [1, 2, 3]
        assert [m.call_sid for m in queues.list_members(queue.sid)] == ["CA1", "CA2", "CA3"]
        assert [m.position for m in queues.list_members(queue.sid)] == [1, 2, 3]
        assert queues.remove(second) and not queues.remove(second)
        assert [queues.position(w) for w in (first, second, third)] == [1, 0, 2]
        assert [q.friendly_name for q in queues.list_queues()] == ["support"]
        assert queues.queue(queue.sid).current_size == 2

    asyncio.run(go())


def test_wait_times_and_the_average_over_current_members(store: Store, clock: Clock) -> None:
    async def go() -> None:
        queues = Queues(store, ACCOUNT, clock=clock)
        queue, a = queues.join("sales", "CA1")
        assert a is not None and queues.queue(queue.sid).average_wait_time == 0
        clock.t += 10
        _, b = queues.join("sales", "CA2")
        assert b is not None
        clock.t += 4
        assert (queues.wait_time(a), queues.wait_time(b)) == (14, 4)
        assert queues.queue(queue.sid).average_wait_time == 9
        assert queues.member(queue.sid, "CA2").wait_time == 4
        queues.remove(a)  # gone members no longer count, and their own wait time stops
        clock.t += 6
        assert queues.wait_time(a) == 14
        assert queues.queue(queue.sid).average_wait_time == 10
        queues.remove(b)
        assert queues.queue(queue.sid).average_wait_time == 0

    asyncio.run(go())


def test_max_size_refuses_the_next_caller(store: Store, clock: Clock) -> None:
    async def go() -> None:
        queues = Queues(store, ACCOUNT, clock=clock)
        made = queues.create_queue("tiny", max_size=1)
        _, first = queues.join("tiny", "CA1")
        queue, refused = queues.join("tiny", "CA2")
        assert first is not None and refused is None and queue.sid == made.sid and queue.current_size == 1
        queues.update_queue(made.sid, max_size=2)
        assert queues.join("tiny", "CA2")[1] is not None

    asyncio.run(go())


def test_front_and_unknown_members(store: Store, clock: Clock) -> None:
    async def go() -> None:
        queues = Queues(store, ACCOUNT, clock=clock)
        queue = queues.create_queue("q")
        with pytest.raises(NotFound):
            queues.member(queue.sid, FRONT)
        queues.join("q", "CA1")
        queues.join("q", "CA2")
        front = queues.member(queue.sid, FRONT)
        assert (front.call_sid, front.position, front.queue_sid) == ("CA1", 1, queue.sid)
        assert queues.member(queue.sid, "CA2").position == 2
        with pytest.raises(NotFound):
            queues.member(queue.sid, "CA9")
        with pytest.raises(NotFound):
            queues.list_members("QU" + "0" * 32)

    asyncio.run(go())


def test_validation_and_delete_refused_while_callers_wait(store: Store, clock: Clock) -> None:
    async def go() -> None:
        queues = Queues(store, ACCOUNT, clock=clock)
        queue = queues.create_queue("line")
        with pytest.raises(Conflict):
            queues.create_queue("line")
        for bad in (0, 5001):
            with pytest.raises(InvalidArgument):
                queues.create_queue("other", max_size=bad)
        with pytest.raises(InvalidArgument):
            queues.create_queue("x" * 65)
        renamed = queues.update_queue(queue.sid, friendly_name="renamed")
        assert renamed.friendly_name == "renamed" and queues.queue_named("line") is None
        _, waiter = queues.join("renamed", "CA1")
        assert waiter is not None
        with pytest.raises(Conflict):
            queues.delete_queue(queue.sid)
        queues.remove(waiter)
        queues.delete_queue(queue.sid)
        with pytest.raises(NotFound):
            queues.queue(queue.sid)

    asyncio.run(go())


def test_queues_outlive_a_restart_members_do_not(store: Store, clock: Clock, tmp_path: Path) -> None:
    async def go() -> None:
        queues = Queues(store, ACCOUNT, clock=clock)
        made = queues.create_queue("kept", max_size=7)
        queues.join("kept", "CA1")
        store.commit()  # as before any response shows them (the store's group commit)
        again = Queues(Store(tmp_path / "db.sqlite"), ACCOUNT, clock=clock)
        shown = again.queue(made.sid)
        assert (shown.friendly_name, shown.max_size, shown.current_size) == ("kept", 7, 0)
        assert Queues(store, "AC" + "b" * 32).list_queues() == []

    asyncio.run(go())


async def test_take_gives_the_front_and_waits_on_an_empty_queue(store: Store) -> None:
    queues = Queues(store, ACCOUNT)
    queue = queues.create_queue("agents")
    assert await queues.take(queue.sid, 0.05) is None  # nobody came within the timeout
    _, first = queues.join("agents", "CA1")
    _, second = queues.join("agents", "CA2")
    taken = await queues.take(queue.sid, 1.0)
    assert taken is first and queues.position(second) == 1  # type: ignore[arg-type]
    waiting = asyncio.create_task(queues.take(queue.sid, 5.0))
    await asyncio.sleep(0)
    assert (await waiting) is second
    later = asyncio.create_task(queues.take(queue.sid, 5.0))
    await asyncio.sleep(0.01)
    assert not later.done()
    _, third = queues.join("agents", "CA3")  # the waiting agent is woken by the next caller
    assert await asyncio.wait_for(later, 1.0) is third
    with pytest.raises(NotFound):
        await queues.take("QU" + "0" * 32, 0.01)


async def test_deleting_a_queue_releases_the_agents_waiting_on_it(store: Store) -> None:
    queues = Queues(store, ACCOUNT)
    queue = queues.create_queue("closing")
    waiting = asyncio.create_task(queues.take(queue.sid, 30.0))
    await asyncio.sleep(0.01)
    queues.delete_queue(queue.sid)
    assert await asyncio.wait_for(waiting, 1.0) is None  # at once, not at the Dial's timeout


async def test_dequeue_redirects_the_member(store: Store) -> None:
    redirects = Redirects()
    queues = Queues(store, ACCOUNT, redirects)
    queue = queues.create_queue("rest")
    _, first = queues.join("rest", "CA1")
    _, second = queues.join("rest", "CA2")
    assert first is not None and second is not None
    shown = await queues.dequeue(queue.sid, FRONT, "https://app.example/next", "get")
    assert (shown.call_sid, shown.position) == ("CA1", 1)
    handoff = first.taken.result()
    assert handoff.redirected and handoff.url == "https://app.example/next" and handoff.agent_sid is None
    assert [(sid, u.url, u.method) for sid, u in redirects.updates] == [("CA1", "https://app.example/next", "GET")]
    assert queues.position(second) == 1 and queues.queue(queue.sid).current_size == 1
    with pytest.raises(NotFound):
        await queues.dequeue(queue.sid, "CA1", "https://app.example/next", "POST")
    redirects.ended.add("CA2")  # its call ends while the request is on its way: the member is left as it was
    with pytest.raises(CallNotLive):
        await queues.dequeue(queue.sid, FRONT, "https://app.example/next", "POST")
    assert queues.position(second) == 1 and not second.taken.done()
    assert not Queues(store, ACCOUNT).remove(second)  # another manager never saw it
