"""How the worker pool grows and shrinks: its settings, the pure policy it asks, and its table of workers.

`workers = "auto"` (softswitch.toml's `[server]`, the default) keeps workers `0 .. min-1` running always and
adds extras when the free call legs across the workers that are up fall below `spare_calls` (at least 1, so a
full pool always grows: behind the SIP edge a full pool only hears 503s, never a refused reservation); an extra
that has held no leg for `idle_timeout` seconds is retired (sent `Shutdown`; it takes no new legs from the
moment it is chosen). There are never more than `max` workers: a configured number, or from the engine's
capacity, which the first worker reports in its hello: one per CPU core (a server build holds ~1000 legs per
worker, so CPU is its limit), or enough workers for `max_calls` legs when each holds few (the PyPI wheel holds
4). An integer `workers = N` is a fixed pool: `min = max = N`.

The policy (`decide`) is a pure function of the workers' states and a clock, so that its rules are unit tests
without processes; `WorkerPool` feeds it on every change of a worker or of its legs and when the next idle
deadline it returned passes, and carries out its answer.  Rules, in order:

1. the floor: a missing worker below `min` (one that never started) is started;
2. growth: when `free + pending * capacity < spare_calls`, where `pending` counts workers starting or
   restarting (their legs are on the way), the lowest free index below `max` is started (one per decision;
   the next decision counts it as pending);
3. retirement, only when nothing is starting: an extra (index >= `min`, so worker 0 and the floor never go)
   that is up, holds no leg and has been idle `idle_timeout` seconds goes, highest index first, as long as
   the free legs left stay at or above `spare_calls` (else it would be started again at once).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

log = logging.getLogger("switch.workers.scaling")


class Phase(enum.Enum):
    """Where a worker is in its life, as the pool sees it."""

    STARTING = "starting"  # its process runs; no hello yet (takes no legs)
    UP = "up"  # said hello; takes legs
    RETIRING = "retiring"  # chosen for retirement: sent Shutdown, takes no new legs, leaves when it exits
    DOWN = "down"  # died; its replacement is on the way (RESTART_DELAY, reaping its legs)


@dataclass(frozen=True)
class Scaling:
    """How many workers run: `min` always, up to `max` (None: from the engine's capacity, see `resolve_max`).

    `max_calls`: call legs to plan for when `max` is None; `spare_calls`: free legs to keep in hand (a
    `<Dial>` bridge takes two legs on one worker); `idle_timeout`: seconds an extra worker may sit without a
    leg before it is retired.
    """

    min: int = 1
    max: int | None = None
    max_calls: int = 100
    spare_calls: int = 2
    idle_timeout: float = 60.0

    def __post_init__(self) -> None:
        problems = [text for bad, text in (
            (self.min < 1, f"min must be at least 1, not {self.min}"),
            (self.max is not None and self.max < self.min, f"max ({self.max}) must not be below min ({self.min})"),
            (self.max_calls < 1, f"max_calls must be at least 1, not {self.max_calls}"),
            (self.spare_calls < 1, f"spare_calls must be at least 1, not {self.spare_calls}"),
            (not self.idle_timeout > 0, f"idle_timeout must be a number of seconds above 0, not {self.idle_timeout}"),
        ) if bad]
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def fixed(cls, count: int) -> Scaling:
        """`workers = N`: N workers from the start, never more, never fewer."""
        return cls(min=count, max=count)

    @property
    def is_fixed(self) -> bool:
        return self.max == self.min

    def resolve_max(self, capacity: int, cpus: int) -> int:
        """The most workers: `max` as configured, or one per core (`cpus`), or enough for `max_calls` legs at
        `capacity` legs per worker, whichever is more; never below `min`."""
        if self.max is not None:
            return self.max
        return max(self.min, cpus, math.ceil(self.max_calls / max(capacity, 1)))

    def __str__(self) -> str:
        if self.is_fixed:
            return f"{self.min} worker{'s' if self.min != 1 else ''}"
        return f"auto (min {self.min}, max {'auto' if self.max is None else self.max})"


@dataclass(frozen=True)
class WorkerState:
    """What the policy knows of one worker: `idle_since` is when it last had no leg (the clock's time)."""

    index: int
    phase: Phase
    capacity: int = 0
    legs: int = 0
    idle_since: float = 0.0


@dataclass(frozen=True)
class Decision:
    """What to do now: start these indexes, retire these; `wake_at`: ask again then (an idle deadline)."""

    start: tuple[int, ...] = ()
    retire: tuple[int, ...] = ()
    wake_at: float | None = None


def decide(scaling: Scaling, max_workers: int, workers: Sequence[WorkerState], now: float) -> Decision:
    """The policy (see the module's docstring): which workers to start and to retire at time `now`."""
    present = {w.index for w in workers}  # a retiring worker keeps its index (and SIP port) until it is gone
    active = [w for w in workers if w.phase is not Phase.RETIRING]
    free_indexes = [i for i in range(max_workers) if i not in present]
    missing = [i for i in range(scaling.min) if i not in present]
    if missing:
        return Decision(start=tuple(missing))
    capacity = max((w.capacity for w in workers), default=0)
    free = sum(w.capacity - w.legs for w in active if w.phase is Phase.UP)
    pending = sum(1 for w in active if w.phase in (Phase.STARTING, Phase.DOWN))
    if free + pending * capacity < scaling.spare_calls and free_indexes:
        return Decision(start=(free_indexes[0],))
    if pending:
        return Decision()
    retire: list[int] = []
    wake_at: float | None = None
    extras = sorted((w for w in active if w.index >= scaling.min and w.phase is Phase.UP and w.legs == 0),
                    key=lambda w: w.index, reverse=True)
    for worker in extras:
        due = worker.idle_since + scaling.idle_timeout
        if due > now:
            wake_at = due if wake_at is None else min(wake_at, due)
        elif free - worker.capacity >= scaling.spare_calls:
            retire.append(worker.index)
            free -= worker.capacity
    return Decision(retire=tuple(retire), wake_at=wake_at)


def rtp_slices(ports: tuple[int, int], count: int) -> list[tuple[int, int]]:
    """Split the RTP port range `ports` (first, last) into `count` disjoint slices of an even size, one per
    worker; a range too small for that is shared (pjsua moves on from a port in use)."""
    first, last = ports
    size = (last - first + 1) // count // 2 * 2
    if size < 2:
        return [ports] * count
    return [(first + i * size, first + (i + 1) * size - 1 if i < count - 1 else last) for i in range(count)]


class _Indexed(Protocol):
    @property
    def index(self) -> int: ...


H = TypeVar("H", bound=_Indexed)


class WorkerTable(Generic[H]):
    """The pool's current workers: `table[i]` is worker i, iterating gives them in index order.  A retired
    worker leaves the table; one that is starting, restarting or retiring is in it (see its phase)."""

    def __init__(self, workers: Sequence[H] = ()) -> None:
        self._by_index: dict[int, H] = {}
        self._ordered: list[H] = []
        for worker in workers:
            self.add(worker)

    def add(self, worker: H) -> None:
        if worker.index in self._by_index:
            raise ValueError(f"worker {worker.index} is already in the pool")
        self._by_index[worker.index] = worker
        self._ordered = sorted(self._by_index.values(), key=lambda w: w.index)

    def remove(self, worker: H) -> None:
        """Take `worker` out (a later worker with its index stays)."""
        if self._by_index.get(worker.index) is worker:
            del self._by_index[worker.index]
            self._ordered = [w for w in self._ordered if w is not worker]

    def get(self, index: int) -> H | None:
        return self._by_index.get(index)

    def __getitem__(self, index: int) -> H:
        try:
            return self._by_index[index]
        except KeyError:
            raise IndexError(f"no worker {index} in the pool") from None

    def __contains__(self, index: object) -> bool:
        return index in self._by_index

    def __iter__(self) -> Iterator[H]:
        return iter(self._ordered)

    def __len__(self) -> int:
        return len(self._ordered)


Listener = Callable[[], None]


class Scaler:
    """Runs the policy for a pool: `rescale()` after every change asks `decide` and carries out its answer
    through the pool's `start(index)` and `retire(index)`, and wakes itself at the next idle deadline; `watch`
    listeners hear of every change the pool reports (`notify`)."""

    def __init__(self, scaling: Scaling, states: Callable[[], list[WorkerState]], start: Callable[[int], None],
                 retire: Callable[[int], object], clock: Callable[[], float]) -> None:
        self.scaling = scaling
        self.max_workers: int | None = None  # set by `enable` (the policy does nothing before)
        self.added = self.retired = 0  # workers the policy started and retired
        self._states, self._start, self._retire, self._clock = states, start, retire, clock
        self._listeners: list[Listener] = []
        self._deciding = False
        self._wake: asyncio.TimerHandle | None = None
        self._wake_at: float | None = None

    @property
    def on(self) -> bool:
        return self.max_workers is not None

    def enable(self, max_workers: int) -> None:
        self.max_workers = max_workers

    def disable(self) -> None:
        self.max_workers = None
        if self._wake is not None:
            self._wake.cancel()
            self._wake = None

    def watch(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def notify(self) -> None:
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:
                log.exception("a worker pool listener failed")

    def rescale(self) -> None:
        """Ask the policy and do what it says."""
        if self.max_workers is None or self._deciding:
            return
        self._deciding = True  # starting and retiring report changes back here: one decision at a time
        try:
            now = self._clock()
            decision = decide(self.scaling, self.max_workers, self._states(), now)
            for index in decision.start:
                self.added += 1
                self._start(index)
            for index in decision.retire:
                self.retired += 1
                self._retire(index)
        finally:
            self._deciding = False
        if self._wake is not None and decision.wake_at != self._wake_at:
            self._wake.cancel()
            self._wake = None
        if decision.wake_at is not None and self._wake is None:
            delay = max(0.0, decision.wake_at - now) + 0.01
            self._wake = asyncio.get_running_loop().call_later(delay, self._woken)
        self._wake_at = decision.wake_at

    def _woken(self) -> None:
        self._wake = None
        self.rescale()

    def status(self) -> dict[str, Any]:
        """How the pool scales and what it did (for /healthz)."""
        s = self.scaling
        return {"mode": "fixed" if s.is_fixed else "auto", "min": s.min, "max": self.max_workers or s.max,
                "max_calls": s.max_calls, "spare_calls": s.spare_calls, "idle_timeout": s.idle_timeout,
                "added": self.added, "retired": self.retired}
