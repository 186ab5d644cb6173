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

The pool is elastic (`switch.workers.scaling`): `workers = "auto"` keeps `min` workers and adds or retires extras
as its policy decides, up to `max`; an integer is a fixed pool.  Worker i always has SIP port base + i and the
i-th RTP slice of a layout made for `max` workers (with `max = "auto"`, known from worker 0's hello: worker 0
starts on the whole range and is started again on its slice when `max` > 1).  `pool.workers` holds the current
workers (starting, up, retiring, or dead and about to be replaced); a retired worker leaves it.  `watch`
listeners hear every change that matters to a dispatcher: a worker added, up, down, retired, or its free legs
becoming or ceasing to be 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from switch.workers.handle import (
    START_LIMIT as START_LIMIT,
    START_WINDOW as START_WINDOW,
    NoCapacity as NoCapacity,
    WorkerHandle,
    exit_text,
)
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
from switch.workers.scaling import Listener, Phase, Scaler, Scaling, WorkerTable, rtp_slices
from switch.workers.stream import read_event, read_hello

log = logging.getLogger("switch.workers.pool")

EventHandler = Callable[[int, Event], None]
LostHandler = Callable[[int, str], None]  # worker index, how it ended

HELLO_TIMEOUT = 15.0
RESTART_DELAY = 0.2
RETIRE_DRAIN = 0.5  # from taking a retiring worker off the dispatch (`watch` listeners) to its Shutdown
EXIT_GRACE = 2.0  # a worker whose channel closed hangs up (<= 1 s) and exits; past this it is killed
class WorkerPool:
    """Starts the workers (`count`: a fixed number, or a `Scaling` for an elastic pool), routes commands to them
    and events from them."""

    def __init__(self, count: int | Scaling, sip_host: str, sip_port: int, on_event: EventHandler,
                 on_lost: LostHandler, pj_log_level: int = 1, *, advertised_host: str | None = None,
                 media_address: str | None = None, external_address: str | None = None,
                 rtp_ports: tuple[int, int] = (10000, 20000), outbound_proxy: str | None = None,
                 clock: Callable[[], float] = time.monotonic, sip_trace: bool = False, log_level: str = "info",
                 log_format: str = "text") -> None:
        self.log_level, self.log_format = log_level, log_format  # the workers log as the control plane does
        self.scaling = Scaling.fixed(count) if isinstance(count, int) else count
        self.max_workers = self.scaling.max  # None until worker 0's hello, with max = "auto"
        self._host, self._bind_host, self._base_port = advertised_host or sip_host, sip_host, sip_port
        self._rtp_ports = rtp_ports
        # Slices for the most workers there may be; with max "auto", worker 0 probes the engine on the whole range
        self._slices = rtp_slices(rtp_ports, self.max_workers) if self.max_workers else [rtp_ports]
        first = self.scaling.min if self.max_workers else 1
        self.workers: WorkerTable[WorkerHandle] = WorkerTable([self._handle(i) for i in range(first)])
        self._clock = clock
        # the policy runs once start() is done (never for a fixed pool)
        self.scaler = Scaler(self.scaling, lambda: [w.state() for w in self.workers], self._add,
                             lambda i: self._retire(self.workers[i], f"no legs for {self.scaling.idle_timeout:g} s"),
                             clock)
        self._media_address = media_address
        self._external_address = external_address
        self._outbound_proxy = outbound_proxy  # behind the SIP edge: the workers' new requests go through it
        self._on_event = on_event
        self._on_lost = on_lost
        self._pj_log_level = pj_log_level
        self._sip_trace = sip_trace  # the workers report every SIP message (SipMessage events)
        self._dir = Path(tempfile.mkdtemp(prefix="softswitch-"))
        self._socket_path = self._dir / "ipc.sock"
        self._server: asyncio.AbstractServer | None = None
        self._hello: dict[int, asyncio.Future[None]] = {}
        self._closing = False
        self._tasks: set[asyncio.Task[None]] = set()

    # -- life cycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the first workers and return once each has said hello; then the scaling policy runs."""
        self._server = await asyncio.start_unix_server(self._serve, path=str(self._socket_path))
        await asyncio.gather(*(self._spawn(w) for w in self.workers))
        if self.max_workers is None:
            self.max_workers = await self._lay_out(self.workers[0])
        capacity, (first, last) = self.workers[0].capacity, self._slices[0]
        log.info("workers: %s, up to %d; %d up, %d legs each", self.scaling, self.max_workers, len(self.workers),
                 capacity)
        if last - first + 1 < 2 * capacity:
            log.warning("RTP: %d ports per worker for %d legs (two each): widen [media] rtp_ports or lower the most "
                        "workers", last - first + 1, capacity)
        if not self.scaling.is_fixed:
            self.scaler.enable(self.max_workers)
            self.scaler.rescale()

    async def _lay_out(self, probe: WorkerHandle) -> int:
        """With max "auto": the most workers follows from the capacity worker 0 (the probe, on the whole RTP
        range) reported; slice the range for that many, restart worker 0 on its slice, start the rest of min."""
        most = self.scaling.resolve_max(probe.capacity, os.cpu_count() or 1)
        self._slices = rtp_slices(self._rtp_ports, most)
        if self._slices[0] != probe.rtp_ports:
            # it never had a leg: killed rather than shut down (which takes a second)
            await self._retire(probe, "RTP ports sliced for the most workers", kill=True).wait()
            self.workers.add(self._handle(0))
        added = [self._handle(i) for i in range(1, self.scaling.min)]
        for worker in added:
            self.workers.add(worker)
        await asyncio.gather(*(self._spawn(w) for w in self.workers if not w.up))
        return most

    def _handle(self, index: int) -> WorkerHandle:
        return WorkerHandle(index, self._host, self._base_port + index, bind_host=self._bind_host,
                            rtp_ports=self._slices[index if len(self._slices) > 1 else 0])

    async def _spawn(self, worker: WorkerHandle) -> None:
        loop = asyncio.get_running_loop()
        hello: asyncio.Future[None] = loop.create_future()
        self._hello[worker.index] = hello
        worker.started_at = time.monotonic()
        worker.starting = True
        worker.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "switch.worker.main", "--socket", str(self._socket_path),
            "--index", str(worker.index), "--sip", f"{worker.listen_host}:{worker.sip_port}",
            "--pj-log-level", str(self._pj_log_level), *self._media_args(worker),
            *(["--sip-trace"] if self._sip_trace else []),
            "--log-level", self.log_level, "--log-format", self.log_format,
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
        if self._outbound_proxy:
            args += ["--outbound-proxy", self._outbound_proxy]
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
        worker.starting = False
        if worker.retiring:
            self._retired(worker, code)
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
            self._changed()  # a start that failed: its phase moved on
            return
        worker.up = False
        worker.writer = None
        self._changed()
        if worker.retiring:
            return  # its exit takes it out of the pool (`_retired`)
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
            if (worker := self.workers.get(hello.worker)) is None or worker.retiring:
                log.error("a worker says it is worker %d; the pool has %s", hello.worker,
                          [w.index for w in self.workers if not w.retiring])
                return
            worker.writer = writer
            worker.capacity = hello.capacity
            worker.engine = hello.engine
            worker.pid = hello.pid
            worker.dropped_events = 0
            worker.up, worker.starting, worker.idle_since = True, False, self._clock()
            log.info("worker %d up: pid %d, SIP %s, capacity %d calls, engine %s", worker.index, worker.pid,
                     hello.sip, worker.capacity, worker.engine or "?")
            future = self._hello.get(worker.index)
            if future is not None and not future.done():
                future.set_result(None)
            self._changed()
            while (event := await read_event(reader)) is not None:
                if isinstance(event, DialogChanged):
                    worker.dialogs[event.leg] = event.dialog
                    continue
                if isinstance(event, Ended | DialFailed):
                    worker.dialogs.pop(event.leg, None)
                    if isinstance(event, Ended) and event.rtp is not None:
                        worker.rtp.add(event.rtp)
                if isinstance(event, EventsDropped):
                    worker.dropped_events = event.total
                    log.warning("worker %d dropped %d events so far: its queue to us overflowed", worker.index,
                                event.total)
                    continue
                self._on_event(worker.index, event)
                # Let what the event started (a webhook, a TwiML request) leave before the next one, already
                # read, is handled: a 180 and a 200 come in one read, and the ringing callback would wait.
                await asyncio.sleep(0)
        except VersionMismatch as exc:
            log.error("worker refused: %s", exc)
        except ProtocolError as exc:
            log.error("worker channel broken: %s", exc)
        except ConnectionError as exc:  # the worker died (a crash resets its end): `_lost` reports why, at ERROR
            log.info("worker control channel reset: %s", exc)
        except Exception:
            log.exception("worker event handling failed")
        finally:
            writer.close()
            if worker is not None and worker.writer is writer:
                self._mark_down(worker, "control channel closed")

    async def close(self) -> None:
        """Ask every worker to hang up and exit; kill those that do not within 3 s."""
        self._closing = True
        self.scaler.disable()
        for worker in self.workers:
            self.send(worker.index, Shutdown())
        for worker in self.workers:
            process = worker.process
            if process is None or process.returncode is not None:
                continue
            if worker.starting:  # no channel yet, no calls: nothing to wait for
                process.kill()
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

    # -- the elastic pool (switch.workers.scaling) ------------------------------------------------
    def watch(self, listener: Listener) -> None:
        """Call `listener()` (synchronously, on the event loop; keep it cheap) whenever a worker is added, comes
        up, goes down, starts retiring or is retired, or its free legs become or cease to be 0."""
        self.scaler.watch(listener)

    def _changed(self) -> None:
        self.scaler.notify()
        self.scaler.rescale()

    def _legs_changed(self, worker: WorkerHandle, was_open: bool) -> None:
        if not worker.legs:
            worker.idle_since = self._clock()
        if (worker.free > 0) != was_open:
            self.scaler.notify()
        self.scaler.rescale()

    def _add(self, index: int) -> None:
        """The policy's growth: start worker `index`."""
        worker = self._handle(index)
        worker.starting = True
        self.workers.add(worker)
        log.info("worker %d starting: %d free legs on %d workers", index, sum(w.free for w in self.workers),
                 len(self.workers) - 1)
        self._track(self._grow(worker))
        self.scaler.notify()

    async def _grow(self, worker: WorkerHandle) -> None:
        try:
            await self._spawn(worker)
        except (RuntimeError, OSError) as exc:
            log.error("worker %d did not start: %s", worker.index, exc)
            if worker.process is None:  # never ran: its index is free again
                worker.starting = False
                self.workers.remove(worker)
                self._changed()
            elif worker.process.returncode is None:
                worker.process.kill()  # hung before hello: its watcher schedules the next try

    def _retire(self, worker: WorkerHandle, why: str, kill: bool = False) -> asyncio.Event:
        """Take no new legs on `worker` and have it exit (`kill`: at once, for one that never had a leg); it
        leaves the pool when it has (`gone` is set)."""
        worker.retiring = True
        log.info("worker %d (pid %s) retiring: %s", worker.index, worker.pid, why)
        self.scaler.notify()
        if kill and worker.process is not None:
            worker.process.kill()
        else:
            self._track(self._shut_down(worker))
        return worker.gone

    async def _shut_down(self, worker: WorkerHandle) -> None:
        """Shutdown, once the listeners (the SIP edge) had RETIRE_DRAIN to stop sending it calls; a call that
        reached it in the meantime keeps it in service."""
        await asyncio.sleep(RETIRE_DRAIN)
        if worker.legs and worker.up and not self._closing:
            log.info("worker %d keeps running: a call reached it while it was retiring", worker.index)
            worker.retiring = False
            self._changed()
            return
        process = worker.process
        if not self.send(worker.index, Shutdown()) and process is not None and process.returncode is None:
            process.kill()
        if process is not None and process.returncode is None:
            try:
                await asyncio.wait_for(asyncio.shield(process.wait()), EXIT_GRACE + 3.0)
            except TimeoutError:
                log.error("worker %d (pid %s) did not exit when retired: killed", worker.index, worker.pid)
                process.kill()

    def _retired(self, worker: WorkerHandle, code: int) -> None:
        """A retiring worker's process is gone: it leaves the pool.  A leg that reached it in the meantime (an
        INVITE racing the Shutdown) was hung up by the worker; its call ends here if its `ended` did not."""
        self.workers.remove(worker)
        worker.up, worker.writer = False, None
        dialogs, worker.dialogs = worker.dialogs, {}
        log.info("worker %d (pid %s) retired: %s", worker.index, worker.pid, exit_text(code))
        if worker.legs:
            self._report_lost(worker, exit_text(code))
            if dialogs and code != 0 and not self._closing:
                self._background(worker, self._reap(worker, dialogs))
        worker.gone.set()
        self._changed()

    def _capacity_hint(self) -> str:
        if not self.scaler.on:
            return "retry later or start the switch with more --workers"
        if any(w.phase is Phase.STARTING for w in self.workers):
            return "another worker is starting: retry in a moment"
        return f"the pool is at its most workers ({self.max_workers}, [workers] max): retry later"

    # -- capacity and commands ----------------------------------------------------------------
    @property
    def healthy(self) -> bool:
        """Every worker is up, or on its way in (a first start) or out (retiring); not one that died."""
        return all(w.up or w.retiring or (w.starting and not w.restarts) for w in self.workers)

    def reserve(self, leg: str, worker_index: int | None = None, now: float | None = None) -> int:
        """Reserve a call slot for `leg` on `worker_index`, or on the worker with most free slots."""
        now = time.monotonic() if now is None else now
        chosen = None if worker_index is None else self.workers.get(worker_index)
        candidates = list(self.workers) if worker_index is None else [chosen] if chosen is not None else []
        open_ = [w for w in candidates if w.free > 0]
        if not open_:
            if worker_index is not None:
                raise NoCapacity(f"worker {worker_index} has no free call slot")
            total = sum(w.capacity for w in self.workers if w.up)
            up = sum(1 for w in self.workers if w.up)
            raise NoCapacity(
                f"No free call capacity: all {total} call slots on {up} of {len(self.workers)} workers are in use; "
                f"{self._capacity_hint()}"
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
        self._legs_changed(worker, was_open=True)
        return worker.index

    def adopt(self, leg: str, worker_index: int) -> None:
        """Count an inbound leg the worker accepted on its own (even a retiring one: it hangs it up on its way
        out, and its exit ends the call if its `ended` did not)."""
        if (worker := self.workers.get(worker_index)) is not None:
            was_open = worker.free > 0
            worker.legs.add(leg)
            self._legs_changed(worker, was_open)

    def release(self, leg: str, worker_index: int) -> None:
        if (worker := self.workers.get(worker_index)) is not None and leg in worker.legs:
            was_open = worker.free > 0
            worker.legs.discard(leg)
            self._legs_changed(worker, was_open)

    def send(self, worker_index: int, command: Command) -> bool:
        worker = self.workers.get(worker_index)
        writer = worker.writer if worker is not None else None
        if writer is None or writer.is_closing():
            return False
        writer.write(encode(command))
        return True

    def status(self) -> list[dict[str, Any]]:
        return [
            {"worker": w.index, "up": w.up, "pid": w.pid, "sip": f"{w.listen_host}:{w.sip_port}",
             "capacity": w.capacity, "engine": w.engine, "in_use": len(w.legs), "restarts": w.restarts,
             "dropped_events": w.dropped_events, "state": w.phase.value, "free": w.free, "rtp": w.rtp.as_json()}
            for w in self.workers
        ]
