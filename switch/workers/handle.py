"""One worker process as the control plane sees it (`WorkerHandle`), and what limits the legs it may take.

`switch.workers.pool` keeps one handle per current worker: its process and channel, its capacity and engine
from its hello, the legs counted on it, its dialogs (for reaping them if it dies) and where it is in its life
(`phase`: starting, up, retiring, down), which the scaling policy reads (`state`).
"""

from __future__ import annotations

import asyncio
import collections
import signal
from dataclasses import dataclass, field

from switch.workers.protocol import Dialog, RtpStats
from switch.workers.scaling import Phase, WorkerState

# The PyPI pjsua2 wheel has a 64-handle select() ioqueue; each call takes two media sockets and a closed socket
# stays registered for 500 ms, so ~30 call starts inside a second abort the process (measured by the
# bench: an assertion in ioqueue_select.c).  New legs per worker on the wheel are capped below that; a worker
# on the built engine (`make engine`: epoll, 8,192 handles; its hello says "(built") has no such cap.
START_LIMIT = 20
START_WINDOW = 1.0


def exit_text(code: int) -> str:
    """How a process ended, from its return code: `exited with status 1`, `killed by signal 9 (SIGKILL)`."""
    if code >= 0:
        return f"exited with status {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = "unknown"
    return f"killed by signal {-code} ({name})"


@dataclass
class RtpTotals:
    """The RTP of every leg that ended on one worker (its `Ended.rtp`), summed since the control plane started:
    legs counted, packets received, lost, discarded, sent, and the jitter buffer's lost and discarded frames."""

    legs: int = 0
    rx_packets: int = 0
    rx_lost: int = 0
    rx_discarded: int = 0
    tx_packets: int = 0
    jb_lost: int = 0
    jb_discarded: int = 0

    def add(self, stats: RtpStats) -> None:
        self.legs += 1
        self.rx_packets += stats.rx_packets
        self.rx_lost += stats.rx_lost
        self.rx_discarded += stats.rx_discarded
        self.tx_packets += stats.tx_packets
        self.jb_lost += stats.jb_lost
        self.jb_discarded += stats.jb_discarded

    def as_json(self) -> dict[str, int]:
        return dict(self.__dict__)


class NoCapacity(Exception):
    """No worker may take one more leg now (every slot in use, or the start rate limit); the message says why."""


@dataclass
class WorkerHandle:
    """One worker process as the control plane sees it."""

    index: int
    sip_host: str  # the host of our SIP URIs (From), never a wildcard
    sip_port: int
    bind_host: str | None = None  # what the worker binds SIP to, when not `sip_host` (a wildcard)
    rtp_ports: tuple[int, int] = (10000, 20000)
    process: asyncio.subprocess.Process | None = None
    writer: asyncio.StreamWriter | None = None
    capacity: int = 0
    engine: str = ""  # the pjsua2 it loaded, from its hello ("pjproject 2.17 (built, epoll)", "... (wheel)")
    legs: set[str] = field(default_factory=set)
    pid: int | None = None
    up: bool = False
    started_at: float = 0.0
    restarts: int = 0
    dropped_events: int = 0  # events its full outgoing queue dropped (EventsDropped), this process
    starts: collections.deque[float] = field(default_factory=collections.deque)
    dialogs: dict[str, Dialog] = field(default_factory=dict)  # leg id -> its SIP facts (DialogChanged)
    rtp: RtpTotals = field(default_factory=RtpTotals)  # its ended legs' RTP, kept across restarts
    lost: asyncio.Task[None] | None = None  # the handling of its last death (on_lost, reaping its legs)
    starting: bool = False  # its process was started and has not said hello yet
    retiring: bool = False  # chosen for retirement: sent Shutdown, takes no new legs, leaves the pool on exit
    idle_since: float = 0.0  # when it last had no leg (the pool's clock)
    gone: asyncio.Event = field(default_factory=asyncio.Event)  # set once a retired worker has left the pool

    @property
    def listen_host(self) -> str:
        return self.bind_host or self.sip_host

    @property
    def free(self) -> int:
        """Legs it may take now: 0 unless it is up and not retiring."""
        return self.capacity - len(self.legs) if self.up and not self.retiring else 0

    @property
    def phase(self) -> Phase:
        if self.retiring:
            return Phase.RETIRING
        if self.up:
            return Phase.UP
        return Phase.STARTING if self.starting else Phase.DOWN

    def state(self) -> WorkerState:
        """What the scaling policy needs to know of it."""
        return WorkerState(self.index, self.phase, self.capacity, len(self.legs), self.idle_since)

    @property
    def start_limited(self) -> bool:
        """Whether START_LIMIT applies: the wheel's select() ioqueue (or an engine not known yet)."""
        return "(built" not in self.engine

    def may_start(self, now: float) -> bool:
        """Whether one more leg may start now without exceeding START_LIMIT per START_WINDOW (wheel only)."""
        if not self.start_limited:
            return True
        while self.starts and now - self.starts[0] > START_WINDOW:
            self.starts.popleft()
        return len(self.starts) < START_LIMIT
