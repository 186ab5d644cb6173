"""WorkerPool's slot accounting and call-start rate guard (no processes needed for the bookkeeping)."""

from __future__ import annotations

import pytest

from switch.core.errors import CapacityError
from switch.workers.pool import START_LIMIT, WorkerPool


def _pool(count: int) -> WorkerPool:
    pool = WorkerPool(count, "127.0.0.1", 5060, lambda i, m: None, lambda i: None)
    for worker in pool.workers:
        worker.up = True
        worker.capacity = 4
    return pool


def test_reserve_spreads_by_free_slots_and_refuses_when_full() -> None:
    pool = _pool(2)
    placed = [pool.reserve(f"leg{i}", now=0.0) for i in range(8)]
    assert sorted(placed) == [0, 0, 0, 0, 1, 1, 1, 1]
    assert placed[:2] == [0, 1]  # alternates while both have room
    with pytest.raises(CapacityError, match="all 8 call slots on 2 of 2 workers"):
        pool.reserve("leg9", now=0.0)
    pool.release("leg3", placed[3])
    assert pool.reserve("leg9", now=0.0) == placed[3]


def test_down_worker_gets_nothing() -> None:
    pool = _pool(2)
    pool.workers[0].up = False
    assert {pool.reserve(f"l{i}", now=0.0) for i in range(4)} == {1}
    with pytest.raises(CapacityError, match="4 call slots on 1 of 2 workers"):
        pool.reserve("x", now=0.0)


def test_start_rate_is_capped_per_worker() -> None:
    pool = _pool(1)
    for i in range(START_LIMIT):
        pool.reserve(f"l{i}", now=i * 0.01)
        pool.release(f"l{i}", 0)
    with pytest.raises(CapacityError, match="rate limit"):
        pool.reserve("over", now=0.5)
    assert pool.reserve("later", now=1.5) == 0  # the window slid on


def test_rate_limited_worker_is_skipped_for_another() -> None:
    pool = _pool(2)
    for i in range(START_LIMIT):
        pool.reserve(f"a{i}", 0, now=0.0)
        pool.release(f"a{i}", 0)
    assert pool.reserve("b", now=0.1) == 1
