"""The elastic pool's policy (`switch.workers.scaling.decide`): pure, fed with worker states and a clock."""

from __future__ import annotations

import itertools

import pytest

from switch.workers.scaling import Decision, Phase, Scaling, WorkerState, WorkerTable, decide, rtp_slices

UP, STARTING, RETIRING, DOWN = Phase.UP, Phase.STARTING, Phase.RETIRING, Phase.DOWN
AUTO = Scaling(min=1, max_calls=100, spare_calls=2, idle_timeout=60.0)


def w(index: int, phase: Phase = UP, legs: int = 0, idle_since: float = 0.0, capacity: int = 4) -> WorkerState:
    return WorkerState(index, phase, capacity, legs, idle_since)


def test_the_floor_starts_missing_workers_below_min_first() -> None:
    floor = Scaling(min=3)
    assert decide(floor, 8, [w(0)], now=0.0) == Decision(start=(1, 2))
    assert decide(floor, 8, [w(0), w(2, DOWN)], now=0.0) == Decision(start=(1,))  # a dead one is being replaced


def test_grows_one_worker_when_free_legs_fall_below_the_margin() -> None:
    assert decide(AUTO, 25, [w(0, legs=2)], now=0.0) == Decision()  # 2 free: enough
    assert decide(AUTO, 25, [w(0, legs=3)], now=0.0) == Decision(start=(1,))
    assert decide(AUTO, 25, [w(0, legs=4), w(1, legs=3)], now=0.0) == Decision(start=(2,))


def test_the_smallest_margin_grows_a_full_pool() -> None:
    one = Scaling(spare_calls=1)
    assert decide(one, 4, [w(0, legs=3)], now=0.0) == Decision()
    assert decide(one, 4, [w(0, legs=4)], now=0.0) == Decision(start=(1,))


def test_a_starting_or_restarting_worker_counts_as_capacity_on_the_way() -> None:
    assert decide(AUTO, 25, [w(0, legs=4), w(1, STARTING, capacity=0)], now=0.0) == Decision()
    assert decide(AUTO, 25, [w(0, legs=4), w(1, DOWN)], now=0.0) == Decision()
    # with a big margin, more than one may be on the way
    wide = Scaling(spare_calls=6)
    assert decide(wide, 25, [w(0, legs=4), w(1, STARTING, capacity=0)], now=0.0) == Decision(start=(2,))


def test_never_above_max_and_reuses_the_lowest_free_index() -> None:
    assert decide(AUTO, 2, [w(0, legs=4), w(1, legs=4)], now=0.0) == Decision()
    # worker 1 retired; 2 is busy: growth takes index 1 again (its SIP port base + 1 and RTP slice 1)
    assert decide(AUTO, 3, [w(0, legs=4), w(2, legs=4)], now=0.0) == Decision(start=(1,))
    # a retiring worker still holds its index until it is gone
    assert decide(AUTO, 2, [w(0, legs=4), w(1, RETIRING)], now=0.0) == Decision()


def test_an_idle_extra_retires_after_the_idle_timeout_and_wakes_the_pool_for_it() -> None:
    workers = [w(0), w(1, idle_since=10.0)]
    assert decide(AUTO, 25, workers, now=69.0) == Decision(wake_at=70.0)
    assert decide(AUTO, 25, workers, now=70.0) == Decision(retire=(1,))


def test_worker_zero_and_the_floor_never_retire() -> None:
    assert decide(AUTO, 25, [w(0, idle_since=0.0)], now=1e6) == Decision()
    floor = Scaling(min=2, idle_timeout=1.0)
    assert decide(floor, 25, [w(0), w(1), w(2, idle_since=5.0)], now=100.0) == Decision(retire=(2,))
    # worker 0 idle and an extra busy: the extra stays (busy), worker 0 stays (the floor)
    assert decide(AUTO, 25, [w(0), w(1, legs=1)], now=1e6) == Decision()


def test_retiring_keeps_the_margin_so_it_does_not_flap() -> None:
    # worker 0 full, worker 1 idle long enough: retiring it would leave 0 free legs (< 2): it stays, no timer
    assert decide(AUTO, 25, [w(0, legs=4), w(1, idle_since=0.0)], now=100.0) == Decision()
    # two idle extras: the highest goes first, as many as the margin allows
    many = [w(0, legs=3), w(1, idle_since=0.0), w(2, idle_since=0.0), w(3, idle_since=0.0)]
    assert decide(AUTO, 25, many, now=100.0) == Decision(retire=(3, 2))


def test_nothing_retires_while_a_worker_is_on_its_way() -> None:
    assert decide(AUTO, 25, [w(0, legs=1), w(1, idle_since=0.0), w(2, STARTING, capacity=0)], now=100.0) == Decision()


def test_a_fixed_pool_neither_grows_nor_retires() -> None:
    fixed = Scaling.fixed(2)
    assert fixed.is_fixed and str(fixed) == "2 workers"
    assert decide(fixed, 2, [w(0, legs=4), w(1, legs=4)], now=0.0) == Decision()
    assert decide(fixed, 2, [w(0), w(1, idle_since=0.0)], now=1e6) == Decision()


def test_max_auto_follows_the_engines_capacity() -> None:
    assert AUTO.resolve_max(capacity=4, cpus=2) == 25  # the PyPI wheel: enough for max_calls
    assert AUTO.resolve_max(capacity=1000, cpus=2) == 2  # a server build: one per core
    assert Scaling(min=3).resolve_max(capacity=1000, cpus=2) == 3
    assert Scaling(max=5).resolve_max(capacity=4, cpus=2) == 5
    assert str(AUTO) == "auto (min 1, max auto)" and not AUTO.is_fixed


@pytest.mark.parametrize(("settings", "message"), [
    ({"min": 0}, "min must be at least 1, not 0"),
    ({"min": 3, "max": 2}, r"max \(2\) must not be below min \(3\)"),
    ({"max_calls": 0}, "max_calls must be at least 1"),
    ({"spare_calls": 0}, "spare_calls must be at least 1, not 0"),
    ({"idle_timeout": 0}, "idle_timeout must be a number of seconds above 0"),
])
def test_settings_are_checked(settings: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Scaling(**settings)  # type: ignore[arg-type]


def test_rtp_slices_are_made_for_the_most_workers() -> None:
    slices = rtp_slices((10000, 19999), 25)
    assert slices[0] == (10000, 10399) and slices[24] == (19600, 19999)
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(slices))


class _H:
    def __init__(self, index: int) -> None:
        self.index = index


def test_the_table_is_indexed_by_worker_and_iterates_in_order() -> None:
    zero, one, two = _H(0), _H(1), _H(2)
    table = WorkerTable([two, zero])
    table.add(one)
    assert [h.index for h in table] == [0, 1, 2] and len(table) == 3 and table[2] is two and 1 in table
    with pytest.raises(ValueError, match="already"):
        table.add(_H(1))
    table.remove(one)
    assert [h.index for h in table] == [0, 2] and table.get(1) is None and 1 not in table
    with pytest.raises(IndexError, match="no worker 1"):
        table[1]
    again = _H(1)
    table.add(again)
    table.remove(one)  # the old handle of index 1 is gone already: the new one stays
    assert table[1] is again
