"""`softswitch bench` helpers: ports (from `switch.tools.ports`), CPU and memory of processes, statistics, and the
two HTTP servers of the bench (the webhook receiver and the TwiML app), each on its own thread and event loop
so that their timestamps never wait for the bench's own loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvloop
from aiohttp import web

from switch.tools.ports import HOST, free_port_block, port_free

__all__ = ["HOST", "free_port_block", "port_free"]  # re-exported for the bench modules

SIPP = shutil.which("sipp") or "/usr/bin/sipp"
CLK_TCK = os.sysconf("SC_CLK_TCK")
NUMBER = "+15550100"  # answered and held: no voice_url
TWIML_NUMBER = "+15550101"  # voice_url on the bench's TwiML app
SLOTS_PER_WORKER = 4
CALLBACK_EVENTS = ("initiated", "ringing", "answered", "completed")

Json = dict[str, Any]


# -- processes ------------------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """utime + stime of process `pid` (all its threads), in seconds."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()  # fields[0] is field 3 (state)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def sched_seconds(pid: int) -> float:
    """CPU time of every live thread of `pid` from /proc/PID/task/*/schedstat (nanosecond resolution)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def cpu_or_none(pid: int) -> tuple[float, float] | None:
    """(utime+stime, schedstat) seconds of `pid`, or None once the process is gone."""
    try:
        return cpu_seconds(pid), sched_seconds(pid)
    except (OSError, ValueError, IndexError):
        return None


async def idle_cpu_rates(pids: dict[str, int], seconds: float) -> dict[str, float]:
    """CPU seconds per second each process burns with no call up (pjsua's poll loop, timers)."""
    before = {name: sched_seconds(pid) for name, pid in pids.items()}
    started = time.monotonic()
    await asyncio.sleep(seconds)
    elapsed = time.monotonic() - started
    return {name: (sched_seconds(pid) - before[name]) / elapsed for name, pid in pids.items()}


def memory_mb(pid: int) -> Json:
    """Resident set size now and at its peak (VmRSS, VmHWM), in MB."""
    values: Json = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values["rss_mb" if key == "VmRSS" else "rss_peak_mb"] = round(int(rest.split()[0]) / 1024, 1)
    return values


async def stop_process(proc: asyncio.subprocess.Process, sig: int, grace: float) -> int:
    """Send `sig`, wait `grace` seconds, then SIGKILL; returns the exit status."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    return int(proc.returncode or 0)


async def kill_process(proc: asyncio.subprocess.Process | None) -> None:
    """Make sure `proc` is gone (SIGKILL if it still runs)."""
    if proc is not None and proc.returncode is None:
        await stop_process(proc, signal.SIGKILL, 1.0)


# -- statistics -----------------------------------------------------------------------------------------
def _quantile(ordered: list[float], q: float) -> float:
    """Linear-interpolated quantile of an ascending list."""
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summarize(values: Iterable[float]) -> Json:
    """n, p50, p90, p99, mean, min, max of `values` (milliseconds), rounded to microseconds."""
    ordered = sorted(values)
    if not ordered:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "mean": None, "min": None, "max": None}
    stats = {"p50": _quantile(ordered, 0.5), "p90": _quantile(ordered, 0.9), "p99": _quantile(ordered, 0.99),
             "mean": sum(ordered) / len(ordered), "min": ordered[0], "max": ordered[-1]}
    return {"n": len(ordered), **{k: round(v, 3) for k, v in stats.items()}}


def per_call(seconds: float, calls: int) -> float | None:
    return round(seconds / calls, 6) if calls > 0 else None


def ratio(value: float | None, reference: float | None) -> float | None:
    return round(value / reference, 2) if value is not None and reference else None


def diff(value: float | None, reference: float | None) -> float | None:
    return None if value is None or reference is None else round(value - reference, 3)


async def wait_until(predicate: Callable[[], bool], timeout: float, period: float = 0.02) -> bool:
    """Poll `predicate` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(period)
    return True


class JsonEvents:
    """The JSON lines a child process prints on stdout (one per event: ``{"event": name, ...}``), collected
    as they come by a reader task."""

    def __init__(self) -> None:
        self.events: list[Json] = []
        self._reader: asyncio.Task[None] | None = None

    def follow(self, stdout: asyncio.StreamReader | None) -> None:
        assert stdout is not None
        self._reader = asyncio.get_running_loop().create_task(self._read(stdout))

    async def _read(self, stdout: asyncio.StreamReader) -> None:
        while line := await stdout.readline():
            with contextlib.suppress(ValueError):
                self.events.append(json.loads(line))

    @property
    def closed(self) -> bool:
        """The process closed its stdout (it exited): no more events will come."""
        return self._reader is not None and self._reader.done()

    def first(self, name: str) -> Json | None:
        return next((e for e in self.events if e.get("event") == name), None)

    async def drain(self, timeout: float = 2.0) -> None:
        """After the process ended: wait for the reader to take the last lines."""
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._reader, timeout)


# -- an aiohttp server on its own thread ------------------------------------------------------------------
class ThreadedServer:
    """One catch-all aiohttp handler served on 127.0.0.1 from a thread with its own event loop (over TLS when
    `ssl_context` is set).

    The loop is uvloop's, as the switch's own: the bench times callbacks and TwiML requests where the handler
    starts, and what the instrument's own loop adds is counted against the switch (callback latency p50, the
    median of 6 runs of 100 REST calls: ringing 2.22 ms on asyncio's loop, 2.16 on uvloop's)."""

    name = "bench-http"

    def __init__(self) -> None:
        self.port = 0
        self.ssl_context: ssl.SSLContext | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.port}{path}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError

    def start(self) -> Any:
        """Serve on `port` (a free one when it is 0); returns self once the server listens."""
        ready = threading.Event()
        self.port = self.port or free_port_block(1)

        def run() -> None:
            loop = uvloop.new_event_loop()
            self._loop = loop
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self.handle)
            runner = web.AppRunner(app, access_log=None)
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.TCPSite(runner, HOST, self.port, ssl_context=self.ssl_context).start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True, name=self.name)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError(f"{self.name} did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)


# -- the webhook receiver ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Hook:
    """One status callback as received: wall-clock arrival time, path and the fields we use."""

    t: float
    path: str
    sid: str
    status: str
    from_: str
    parent_sid: str = ""


Listener = Callable[[Hook], None]


class WebhookReceiver(ThreadedServer):
    """Status callbacks.  `t` is taken when the handler starts (request line and headers in), before the
    body is read."""

    name = "bench-webhooks"

    def __init__(self) -> None:
        super().__init__()
        self.hooks: list[Hook] = []
        self.listeners: dict[str, Listener] = {}
        self._lock = threading.Lock()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        arrived = time.time()
        form = await request.post()
        hook = Hook(arrived, request.path, str(form.get("CallSid", "")), str(form.get("CallStatus", "")),
                    str(form.get("From", "")), str(form.get("ParentCallSid", "")))
        with self._lock:
            self.hooks.append(hook)
            listener = self.listeners.get(hook.path)
        if listener is not None:
            listener(hook)
        return web.Response(status=204)

    def select(self, path: str, status: str | None = None) -> list[Hook]:
        with self._lock:
            return [h for h in self.hooks if h.path == path and (status is None or h.status == status)]

    def count(self, path: str, status: str | None = None) -> int:
        return len(self.select(path, status))


# -- the TwiML app -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fetch:
    """One TwiML request as the app saw it: handler start and response fully written (wall clock)."""

    t_request: float
    t_response: float
    path: str
    sid: str
    from_: str

    @property
    def app_ms(self) -> float:
        return (self.t_response - self.t_request) * 1000


class TwimlApp(ThreadedServer):
    """Serves TwiML documents and WAV files registered by path; records every TwiML request.

    The app's own time for a document is from the handler's start (headers in) to the end of writing the
    response (`write_eof`), so it holds everything the app does, and nothing the switch does.  WAV files
    are served with `Cache-Control: max-age=3600`, so the switch's audio cache fetches each once.
    """

    name = "bench-twiml-app"

    def __init__(self) -> None:
        super().__init__()
        self.documents: dict[str, str] = {}
        self.files: dict[str, bytes] = {}
        self.fetches: list[Fetch] = []
        self._lock = threading.Lock()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        arrived = time.time()
        if request.path in self.files:
            return web.Response(body=self.files[request.path], content_type="audio/wav",
                                headers={"Cache-Control": "max-age=3600"})
        document = self.documents.get(request.path)
        if document is None:
            return web.Response(status=404)
        form = await request.post() if request.method == "POST" else request.query
        body = document.encode()
        response = web.StreamResponse(headers={"Content-Type": "text/xml; charset=utf-8"})
        response.content_length = len(body)
        await response.prepare(request)
        await response.write(body)
        await response.write_eof()
        fetch = Fetch(arrived, time.time(), request.path, str(form.get("CallSid", "")), str(form.get("From", "")))
        with self._lock:
            self.fetches.append(fetch)
        return response

    def select(self, path: str) -> list[Fetch]:
        with self._lock:
            return [f for f in self.fetches if f.path == path]

    def count(self, path: str) -> int:
        return len(self.select(path))
