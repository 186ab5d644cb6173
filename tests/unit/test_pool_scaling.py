"""The pool's side of scaling without processes: what `watch` listeners hear, which workers `reserve` may pick,
and the policy's decisions carried out (a scripted spawn stands in for the worker process)."""

from __future__ import annotations

import asyncio
import os
import shutil

import pytest

from switch.workers import pool as pool_module
from switch.workers.handle import WorkerHandle
from switch.workers.pool import NoCapacity, WorkerPool
from switch.workers.scaling import Phase, Scaling


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _noop(*_: object) -> None:
    return None


def _pool(scaling: Scaling | int, clock: Clock) -> tuple[WorkerPool, list[list[tuple[int, str, int]]]]:
    pool = WorkerPool(scaling, "127.0.0.1", 5060, _noop, _noop, clock=clock, rtp_ports=(20000, 20099))
    heard: list[list[tuple[int, str, int]]] = []
    pool.watch(lambda: heard.append([(w.index, w.phase.value, w.free) for w in pool.workers]))
    return pool, heard


def _up(worker: WorkerHandle, pool: WorkerPool, capacity: int = 4) -> None:
    """What a hello does to a handle."""
    worker.up, worker.starting, worker.capacity, worker.idle_since = True, False, capacity, pool._clock()
    pool._changed()


@pytest.fixture(autouse=True)
def _no_socket_dirs(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    made: list[str] = []
    real = WorkerPool.__init__

    def init(self: WorkerPool, *args: object, **kwargs: object) -> None:
        real(self, *args, **kwargs)  # type: ignore[arg-type]
        made.append(str(self._dir))

    monkeypatch.setattr(WorkerPool, "__init__", init)
    yield  # type: ignore[misc]
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


def test_listeners_hear_free_legs_reach_and_leave_zero_only() -> None:
    pool, heard = _pool(2, Clock())
    for worker in pool.workers:
        _up(worker, pool, capacity=2)
    heard.clear()
    assert [pool.reserve(f"l{i}", now=0.0) for i in range(3)] == [0, 1, 0]
    assert heard == [[(0, "up", 0), (1, "up", 1)]]  # worker 0 became full; the others changed no zero
    pool.release("l0", 0)
    pool.release("l0", 0)  # twice: nothing more
    pool.adopt("in1", 1)
    assert heard[1:] == [[(0, "up", 1), (1, "up", 1)], [(0, "up", 1), (1, "up", 0)]]


def test_reserve_never_picks_a_starting_or_retiring_worker() -> None:
    pool, _ = _pool(3, Clock())
    zero, one, two = pool.workers
    _up(zero, pool)
    one.starting = True  # spawned, no hello yet
    _up(two, pool)
    two.retiring = True
    assert (one.phase, two.phase, two.free) == (Phase.STARTING, Phase.RETIRING, 0)
    assert {pool.reserve(f"l{i}", now=0.0) for i in range(4)} == {0}
    with pytest.raises(NoCapacity, match="all 8 call slots on 2 of 3 workers are in use; retry later or start"):
        pool.reserve("l5", now=0.0)
    assert [s["state"] for s in pool.status()] == ["up", "starting", "retiring"]
    assert pool.healthy  # on the way in or out is healthy; a dead one is not
    one.starting, one.restarts = False, 1
    assert not pool.healthy


async def test_the_pool_grows_on_demand_and_retires_the_idle_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    pool, heard = _pool(Scaling(min=1, max=3, spare_calls=2, idle_timeout=30.0), clock)
    spawned: list[int] = []
    hold = asyncio.Event()

    async def spawn(worker: WorkerHandle) -> None:
        spawned.append(worker.index)
        worker.starting = True
        if worker.index:
            await hold.wait()
        _up(worker, pool)

    monkeypatch.setattr(pool, "_spawn", spawn)
    shutdowns: list[int] = []
    monkeypatch.setattr(pool, "send", lambda index, command: shutdowns.append(index) or True)
    monkeypatch.setattr(pool_module, "RETIRE_DRAIN", 0.0)
    await pool.start()
    assert [w.index for w in pool.workers] == [0] and pool.workers[0].rtp_ports == (20000, 20031)
    pool.reserve("a", now=0.0)
    pool.reserve("b", now=0.0)
    assert [w.index for w in pool.workers] == [0]  # 2 free: the margin holds
    pool.reserve("c", now=0.0)  # 1 free < 2: worker 1 starts
    await asyncio.sleep(0)
    assert spawned == [0, 1] and pool.workers[1].phase is Phase.STARTING
    assert pool.workers[1].rtp_ports == (20032, 20063) and pool.workers[1].sip_port == 5061
    pool.reserve("d", now=0.0)
    with pytest.raises(NoCapacity, match="another worker is starting: retry in a moment"):
        pool.reserve("e", now=0.0)
    assert spawned == [0, 1]  # its capacity is on the way: no third
    hold.set()
    await asyncio.sleep(0)
    assert pool.workers[1].free == 4 and pool.reserve("e", now=0.0) == 1
    assert heard[-1] == [(0, "up", 0), (1, "up", 4)]  # its hello; 4 -> 3 free is no news
    for leg in "abcd":
        pool.release(leg, 0)
    pool.release("e", 1)
    clock.now += 29.0
    pool.scaler.rescale()
    assert shutdowns == [] and pool.scaler._wake is not None  # the pool wakes itself at the deadline
    clock.now += 1.0
    pool.scaler.rescale()
    assert pool.workers[1].phase is Phase.RETIRING and pool.workers[1].free == 0
    assert heard[-1] == [(0, "up", 4), (1, "retiring", 0)]  # the edge stops sending it calls ...
    assert pool.reserve("f", now=0.0) == 0  # ... and the pool never picks it
    assert shutdowns == []
    await asyncio.sleep(0.01)
    assert shutdowns == [1]  # after RETIRE_DRAIN
    retiring = pool.workers[1]
    pool._retired(retiring, 0)  # its process exited
    assert [w.index for w in pool.workers] == [0] and retiring.gone.is_set()
    assert heard[-1] == [(0, "up", 3)]
    assert pool.scaler.status() == {"mode": "auto", "min": 1, "max": 3, "max_calls": 100, "spare_calls": 2,
                                    "idle_timeout": 30.0, "added": 1, "retired": 1}
    await pool.close()


async def test_max_auto_is_learnt_from_worker_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    pool, _ = _pool(Scaling(min=2, max_calls=10), Clock())
    assert [w.index for w in pool.workers] == [0] and pool.workers[0].rtp_ports == (20000, 20099)
    probes: list[tuple[int, tuple[int, int]]] = []

    async def spawn(worker: WorkerHandle) -> None:
        probes.append((worker.index, worker.rtp_ports))
        _up(worker, pool)

    monkeypatch.setattr(pool, "_spawn", spawn)

    def kill(worker: WorkerHandle, why: str, kill: bool = False) -> asyncio.Event:
        assert kill and why == "RTP ports sliced for the most workers"
        worker.retiring = True
        pool._retired(worker, -9)
        return worker.gone

    monkeypatch.setattr(pool, "_retire", kill)
    await pool.start()
    most = max(2, os.cpu_count() or 1, 3)  # 10 legs at 4 per worker: 3; or one per core
    assert pool.max_workers == most
    size = 100 // most // 2 * 2
    assert probes == [(0, (20000, 20099)), (0, (20000, 20000 + size - 1)), (1, (20000 + size, 20000 + 2 * size - 1))]
    assert [w.index for w in pool.workers] == [0, 1]
    await pool.close()


async def test_a_call_that_reaches_a_retiring_worker_keeps_it(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    pool, heard = _pool(Scaling(min=1, max=2, idle_timeout=5.0), clock)

    async def spawn(worker: WorkerHandle) -> None:
        _up(worker, pool)

    monkeypatch.setattr(pool, "_spawn", spawn)
    shutdowns: list[int] = []
    monkeypatch.setattr(pool, "send", lambda index, command: shutdowns.append(index) or True)
    monkeypatch.setattr(pool_module, "RETIRE_DRAIN", 0.0)
    await pool.start()
    for leg in "abc":
        pool.reserve(leg, now=0.0)
    await asyncio.sleep(0)
    for leg in "abc":
        pool.release(leg, 0)
    clock.now += 5.0
    pool.scaler.rescale()
    assert pool.workers[1].retiring
    pool.adopt("inbound", 1)  # an INVITE the edge sent before it heard
    await asyncio.sleep(0.01)
    assert shutdowns == [] and pool.workers[1].phase is Phase.UP and pool.workers[1].free == 3
    assert heard[-1] == [(0, "up", 4), (1, "up", 3)]
    await pool.close()
