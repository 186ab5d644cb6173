"""The control plane's view of its media workers: spawn, hello, capacity, events, death and restart.

Worker `i` is a `python -m switch.worker.main` process bound to SIP port `base + i` (worker 0 owns the
configured address and so receives inbound calls), with its RTP bound to the media address in its own slice
of the RTP port range.  Each connects back over a unix socket and says hello with its real call capacity,
which it read from the pjsua2 library it loaded.  The pool counts legs in use
per worker; the call manager reserves a leg before dialing and releases it when the leg ends.

A worker that dies is found by its control socket's EOF or its process's exit, whichever comes first.  The pool
waits for the exit (a worker alive without its channel hangs up its calls and exits by itself; one that does not
within `EXIT_GRACE` is killed), reports it to `on_lost` with how it ended (its calls end `failed` there), and
ends the SIP side of its legs from the control plane: the worker reported each leg's dialog (`DialogChanged`),
and `switch.workers.reaper` sends their far ends BYE, CANCEL or a 503 from the dead worker's SIP port.  A worker
that exited cleanly (status 0) hung its calls up itself.  Then the worker is started again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from switch.workers.protocol import (
    Command,
    DialFailed,
    Dialog,
    DialogChanged,
    Ended,
    Event,
    EventsDropped,
    Fatal,
    ProtocolError,
    Shutdown,
    VersionMismatch,
    encode,
)
from switch.workers.reaper import reap
from switch.workers.stream import read_event, read_hello

log = logging.getLogger("switch.workers.pool")

EventHandler = Callable[[int, Event], None]
LostHandler = Callable[[int, str], None]  # worker index, how it ended

HELLO_TIMEOUT = 15.0
RESTART_DELAY = 0.2
EXIT_GRACE = 2.0  # a worker whose channel closed hangs up (<= 1 s) and exits; past this it is killed
# The PyPI pjsua2 has a 64-handle select() ioqueue; each call takes two media sockets and a closed socket
# stays registered for 500 ms, so ~30 call starts inside a second abort the process (measured by the
# bench: an assertion in ioqueue_select.c).  New legs per worker are capped below that.
START_LIMIT = 20
START_WINDOW = 1.0


def rtp_slices(ports: tuple[int, int], count: int) -> list[tuple[int, int]]:
    """Split the RTP port range `ports` (first, last) into `count` disjoint slices of an even size, one per
    worker; a range too small for that is shared (pjsua moves on from a port in use)."""
    first, last = ports
    size = (last - first + 1) // count // 2 * 2
    if size < 2:
        return [ports] * count
    return [(first + i * size, first + (i + 1) * size - 1 if i < count - 1 else last) for i in range(count)]


def exit_text(code: int) -> str:
    """How a process ended, from its return code: `exited with status 1`, `killed by signal 9 (SIGKILL)`."""
    if code >= 0:
        return f"exited with status {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = "unknown"
    return f"killed by signal {-code} ({name})"


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
    legs: set[str] = field(default_factory=set)
    pid: int | None = None
    up: bool = False
    started_at: float = 0.0
    restarts: int = 0
    dropped_events: int = 0  # events its full outgoing queue dropped (EventsDropped), this process
    starts: collections.deque[float] = field(default_factory=collections.deque)
    dialogs: dict[str, Dialog] = field(default_factory=dict)  # leg id -> its SIP facts (DialogChanged)
    lost: asyncio.Task[None] | None = None  # the handling of its last death (on_lost, reaping its legs)

    @property
    def listen_host(self) -> str:
        return self.bind_host or self.sip_host

    @property
    def free(self) -> int:
        return self.capacity - len(self.legs) if self.up else 0

    def may_start(self, now: float) -> bool:
        """Whether one more leg may start now without exceeding START_LIMIT per START_WINDOW."""
        while self.starts and now - self.starts[0] > START_WINDOW:
            self.starts.popleft()
        return len(self.starts) < START_LIMIT


class WorkerPool:
    """Starts N workers and routes commands to them and events from them."""

    def __init__(self, count: int, sip_host: str, sip_port: int, on_event: EventHandler, on_lost: LostHandler,
                 pj_log_level: int = 1, *, advertised_host: str | None = None, media_address: str | None = None,
                 external_address: str | None = None, rtp_ports: tuple[int, int] = (10000, 20000)) -> None:
        host = advertised_host or sip_host
        self.workers = [WorkerHandle(i, host, sip_port + i, bind_host=sip_host, rtp_ports=ports)
                        for i, ports in enumerate(rtp_slices(rtp_ports, count))]
        self._media_address = media_address
        self._external_address = external_address
        self._on_event = on_event
        self._on_lost = on_lost
        self._pj_log_level = pj_log_level
        self._dir = Path(tempfile.mkdtemp(prefix="softswitch-"))
        self._socket_path = self._dir / "ipc.sock"
        self._server: asyncio.AbstractServer | None = None
        self._hello: dict[int, asyncio.Future[None]] = {}
        self._closing = False
        self._tasks: set[asyncio.Task[None]] = set()

    # -- life cycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve, path=str(self._socket_path))
        await asyncio.gather(*(self._spawn(w) for w in self.workers))

    async def _spawn(self, worker: WorkerHandle) -> None:
        loop = asyncio.get_running_loop()
        hello: asyncio.Future[None] = loop.create_future()
        self._hello[worker.index] = hello
        worker.started_at = time.monotonic()
        worker.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "switch.worker.main", "--socket", str(self._socket_path),
            "--index", str(worker.index), "--sip", f"{worker.listen_host}:{worker.sip_port}",
            "--pj-log-level", str(self._pj_log_level), *self._media_args(worker),
            # pjlib prints its start-up banner on stdout before our log level applies
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        )
        self._track(self._watch_process(worker, worker.process))
        try:
            await asyncio.wait_for(asyncio.shield(hello), HELLO_TIMEOUT)
        except TimeoutError as exc:
            raise RuntimeError(f"worker {worker.index} did not say hello in {HELLO_TIMEOUT:.0f} s") from exc

    def _media_args(self, worker: WorkerHandle) -> list[str]:
        args = ["--rtp-ports", f"{worker.rtp_ports[0]}-{worker.rtp_ports[1]}"]
        if self._media_address:
            args += ["--media-address", self._media_address]
        if self._external_address:
            args += ["--external-address", self._external_address]
        return args

    def _track(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch_process(self, worker: WorkerHandle, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        hello = self._hello.get(worker.index)
        if hello is not None and not hello.done():
            hello.set_exception(RuntimeError(f"worker {worker.index} exited with {code} before hello"))
        if worker.process is not process:
            return
        self._mark_down(worker, f"process exited with status {code}")
        worker.process = None
        if not self._closing:
            worker.restarts += 1
            self._track(self._restart(worker))

    def _mark_down(self, worker: WorkerHandle, why: str) -> None:
        """Once per worker death (socket EOF or process exit, whichever comes first): no more commands or legs
        for it; once its process is gone, `on_lost` hears how it ended and its legs' dialogs are ended."""
        if not worker.up:
            return
        worker.up = False
        worker.writer = None
        dialogs, worker.dialogs = worker.dialogs, {}
        process = worker.process
        if process is not None and process.returncode is None and not self._closing:
            self._background(worker, self._lost(worker, process, why, dialogs))
            return
        self._report_lost(worker, exit_text(process.returncode) if process and process.returncode is not None
                          else why)
        if not self._closing and dialogs and (process is None or process.returncode != 0):
            self._background(worker, self._reap(worker, dialogs))

    def _background(self, worker: WorkerHandle, coro: Any) -> None:
        worker.lost = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(worker.lost)
        worker.lost.add_done_callback(self._tasks.discard)

    async def _lost(self, worker: WorkerHandle, process: asyncio.subprocess.Process, why: str,
                    dialogs: dict[str, Dialog]) -> None:
        """Wait for the process to be gone (killed after EXIT_GRACE), report it, end its legs' dialogs."""
        try:
            await asyncio.wait_for(asyncio.shield(process.wait()), EXIT_GRACE)
        except TimeoutError:
            log.error("worker %d (pid %s) lost its channel and did not exit: killed", worker.index, worker.pid)
            process.kill()
            await process.wait()
        self._report_lost(worker, exit_text(process.returncode) if process.returncode is not None else why)
        if dialogs and process.returncode != 0:  # a clean exit hung its calls up itself
            await self._reap(worker, dialogs)

    def _report_lost(self, worker: WorkerHandle, why: str) -> None:
        if not self._closing:
            log.error("worker %d (pid %s) lost: %s; its %d legs end", worker.index, worker.pid, why,
                      len(worker.legs))
        self._on_lost(worker.index, why)
        worker.legs.clear()

    async def _reap(self, worker: WorkerHandle, dialogs: dict[str, Dialog]) -> None:
        """End the dead worker's legs from its SIP port (switch.workers.reaper); never in the way of the restart."""
        try:
            outcomes = await reap(dialogs, worker.listen_host, worker.sip_port, worker.sip_host)
        except Exception:
            log.exception("worker %d: ending its legs' dialogs failed", worker.index)
            return
        for leg, outcome in sorted(outcomes.items()):
            log.info("worker %d: leg %s ended from the control plane: %s", worker.index, leg, outcome)

    async def _restart(self, worker: WorkerHandle) -> None:
        """Start a replacement (once the dead one's legs are ended: it needs their SIP port); a replacement that
        dies is restarted again by its own watcher."""
        await asyncio.sleep(RESTART_DELAY)
        if worker.lost is not None:
            await asyncio.wait([worker.lost])  # it logs its own failures
        if self._closing:
            return
        try:
            await self._spawn(worker)
            log.info("worker %d restarted (pid %s)", worker.index, worker.pid)
        except (RuntimeError, OSError) as exc:
            log.error("worker %d restart failed: %s", worker.index, exc)
            if worker.process is not None and worker.process.returncode is None:
                worker.process.kill()  # hung before hello: its watcher schedules the next try

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        worker: WorkerHandle | None = None
        try:
            hello = await read_hello(reader)
            if hello is None:
                return
            if isinstance(hello, Fatal):
                log.error("%s", hello.message)
                return
            if not 0 <= hello.worker < len(self.workers):
                log.error("a worker says it is worker %d; there are %d", hello.worker, len(self.workers))
                return
            worker = self.workers[hello.worker]
            worker.writer = writer
            worker.capacity = hello.capacity
            worker.pid = hello.pid
            worker.dropped_events = 0
            worker.up = True
            log.info("worker %d up: pid %d, SIP %s, capacity %d calls", worker.index, worker.pid,
                     hello.sip, worker.capacity)
            future = self._hello.get(worker.index)
            if future is not None and not future.done():
                future.set_result(None)
            while (event := await read_event(reader)) is not None:
                if isinstance(event, DialogChanged):
                    worker.dialogs[event.leg] = event.dialog
                    continue
                if isinstance(event, Ended | DialFailed):
                    worker.dialogs.pop(event.leg, None)
                if isinstance(event, EventsDropped):
                    worker.dropped_events = event.total
                    log.warning("worker %d dropped %d events so far: its queue to us overflowed", worker.index,
                                event.total)
                    continue
                self._on_event(worker.index, event)
        except VersionMismatch as exc:
            log.error("worker refused: %s", exc)
        except ProtocolError as exc:
            log.error("worker channel broken: %s", exc)
        except Exception:
            log.exception("worker event handling failed")
        finally:
            writer.close()
            if worker is not None and worker.writer is writer:
                self._mark_down(worker, "control channel closed")

    async def close(self) -> None:
        """Ask every worker to hang up and exit; kill those that do not within 3 s."""
        self._closing = True
        for worker in self.workers:
            self.send(worker.index, Shutdown())
        for worker in self.workers:
            process = worker.process
            if process is None or process.returncode is not None:
                continue
            try:
                await asyncio.wait_for(process.wait(), 3.0)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(OSError):
            self._socket_path.unlink()
            os.rmdir(self._dir)

    # -- capacity and commands ----------------------------------------------------------------
    @property
    def healthy(self) -> bool:
        return all(w.up for w in self.workers)

    def reserve(self, leg: str, worker_index: int | None = None, now: float | None = None) -> int:
        """Reserve a call slot for `leg` on `worker_index`, or on the worker with most free slots."""
        now = time.monotonic() if now is None else now
        candidates = self.workers if worker_index is None else [self.workers[worker_index]]
        open_ = [w for w in candidates if w.free > 0]
        if not open_:
            if worker_index is not None:
                raise NoCapacity(f"worker {worker_index} has no free call slot")
            total = sum(w.capacity for w in self.workers if w.up)
            up = sum(1 for w in self.workers if w.up)
            raise NoCapacity(
                f"No free call capacity: all {total} call slots on {up} of {len(self.workers)} workers are in use; "
                "retry later or start the switch with more --workers"
            )
        ready = [w for w in open_ if w.may_start(now)]
        if not ready:
            raise NoCapacity(
                f"Call rate limit: at most {START_LIMIT} new calls per {START_WINDOW:g} s per worker "
                "(a limit of the pjsua2 build); retry shortly or start the switch with more --workers"
            )
        worker = max(ready, key=lambda w: w.free)
        worker.legs.add(leg)
        worker.starts.append(now)
        return worker.index

    def adopt(self, leg: str, worker_index: int) -> None:
        """Count an inbound leg the worker accepted on its own."""
        self.workers[worker_index].legs.add(leg)

    def release(self, leg: str, worker_index: int) -> None:
        self.workers[worker_index].legs.discard(leg)

    def send(self, worker_index: int, command: Command) -> bool:
        writer = self.workers[worker_index].writer
        if writer is None or writer.is_closing():
            return False
        writer.write(encode(command))
        return True

    def status(self) -> list[dict[str, Any]]:
        return [
            {"worker": w.index, "up": w.up, "pid": w.pid, "sip": f"{w.listen_host}:{w.sip_port}",
             "capacity": w.capacity, "in_use": len(w.legs), "restarts": w.restarts,
             "dropped_events": w.dropped_events}
            for w in self.workers
        ]
