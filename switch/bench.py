"""`softswitch bench`: the switch under sipp load on 127.0.0.1, measured next to a bare pjsua2 baseline.

Nothing in the report is asserted; every figure is measured in the run that writes it:

1. **Baseline** — `python -m switch.worker.baseline`, a bare pjsua2 UAS set up like a media worker,
   driven by sipp's built-in `uac` scenario at the same rate, call count and hold time as the switch.
   CPU is the utime+stime delta of the process (`/proc/PID/stat`) divided by the calls completed; RSS is
   `VmRSS`/`VmHWM` from `/proc/PID/status`.  The same rate ladder as the switch's gives its top rate.
2. **Switch** — `python -m switch serve` with a temporary config (1 worker, then `workers`), one
   `[[numbers]]` entry whose status callback points at a webhook receiver in this process, and the
   same sipp load calling that number.  CPU per call is (control plane + every worker) / calls, and the
   call-carrying worker 0 alone; both as ratios to the baseline.  Each fixed-rate run also gets a
   figure net of idle CPU (threads' schedstat time minus the rate measured over 2 s at rest).  Last,
   after the REST measurements below, the rate is stepped up (10, 20, 30 ... cps, hold time shrunk so
   the offered concurrency stays near 2 of worker 0's 4 slots) until a step is not clean, the ladder's
   top or the time budget; the highest clean rate is reported.  A step is clean when sipp counts every
   call successful, no measured process died, and the switch sent every call's `completed` callback,
   freed every call slot and restarted no worker.
3. **Callback latency** — REST-created calls to a sipp `uas` run with `-trace_msg`, whose message log
   timestamps every message to the microsecond (wall clock).  Latency is the time sipp wrote its
   180 / 200 (and its 200 to our BYE) to the time the receiver got the `ringing` / `in-progress` /
   `completed` callback.  Each call is hung up by a REST update `Status=completed` as soon as its
   `in-progress` callback arrives.
4. **API dial delay** — REST POST sent to the INVITE logged by sipp, from the same calls.  Post-dial
   delay (INVITE in -> INVITE out) needs `<Dial>`, so it is reported as null with the reason.
5. **Capacity** — `workers * 4` simultaneous REST calls answered by sipp, one more that must get
   HTTP 429, then all hung up.

Every load loop is bounded in calls and seconds; sipp gets `-timeout` and is killed if it overstays.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import os
import platform
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

SIPP = shutil.which("sipp") or "/usr/bin/sipp"
CLK_TCK = os.sysconf("SC_CLK_TCK")
HOST = "127.0.0.1"
NUMBER = "+15550100"
SLOTS_PER_WORKER = 4
IDLE_SECONDS = 2.0  # at rest before each fixed-rate run, for the idle-corrected CPU figures
TARGET_CONCURRENCY = 2.0  # offered calls in the hold phase during the rate ladder
RATE_LADDER = (10, 20, 30, 40, 50, 60, 80, 100, 120, 150, 200, 250, 300)
CALLBACK_EVENTS = ("initiated", "ringing", "answered", "completed")
PDD_REASON = ("post-dial delay (INVITE in -> INVITE out) needs <Dial>, which a later issue adds; "
              "not measured yet")

Json = dict[str, Any]


# -- small helpers ------------------------------------------------------------------------------------
_handed_out: set[int] = set()


def _port_free(port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                return False
    return True


def free_port_block(count: int) -> int:
    """A base port with base..base+count-1 free for UDP and TCP, never handed out before in this run."""
    for _ in range(500):
        base = random.randrange(21000, 39000, 2)
        block = range(base, base + count)
        if not _handed_out.intersection(block) and all(_port_free(p) for p in block):
            _handed_out.update(block)
            return base
    raise RuntimeError("no free port block on 127.0.0.1")


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


def _per_call(seconds: float, calls: int) -> float | None:
    return round(seconds / calls, 6) if calls > 0 else None


def _ratio(value: float | None, reference: float | None) -> float | None:
    return round(value / reference, 2) if value is not None and reference else None


async def _wait_until(predicate: Callable[[], bool], timeout: float, period: float = 0.02) -> bool:
    """Poll `predicate` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(period)
    return True


async def _stop_process(proc: asyncio.subprocess.Process, sig: int, grace: float) -> int:
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


# -- the webhook receiver ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Hook:
    """One status callback as received: wall-clock arrival time, path and the fields we use."""

    t: float
    path: str
    sid: str
    status: str
    from_: str


Listener = Callable[[Hook], None]


@dataclass
class WebhookReceiver:
    """An aiohttp server on its own thread and event loop, so its arrival times do not wait for ours.

    `t` is taken when the handler starts (the request line and headers are in), before the body is read.
    """

    port: int = 0
    hooks: list[Hook] = field(default_factory=list)
    listeners: dict[str, Listener] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.Response:
        arrived = time.time()
        form = await request.post()
        hook = Hook(arrived, request.path, str(form.get("CallSid", "")), str(form.get("CallStatus", "")),
                    str(form.get("From", "")))
        with self._lock:
            self.hooks.append(hook)
            listener = self.listeners.get(hook.path)
        if listener is not None:
            listener(hook)
        return web.Response(status=204)

    def start(self) -> WebhookReceiver:
        ready = threading.Event()
        self.port = free_port_block(1)

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            runner = web.AppRunner(app, access_log=None)
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.TCPSite(runner, HOST, self.port).start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True, name="bench-webhooks")
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("webhook receiver did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def select(self, path: str, status: str | None = None) -> list[Hook]:
        with self._lock:
            return [h for h in self.hooks if h.path == path and (status is None or h.status == status)]

    def count(self, path: str, status: str | None = None) -> int:
        return len(self.select(path, status))


# -- sipp -----------------------------------------------------------------------------------------------
_SCREEN_RE = {
    "successful": re.compile(r"^\s*Successful call\s*\|\s*\d+\s*\|\s*(\d+)", re.M),
    "failed": re.compile(r"^\s*Failed call\s*\|\s*\d+\s*\|\s*(\d+)", re.M),
    "created": re.compile(r"^\s*Outgoing calls created\s*\|\s*\d+\s*\|\s*(\d+)", re.M),
    "cps": re.compile(r"^\s*Call Rate\s*\|\s*[\d.]+ cps\s*\|\s*([\d.]+) cps", re.M),
}
_LAST_ERROR_RE = re.compile(r"^Last Error: (.*)$", re.M)


@dataclass
class SippRun:
    """What one sipp `uac` run reported (from its `-trace_screen` file and exit status)."""

    offered_cps: float
    calls: int
    hold_ms: int
    successful: int = 0
    failed: int = 0
    achieved_cps: float = 0.0
    returncode: int | None = None
    seconds: float = 0.0
    last_error: str = ""

    @property
    def clean(self) -> bool:
        return self.failed == 0 and self.successful == self.calls

    def as_json(self) -> Json:
        return {"offered_cps": self.offered_cps, "achieved_cps": self.achieved_cps, "calls": self.calls,
                "hold_ms": self.hold_ms, "successful": self.successful, "failed": self.failed,
                "sipp_exit": self.returncode, "seconds": round(self.seconds, 2),
                "last_error": self.last_error}


def _parse_screen(run: SippRun, text: str) -> None:
    """Fill `run` from the last cumulative counters of a sipp screen dump."""
    found: dict[str, str] = {}
    for key, pattern in _SCREEN_RE.items():
        matches = pattern.findall(text)
        if matches:
            found[key] = matches[-1]
    run.successful = int(found.get("successful", 0))
    run.failed = int(found.get("failed", 0))
    run.achieved_cps = float(found.get("cps", 0.0))
    errors = [e.strip() for e in _LAST_ERROR_RE.findall(text) if "epoll" not in e]  # epoll: sipp noise
    run.last_error = errors[-1] if errors else ""


async def run_sipp_uac(target: str, calls: int, rate: float, hold_ms: int, workdir: Path,
                       tag: str) -> SippRun:
    """sipp's built-in `uac` calling `NUMBER@target` `calls` times at `rate`/s, each held `hold_ms`."""
    port, media = free_port_block(1), free_port_block(4)
    screen = workdir / f"{tag}-screen.log"
    budget = calls / rate + hold_ms / 1000 + 15
    args = [SIPP, "-sn", "uac", "-s", NUMBER, "-i", HOST, "-p", str(port), "-mp", str(media),
            "-r", f"{rate:g}", "-m", str(calls), "-d", str(hold_ms), "-l", "1000",
            "-recv_timeout", "5000", "-timeout", f"{int(budget)}s", "-timeout_error",
            "-trace_screen", "-screen_file", str(screen), target]
    run = SippRun(offered_cps=rate, calls=calls, hold_ms=hold_ms)
    started = time.monotonic()
    with open(workdir / f"{tag}-sipp.err", "wb") as err:
        proc = await asyncio.create_subprocess_exec(*args, stdin=subprocess.DEVNULL,
                                                    stdout=subprocess.DEVNULL, stderr=err)
        try:
            await asyncio.wait_for(proc.wait(), budget + 10)
        except TimeoutError:
            await _stop_process(proc, signal.SIGKILL, 2)
        finally:
            if proc.returncode is None:  # cancelled: do not leave sipp running
                proc.kill()
    run.seconds = time.monotonic() - started
    run.returncode = proc.returncode
    if screen.exists():
        _parse_screen(run, screen.read_text(errors="replace"))
    if not run.last_error and run.returncode not in (0, 1):
        run.last_error = (workdir / f"{tag}-sipp.err").read_text(errors="replace").strip()[-300:]
    return run


@dataclass
class SippUas:
    """sipp's built-in `uas` (180 then 200 at once, waits for our BYE) for `calls` calls."""

    workdir: Path
    tag: str
    calls: int
    trace: bool = False
    port: int = 0
    proc: asyncio.subprocess.Process | None = None

    @property
    def message_log(self) -> Path:
        return self.workdir / f"{self.tag}-messages.log"

    async def start(self, budget: float) -> SippUas:
        self.port = free_port_block(1)
        media = free_port_block(4)
        args = [SIPP, "-sn", "uas", "-i", HOST, "-p", str(self.port), "-mp", str(media),
                "-m", str(self.calls), "-timeout", f"{int(budget)}s"]
        if self.trace:
            args += ["-trace_msg", "-message_file", str(self.message_log)]
        self.proc = await asyncio.create_subprocess_exec(*args, stdin=subprocess.DEVNULL,
                                                         stdout=subprocess.DEVNULL,
                                                         stderr=subprocess.DEVNULL)
        if not await _wait_until(lambda: not _port_free(self.port), 5.0):
            raise RuntimeError(f"sipp uas did not bind {HOST}:{self.port}")
        return self

    async def finish(self, timeout: float) -> int:
        """Wait for sipp to exit on its own (its `-m` calls done), then make it (SIGUSR1 = quit)."""
        assert self.proc is not None
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            await _stop_process(self.proc, signal.SIGUSR1, 2.0)
        return await _stop_process(self.proc, signal.SIGKILL, 1.0)

    async def kill(self) -> None:
        """Make sure sipp is gone (a no-op once `finish` has run)."""
        if self.proc is not None and self.proc.returncode is None:
            await _stop_process(self.proc, signal.SIGKILL, 1.0)


@dataclass(frozen=True)
class SipMessage:
    """One message from a sipp `-trace_msg` log."""

    t: float
    sent: bool
    first_line: str
    call_id: str
    cseq_method: str
    from_user: str


_STAMP_RE = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6})$")
_FROM_USER_RE = re.compile(r"sips?:([^@;>\s]+)@")


def parse_sipp_messages(text: str) -> list[SipMessage]:
    """Parse sipp's message log: a dashed line with a local-time, microsecond stamp before each message."""
    messages: list[SipMessage] = []
    blocks: list[tuple[float, list[str]]] = []
    for line in text.splitlines():
        stamp = _STAMP_RE.match(line)
        if stamp:
            when = dt.datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
            blocks.append((when, []))
        elif blocks:
            blocks[-1][1].append(line)
    for when, lines in blocks:
        content = [ln for ln in lines if ln.strip()]
        if len(content) < 2:
            continue
        headers: dict[str, str] = {}
        for line in content[2:]:
            name, sep, value = line.partition(":")
            if sep and name.strip().lower() not in headers:
                headers[name.strip().lower()] = value.strip()
        user = _FROM_USER_RE.search(headers.get("from", headers.get("f", "")))
        messages.append(SipMessage(t=when, sent=" sent" in content[0], first_line=content[1].strip(),
                                   call_id=headers.get("call-id", headers.get("i", "")),
                                   cseq_method=headers.get("cseq", "").split(" ")[-1],
                                   from_user=user.group(1) if user else ""))
    return messages


@dataclass
class PeerTimes:
    """Per call, when the peer (sipp uas) saw or sent each message of interest (wall clock, s)."""

    invite_in: float | None = None
    ringing_out: float | None = None
    ok_out: float | None = None
    bye_ok_out: float | None = None


def peer_times(messages: list[SipMessage]) -> dict[str, PeerTimes]:
    """From user -> first INVITE in, first 180 out, first 200/INVITE out, first 200/BYE out."""
    by_user: dict[str, PeerTimes] = {}
    for msg in messages:
        times = by_user.setdefault(msg.from_user, PeerTimes())
        if not msg.sent and msg.first_line.startswith("INVITE ") and times.invite_in is None:
            times.invite_in = msg.t
        elif msg.sent and msg.first_line.startswith("SIP/2.0 180") and times.ringing_out is None:
            times.ringing_out = msg.t
        elif msg.sent and msg.first_line.startswith("SIP/2.0 200") and msg.cseq_method == "INVITE":
            times.ok_out = times.ok_out or msg.t
        elif msg.sent and msg.first_line.startswith("SIP/2.0 200") and msg.cseq_method == "BYE":
            times.bye_ok_out = times.bye_ok_out or msg.t
    return by_user


# -- the processes under test ------------------------------------------------------------------------
@dataclass
class Baseline:
    """`python -m switch.worker.baseline` on a free port."""

    workdir: Path
    port: int = 0
    proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def target(self) -> str:
        return f"{HOST}:{self.port}"

    async def start(self) -> Baseline:
        self.port = free_port_block(1)
        out = self.workdir / "baseline.out"
        with open(out, "wb") as stdout:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "switch.worker.baseline", "--sip", self.target,
                stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.STDOUT)
        ready = await _wait_until(lambda: "baseline ready" in out.read_text(errors="replace")
                                  or self.proc is None or self.proc.returncode is not None, 15.0, 0.05)
        if not ready or self.proc.returncode is not None:
            raise RuntimeError(f"baseline did not start:\n{out.read_text(errors='replace')[-2000:]}")
        return self

    async def stop(self) -> None:
        if self.proc is not None:
            await _stop_process(self.proc, signal.SIGTERM, 5.0)


@dataclass
class SwitchUnderTest:
    """`python -m switch serve` with a temporary TOML config in `workdir`."""

    workdir: Path
    workers: int
    status_callback: str
    account_sid: str = field(default_factory=lambda: "AC" + secrets.token_hex(16))
    auth_token: str = field(default_factory=lambda: secrets.token_hex(16))
    http_port: int = 0
    sip_port: int = 0
    proc: asyncio.subprocess.Process | None = None
    worker_pids: list[int] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    @property
    def calls_url(self) -> str:
        return f"{self.base_url}/2010-04-01/Accounts/{self.account_sid}/Calls.json"

    def call_url(self, sid: str) -> str:
        return f"{self.base_url}/2010-04-01/Accounts/{self.account_sid}/Calls/{sid}.json"

    @property
    def auth_headers(self) -> dict[str, str]:
        token = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    @property
    def log_path(self) -> Path:
        return self.workdir / "switch.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _write_config(self) -> Path:
        lines = ["[server]", f'http = "{HOST}:{self.http_port}"', f'sip = "{HOST}:{self.sip_port}"',
                 f"workers = {self.workers}", f'data_dir = "{self.workdir / "data"}"',
                 "[account]", f'sid = "{self.account_sid}"', f'auth_token = "{self.auth_token}"',
                 "[webhooks]", "timeout = 5", "retries = 1",
                 "[[numbers]]", f'number = "{NUMBER}"', f'status_callback = "{self.status_callback}"']
        path = self.workdir / "softswitch.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    async def start(self, session: aiohttp.ClientSession) -> SwitchUnderTest:
        self.http_port = free_port_block(1)
        self.sip_port = free_port_block(self.workers)
        config = self._write_config()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOFTSWITCH_")}
        with open(self.log_path, "wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "switch", "serve", "--config", str(config),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.proc.returncode is None:
            health = await self.healthz(session)
            if health.get("status") == "ok":
                self.worker_pids = [int(w["pid"]) for w in health["workers"]]
                return self
            await asyncio.sleep(0.1)
        raise RuntimeError(f"switch did not become healthy:\n{self.log_tail()}")

    async def refresh(self, session: aiohttp.ClientSession, timeout: float = 15.0) -> None:
        """Wait until every worker is up (a crashed one is restarted by the switch); note their pids."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            health = await self.healthz(session)
            if health.get("status") == "ok" and health.get("in_use") == 0:
                self.worker_pids = [int(w["pid"]) for w in health["workers"]]
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"switch not healthy and idle within {timeout:g} s:\n{self.log_tail()}")

    async def healthz(self, session: aiohttp.ClientSession) -> Json:
        """GET /healthz, or {} while the switch is not answering."""
        try:
            timeout = aiohttp.ClientTimeout(total=2)
            async with session.get(self.base_url + "/healthz", timeout=timeout) as resp:
                body: Json = await resp.json()
                return body
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return {}

    async def stop(self) -> None:
        if self.proc is not None:
            await _stop_process(self.proc, signal.SIGTERM, 15.0)

    def pids(self) -> dict[str, int]:
        return {"control_plane": self.pid, **{f"worker{i}": pid for i, pid in enumerate(self.worker_pids)}}

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def log_findings(self, limit: int = 15) -> Json:
        """WARNING/ERROR lines and tracebacks in the switch's log, counted by message shape."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        shapes: dict[str, int] = {}
        counts = {"warnings": 0, "errors": 0, "tracebacks": text.count("Traceback (most recent call last)"),
                  "assertions": 0}
        for line in text.splitlines():
            level = ("warnings" if " WARNING " in line else "errors" if " ERROR " in line
                     else "assertions" if "Assertion `" in line else None)
            if level is None:
                continue
            counts[level] += 1
            message = line.split(" ", 2)[-1] if line[:4].isdigit() else line
            shape = re.sub(r"\b(CA|AC)[0-9a-f]{32}\b|\b\d+\b", "#", message)
            shapes[shape] = shapes.get(shape, 0) + 1
        top = sorted(shapes.items(), key=lambda kv: -kv[1])[:limit]
        return {**counts, "messages": [{"count": n, "message": m[:300]} for m, n in top]}


# -- load runs -----------------------------------------------------------------------------------------
@dataclass
class SwitchChecks:
    """The switch's side of one inbound load run: a `completed` callback per call, no slot left in use,
    no worker restarted."""

    switch: SwitchUnderTest
    receiver: WebhookReceiver
    session: aiohttp.ClientSession
    _before: int = 0
    _restarts: int = 0

    async def begin(self) -> None:
        self._before = self.receiver.count("/inbound")
        health = await self.switch.healthz(self.session)
        self._restarts = sum(int(w.get("restarts", 0)) for w in health.get("workers", []))

    async def end(self, run: SippRun) -> Json:
        expected = self._before + run.successful
        hooks_in = await _wait_until(lambda: self.receiver.count("/inbound") >= expected, 10.0)
        health: Json = {}
        for _ in range(50):
            health = await self.switch.healthz(self.session)
            if health.get("in_use") == 0 and health.get("live_calls") == 0:
                break
            await asyncio.sleep(0.1)
        statuses: dict[str, int] = {}
        for hook in self.receiver.select("/inbound")[self._before:]:
            statuses[hook.status] = statuses.get(hook.status, 0) + 1
        restarts = sum(int(w.get("restarts", 0)) for w in health.get("workers", [])) - self._restarts
        consistent = (hooks_in and statuses.get("completed", 0) == run.successful and restarts == 0
                      and health.get("in_use") == 0 and health.get("live_calls") == 0
                      and health.get("status") == "ok")
        return {"callbacks": statuses, "slots_in_use_after": health.get("in_use"),
                "live_calls_after": health.get("live_calls"), "healthy": health.get("status") == "ok",
                "worker_restarts": restarts, "consistent": consistent}


def _cpu_or_none(pid: int) -> tuple[float, float] | None:
    """(utime+stime, schedstat) seconds of `pid`, or None once the process is gone."""
    try:
        return cpu_seconds(pid), sched_seconds(pid)
    except (OSError, ValueError, IndexError):
        return None


async def measure_load(pids: dict[str, int], target: str, calls: int, rate: float, hold_ms: int,
                       workdir: Path, tag: str, checks: SwitchChecks | None = None,
                       idle: dict[str, float] | None = None) -> Json:
    """One sipp uac run against `target`, with the CPU each process in `pids` spent on it.

    The CPU window runs from just before sipp starts until sipp has exited and, for the switch, every
    callback is in and every slot is free, so deferred work (webhooks, store writes) is counted.  The
    figures are utime+stime deltas; with `idle` (CPU s/s at rest, see `idle_cpu_rates`) the report also
    has the schedstat delta minus what the processes would have burnt idle over the same window.  A
    process that dies during the run makes the run unclean and is listed in `died`.
    """
    if checks is not None:
        await checks.begin()
    before = {name: _cpu_or_none(pid) for name, pid in pids.items()}
    started = time.monotonic()
    run = await run_sipp_uac(target, calls, rate, hold_ms, workdir, tag)
    switch_side = await checks.end(run) if checks is not None else {}
    after = {name: _cpu_or_none(pid) for name, pid in pids.items()}
    window = time.monotonic() - started
    died = sorted(name for name in pids if before[name] is None or after[name] is None)
    cpu: dict[str, float] = {}
    sched: dict[str, float] = {}
    for name in pids:
        first, last = before[name], after[name]
        if first is not None and last is not None:
            cpu[name] = round(last[0] - first[0], 3)
            sched[name] = last[1] - first[1]
    memory: Json = {}
    for name, pid in pids.items():
        with contextlib.suppress(OSError):
            memory[name] = memory_mb(pid)
    clean = run.clean and not died and bool(switch_side.get("consistent", True))
    total = sum(cpu.values())
    result: Json = {
        "sipp": run.as_json(), "clean": clean, "died": died, "window_s": round(window, 2), "cpu_s": cpu,
        "cpu_s_total": round(total, 3), "cpu_s_per_call": None if died else _per_call(total, run.successful),
        "cpu_s_per_call_by_process": {name: _per_call(v, run.successful) for name, v in cpu.items()},
        "memory": memory, "switch_checks": switch_side or None}
    if idle is not None and not died:
        net = {name: max(0.0, sched[name] - idle.get(name, 0.0) * window) for name in pids}
        result["net_of_idle"] = {
            "idle_cpu_s_per_s": {name: round(v, 5) for name, v in idle.items()},
            "cpu_s_per_call": _per_call(sum(net.values()), run.successful),
            "cpu_s_per_call_by_process": {name: _per_call(v, run.successful) for name, v in net.items()}}
    return result


def _ladder_rates(max_rate: float) -> list[float]:
    return [float(r) for r in RATE_LADDER if r <= max_rate]


async def rate_ladder(pids: dict[str, int], target: str, workdir: Path, tag: str, hold_ms: int,
                      max_rate: float, step_seconds: float, budget_s: float,
                      checks: SwitchChecks | None = None) -> Json:
    """Step the offered rate up until a step is not clean, the ladder's top or the time budget."""
    steps: list[Json] = []
    best = 0.0
    stopped = "ladder top"
    deadline = time.monotonic() + budget_s
    for rate in _ladder_rates(max_rate):
        if time.monotonic() >= deadline:
            stopped = "time budget"
            break
        hold = min(hold_ms, int(1000 * TARGET_CONCURRENCY / rate))
        calls = max(20, round(rate * step_seconds))
        step = await measure_load(pids, target, calls, rate, hold, workdir, f"{tag}-{rate:g}cps", checks)
        sipp = step["sipp"]
        steps.append({"offered_cps": rate, "achieved_cps": sipp["achieved_cps"], "calls": calls,
                      "hold_ms": hold,
                      "successful": sipp["successful"], "failed": sipp["failed"], "clean": step["clean"],
                      "processes_died": step["died"],
                      "cpu_s_per_call": step["cpu_s_per_call"],
                      "cpu_s_per_call_by_process": step["cpu_s_per_call_by_process"],
                      "last_error": sipp["last_error"], "switch_checks": step["switch_checks"]})
        if not step["clean"]:
            died = f" ({', '.join(step['died'])} died)" if step["died"] else ""
            stopped = f"not clean at {rate:g} cps{died}"
            break
        best = rate
        await asyncio.sleep(0.3)
    return {"max_cps_zero_failures": best, "stopped_by": stopped, "steps": steps}


# -- REST-driven measurements --------------------------------------------------------------------------
def _call_form(to: str, from_: str, callback: str) -> list[tuple[str, str]]:
    form = [("To", to), ("From", from_), ("Twiml", "<Response/>"), ("StatusCallback", callback)]
    return form + [("StatusCallbackEvent", event) for event in CALLBACK_EVENTS]


async def place_call(session: aiohttp.ClientSession, switch: SwitchUnderTest,
                     form: list[tuple[str, str]]) -> tuple[int, Json, float, float]:
    """POST a call: (HTTP status, JSON body, wall time sent, wall time answered)."""
    sent = time.time()
    async with session.post(switch.calls_url, data=form, headers=switch.auth_headers) as resp:
        body: Json = await resp.json(content_type=None)
        return resp.status, body, sent, time.time()


async def hang_up(session: aiohttp.ClientSession, switch: SwitchUnderTest, sid: str) -> int:
    """REST update Status=completed; the HTTP status."""
    form = {"Status": "completed"}
    async with session.post(switch.call_url(sid), data=form, headers=switch.auth_headers) as resp:
        await resp.read()
        return resp.status


def _terminal_sids(receiver: WebhookReceiver, path: str) -> set[str]:
    terminal = {"completed", "busy", "no-answer", "failed", "canceled"}
    return {h.sid for h in receiver.select(path) if h.status in terminal}


async def callback_latency(switch: SwitchUnderTest, receiver: WebhookReceiver, session: aiohttp.ClientSession,
                           workdir: Path, calls: int, rate: float) -> Json:
    """REST calls to a tracing sipp uas; SIP message times against callback arrival and POST times."""
    uas = await SippUas(workdir, "latency", calls, trace=True).start(budget=calls / rate + 40)
    loop = asyncio.get_running_loop()
    hangups: list[asyncio.Task[int]] = []

    def start_hangup(sid: str) -> None:  # event loop
        hangups.append(loop.create_task(hang_up(session, switch, sid)))

    def on_hook(hook: Hook) -> None:  # receiver thread
        if hook.status == "in-progress":
            loop.call_soon_threadsafe(start_hangup, hook.sid)

    receiver.listeners["/latency"] = on_hook
    placed: dict[str, tuple[str, float, float]] = {}  # sid -> (From, POST sent, response in)
    refused: list[Json] = []
    to = f"sip:bob@{HOST}:{uas.port}"
    started = time.monotonic()
    try:
        for i in range(calls):
            await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
            from_ = f"+1555{1000000 + i}"
            status, body, sent, answered = await place_call(session, switch,
                                                            _call_form(to, from_, receiver.url("/latency")))
            if status == 201:
                placed[str(body["sid"])] = (from_, sent, answered)
            else:
                refused.append({"http": status, "body": body})
        await _wait_until(lambda: placed.keys() <= _terminal_sids(receiver, "/latency"), 20.0)
        codes = await asyncio.gather(*hangups)
        sipp_exit = await uas.finish(10.0)
    finally:
        receiver.listeners.pop("/latency", None)
        await uas.kill()
    text = uas.message_log.read_text(errors="replace") if uas.message_log.exists() else ""
    return _latency_report(receiver, placed, peer_times(parse_sipp_messages(text)), refused,
                           [c for c in codes if c != 200], sipp_exit)


def _latency_report(receiver: WebhookReceiver, placed: dict[str, tuple[str, float, float]],
                    peers: dict[str, PeerTimes], refused: list[Json], bad_hangups: list[int],
                    sipp_exit: int) -> Json:
    """Pair each call's peer-side SIP times with its callbacks and its REST POST."""
    arrivals: dict[str, dict[str, float]] = {}
    for hook in receiver.select("/latency"):
        arrivals.setdefault(hook.sid, {}).setdefault(hook.status, hook.t)
    pairs: dict[str, list[float]] = {"ringing": [], "answered": [], "completed": [], "initiated": []}
    dial: list[float] = []
    api: list[float] = []
    unmatched = 0
    for sid, (from_, sent, answered) in placed.items():
        peer, got = peers.get(from_), arrivals.get(sid, {})
        api.append((answered - sent) * 1000)
        if peer is None or peer.invite_in is None:
            unmatched += 1
            continue
        dial.append((peer.invite_in - sent) * 1000)
        for name, sip_time, status in (("initiated", peer.invite_in, "initiated"),
                                       ("ringing", peer.ringing_out, "ringing"),
                                       ("answered", peer.ok_out, "in-progress"),
                                       ("completed", peer.bye_ok_out, "completed")):
            if sip_time is not None and status in got:
                pairs[name].append((got[status] - sip_time) * 1000)
    latency: Json = {name: summarize(values) for name, values in pairs.items() if name != "initiated"}
    latency["initiated_vs_invite_at_peer"] = summarize(pairs["initiated"])
    latency["calls"] = len(placed)
    latency["timing_source"] = (
        "sipp uas -trace_msg -message_file: each message is stamped with the local wall-clock time to the "
        "microsecond when sipp logs it; callbacks are stamped with time.time() when the receiver's handler "
        "starts. ringing = 180 sent -> 'ringing' callback; answered = 200 (INVITE) sent -> 'in-progress'; "
        "completed = 200 (BYE) sent -> 'completed'.")
    dial_delay = summarize(dial)
    dial_delay["definition"] = "REST POST sent (client clock) -> INVITE logged by the sipp uas"
    dial_delay["api_response_ms"] = summarize(api)
    return {"callback_latency_ms": latency, "api_dial_delay_ms": dial_delay,
            "details": {"placed": len(placed), "refused": refused[:5], "refused_count": len(refused),
                        "unmatched_in_sipp_log": unmatched, "hangup_errors": bad_hangups[:10],
                        "sipp_uas_exit": sipp_exit}}


async def capacity_check(switch: SwitchUnderTest, receiver: WebhookReceiver, session: aiohttp.ClientSession,
                         workdir: Path) -> Json:
    """Fill every slot with answered REST calls, check one more gets 429, hang everything up."""
    slots = switch.workers * SLOTS_PER_WORKER
    before = await switch.healthz(session)
    uas = await SippUas(workdir, "capacity", slots + 1).start(budget=60)
    try:
        return await _fill_and_empty(switch, receiver, session, uas, slots, before)
    finally:
        await uas.kill()


async def _fill_and_empty(switch: SwitchUnderTest, receiver: WebhookReceiver, session: aiohttp.ClientSession,
                          uas: SippUas, slots: int, before: Json) -> Json:
    """The capacity check proper, against a running sipp uas."""
    to = f"sip:bob@{HOST}:{uas.port}"
    url = receiver.url("/capacity")
    results = await asyncio.gather(*(place_call(session, switch, _call_form(to, f"+1555{2000000 + i}", url))
                                     for i in range(slots)))
    accepted = [str(body["sid"]) for status, body, _, _ in results if status == 201]

    def answered() -> set[str]:
        return {h.sid for h in receiver.select("/capacity", "in-progress")}

    await _wait_until(lambda: set(accepted) <= answered(), 10.0)
    reached = len(set(accepted) & answered())
    full = await switch.healthz(session)
    extra_status, extra_body, _, _ = await place_call(session, switch,
                                                      _call_form(to, f"+1555{2000000 + slots}", url))
    if extra_status == 201:
        accepted.append(str(extra_body["sid"]))
    hangup_codes = await asyncio.gather(*(hang_up(session, switch, sid) for sid in accepted))
    ended = await _wait_until(lambda: set(accepted) <= _terminal_sids(receiver, "/capacity"), 10.0)
    after: Json = {}
    for _ in range(50):
        after = await switch.healthz(session)
        if after.get("in_use") == 0:
            break
        await asyncio.sleep(0.1)
    return {
        "workers": switch.workers, "slots_expected": slots, "capacity_reported": before.get("capacity"),
        "placed": slots, "accepted_201": sum(1 for r in results if r[0] == 201),
        "reached_in_progress": reached,
        "in_use_when_full": [w.get("in_use") for w in full.get("workers", [])],
        "extra_call_http_status": extra_status, "extra_call_error_code": extra_body.get("code"),
        "extra_refused_429": extra_status == 429,
        "hangup_http_statuses": sorted(set(hangup_codes)), "all_ended": ended,
        "in_use_after_hangup": after.get("in_use"),
    }


# -- phases --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchParams:
    """Everything a bench run is parameterised by."""

    calls: int
    rate: float
    workers: int
    hold_ms: int = 100
    max_rate: float = 300.0
    step_seconds: float = 2.5
    ladder_budget_s: float = 40.0
    latency_calls: int = 100
    latency_rate: float = 10.0

    def as_json(self) -> Json:
        return {"calls": self.calls, "rate_cps": self.rate, "hold_ms": self.hold_ms, "workers": self.workers,
                "ladder": {"rates_cps": _ladder_rates(self.max_rate), "seconds_per_step": self.step_seconds,
                           "budget_s": self.ladder_budget_s,
                           "hold_ms": f"min({self.hold_ms}, 1000 * {TARGET_CONCURRENCY:g} / rate)"},
                "latency_calls": self.latency_calls, "latency_rate_cps": self.latency_rate}


def _tool_version(args: list[str], pattern: str) -> str | None:
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(pattern, out, re.M)
    return match.group(1) if match else None


def machine_info() -> Json:
    """CPU count and model, kernel, Python, pjsua2 (asked of the baseline module) and sipp versions."""
    cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace") if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.M)
    return {
        "nproc": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)),
        "cpu_model": model.group(1) if model else platform.processor(), "kernel": platform.release(),
        "python": platform.python_version(),
        "pjsua2": _tool_version([sys.executable, "-m", "switch.worker.baseline", "--version"],
                                r"^pjsua2 (\S+)"),
        "sipp": _tool_version([SIPP, "-v"], r"(SIPp v\S+)"), "clk_tck": CLK_TCK,
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }


async def baseline_phase(workdir: Path, p: BenchParams) -> Json:
    """The bare pjsua2 UAS: the fixed-rate run, then its rate ladder."""
    workdir.mkdir(parents=True, exist_ok=True)
    base = await Baseline(workdir).start()
    try:
        pids = {"baseline": base.pid}
        idle = await idle_cpu_rates(pids, IDLE_SECONDS)
        run = await measure_load(pids, base.target, p.calls, p.rate, p.hold_ms, workdir, "fixed", idle=idle)
        ladder = await rate_ladder(pids, base.target, workdir, "ladder", p.hold_ms, p.max_rate,
                                   p.step_seconds, p.ladder_budget_s)
    finally:
        await base.stop()
    memory = run["memory"].get("baseline", {})
    output = (workdir / "baseline.out").read_text(errors="replace")
    return {"process": "python -m switch.worker.baseline", "cpu_s_per_call": run["cpu_s_per_call"],
            "cpu_s_per_call_net_of_idle": (run.get("net_of_idle") or {}).get("cpu_s_per_call"),
            "exit_status": base.proc.returncode if base.proc is not None else None,
            "crash_output": [ln for ln in output.splitlines() if "Assertion" in ln or "Error" in ln][:5],
            "rss_mb": memory.get("rss_mb"), "rss_peak_mb": memory.get("rss_peak_mb"),
            "max_cps_zero_failures": ladder["max_cps_zero_failures"], "run": run, "ladder": ladder}


def _switch_figures(run: Json, workers: int, baseline: Json | None) -> Json:
    """Per-call CPU (everything, control plane, worker 0) and RSS per process from one fixed run."""
    per = run["cpu_s_per_call_by_process"]
    base_cpu = baseline.get("cpu_s_per_call") if baseline else None
    base_net = baseline.get("cpu_s_per_call_net_of_idle") if baseline else None
    net = run.get("net_of_idle") or {}
    net_per = net.get("cpu_s_per_call_by_process", {})
    memory = run["memory"]
    return {
        "workers": workers, "cpu_s_per_call": run["cpu_s_per_call"],
        "control_plane_cpu_s_per_call": per.get("control_plane"), "worker_cpu_s_per_call": per.get("worker0"),
        "cpu_ratio_vs_baseline": _ratio(run["cpu_s_per_call"], base_cpu),
        "worker_cpu_ratio_vs_baseline": _ratio(per.get("worker0"), base_cpu),
        "net_of_idle": {
            "cpu_s_per_call": net.get("cpu_s_per_call"),
            "control_plane_cpu_s_per_call": net_per.get("control_plane"),
            "worker_cpu_s_per_call": net_per.get("worker0"),
            "cpu_ratio_vs_baseline": _ratio(net.get("cpu_s_per_call"), base_net),
            "worker_cpu_ratio_vs_baseline": _ratio(net_per.get("worker0"), base_net)},
        "rss_mb_per_worker": [memory.get(f"worker{i}", {}).get("rss_mb") for i in range(workers)],
        "rss_peak_mb_per_worker": [memory.get(f"worker{i}", {}).get("rss_peak_mb") for i in range(workers)],
        "rss_mb_control_plane": memory.get("control_plane", {}).get("rss_mb"),
    }


async def switch_phase(workdir: Path, receiver: WebhookReceiver, session: aiohttp.ClientSession,
                       p: BenchParams, workers: int, baseline: Json | None, full: bool) -> Json:
    """Start the switch with `workers` workers; the fixed-rate run, and with `full` everything else."""
    workdir.mkdir(parents=True, exist_ok=True)
    switch = SwitchUnderTest(workdir, workers, receiver.url("/inbound"))
    await switch.start(session)
    out: Json = {}
    try:
        checks = SwitchChecks(switch, receiver, session)
        target = f"{HOST}:{switch.sip_port}"
        await asyncio.sleep(0.5)  # let start-up CPU settle
        idle = await idle_cpu_rates(switch.pids(), IDLE_SECONDS)
        run = await measure_load(switch.pids(), target, p.calls, p.rate, p.hold_ms, workdir, "fixed", checks,
                                 idle)
        out = {**_switch_figures(run, workers, baseline), "run": run}
        if full:
            # The ladder goes last: it pushes until something breaks, and a broken worker is restarted.
            await switch.refresh(session)
            out["rest"] = await callback_latency(switch, receiver, session, workdir, p.latency_calls,
                                                 p.latency_rate)
            await switch.refresh(session)
            out["capacity"] = await capacity_check(switch, receiver, session, workdir)
            await switch.refresh(session)
            ladder = await rate_ladder(switch.pids(), target, workdir, "ladder", p.hold_ms, p.max_rate,
                                       p.step_seconds, p.ladder_budget_s, checks)
            out = {**out, "max_cps_zero_failures": ladder["max_cps_zero_failures"], "ladder": ladder}
    finally:
        await switch.stop()
        out["switch_log"] = switch.log_findings()
    return out


# -- report --------------------------------------------------------------------------------------------
def _le(value: Any, limit: float) -> bool | None:
    return None if value is None else bool(value <= limit)


def evaluate_targets(report: Json) -> Json:
    """Pass/fail of each target against the measured figures (None where nothing was measured)."""
    switch = report.get("switch") or {}
    latency = report.get("callback_latency_ms") or {}
    dial = report.get("api_dial_delay_ms") or {}
    capacity = report.get("capacity") or {}
    ladder_steps = (switch.get("ladder") or {}).get("steps", [])
    at_max = [s for s in ladder_steps if s["offered_cps"] == switch.get("max_cps_zero_failures")]
    fixed = [(switch.get("run") or {}).get("clean"), ((switch.get("single_worker") or {}).get("run") or {})
             .get("clean")]
    ringing = (latency.get("ringing") or {}).get("p50")
    answered = (latency.get("answered") or {}).get("p50")
    zero_failures = (bool(at_max) and all(s["clean"] for s in at_max) and all(f is True for f in fixed)
                     and capacity.get("reached_in_progress") == capacity.get("slots_expected")
                     and capacity.get("extra_refused_429") is True)
    return {
        "post_dial_delay": {"target": "added post-dial delay p50 <= 5 ms, p99 <= 20 ms", "p50": None,
                            "p99": None, "pass": None, "reason": PDD_REASON},
        "api_dial_delay_vs_pdd_limits": {
            "target": "same limits applied to REST POST -> INVITE (a proxy, not the PDD target)",
            "p50": dial.get("p50"), "p99": dial.get("p99"),
            "pass": (None if dial.get("p50") is None
                     else bool(_le(dial.get("p50"), 5.0) and _le(dial.get("p99"), 20.0)))},
        "callback_latency": {"target": "p50 <= 5 ms (ringing and answered)", "ringing_p50": ringing,
                             "answered_p50": answered,
                             "pass": None if ringing is None or answered is None
                             else bool(ringing <= 5.0 and answered <= 5.0)},
        "zero_failures_at_reported_capacity": {
            "target": "0 failed calls at the reported max cps, in the fixed-rate runs and when every slot "
                      "is busy (plus 429 for the call beyond)",
            "max_cps": switch.get("max_cps_zero_failures"), "pass": zero_failures if switch else None},
        "cpu_per_call": {"target": "switch CPU per call <= 2x baseline (control plane + workers)",
                         "ratio": switch.get("cpu_ratio_vs_baseline"),
                         "pass": _le(switch.get("cpu_ratio_vs_baseline"), 2.0)},
    }


def _fmt(value: Any, scale: float = 1.0, digits: int = 2) -> str:
    return "-" if value is None else f"{value * scale:.{digits}f}"


def _times(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"


def _step_text(step: Json) -> str:
    """`40:ok` or `60:FAIL(27 failed, worker0 died)` for one ladder step."""
    if step["clean"]:
        return f"{step['offered_cps']:g}:ok"
    why = [f"{step['failed']} failed"] if step["failed"] else []
    why += [f"{name} died" for name in step.get("processes_died", [])]
    checks = step.get("switch_checks") or {}
    if checks.get("worker_restarts"):
        why.append(f"{checks['worker_restarts']} worker restarts")
    return f"{step['offered_cps']:g}:FAIL({', '.join(why) or 'switch-side check'})"


def _ms_line(name: str, stats: Json | None) -> str:
    stats = stats or {}
    return (f"  {name:<26} p50 {_fmt(stats.get('p50'))} ms   p99 {_fmt(stats.get('p99'))} ms   "
            f"max {_fmt(stats.get('max'))} ms   (n={stats.get('n', 0)})")


def format_summary(report: Json) -> str:
    """The human-readable summary printed at the end of a run."""
    machine, params = report["machine"], report["parameters"]
    base = report.get("baseline") or {}
    switch = report.get("switch") or {}
    single = switch.get("single_worker") or {}
    lines = [f"softswitch bench: {machine['nproc']} CPUs ({machine['cpu_model']}), "
             f"Python {machine['python']}, pjsua2 {machine['pjsua2']}, {machine['sipp']}",
             f"inbound load: {params['calls']} calls at {params['rate_cps']:g} cps, "
             f"held {params['hold_ms']} ms"]
    runs = [("baseline", base.get("run")), ("switch 1 worker", single.get("run")),
            (f"switch {switch.get('workers', '?')} workers", switch.get("run"))]
    lines.append(f"  {'':<22}{'ok/failed':>12}{'CPU ms/call':>13}{'ratio':>8}{'worker ms/call':>16}"
                 f"{'ratio':>8}{'RSS MB/worker':>16}")
    for name, run in runs:
        if not run:
            lines.append(f"  {name:<22}{'(not run)':>12}")
            continue
        figures = base if name == "baseline" else (single if "1 worker" in name else switch)
        worker = None if name == "baseline" else figures.get("worker_cpu_s_per_call")
        rss = [base.get("rss_mb")] if name == "baseline" else figures.get("rss_mb_per_worker", [])
        ratio = None if name == "baseline" else figures.get("cpu_ratio_vs_baseline")
        wratio = None if name == "baseline" else figures.get("worker_cpu_ratio_vs_baseline")
        lines.append(f"  {name:<22}{run['sipp']['successful']:>6}/{run['sipp']['failed']:<5}"
                     f"{_fmt(run['cpu_s_per_call'], 1000):>13}{_times(ratio):>8}{_fmt(worker, 1000):>16}"
                     f"{_times(wratio):>8}{', '.join(_fmt(r, 1, 1) for r in rss):>16}")
    net_base = base.get("cpu_s_per_call_net_of_idle")
    net_parts = [f"baseline {_fmt(net_base, 1000)}"]
    for name, figures in (("1 worker", single), (f"{switch.get('workers', '?')} workers", switch)):
        net = figures.get("net_of_idle") or {}
        net_parts.append(f"switch {name} {_fmt(net.get('cpu_s_per_call'), 1000)} "
                         f"({_fmt(net.get('cpu_ratio_vs_baseline'))}x; worker "
                         f"{_fmt(net.get('worker_cpu_s_per_call'), 1000)}, "
                         f"{_fmt(net.get('worker_cpu_ratio_vs_baseline'))}x)")
    lines.append("  net of idle CPU (schedstat), ms/call: " + "; ".join(net_parts))
    if switch.get("rss_mb_control_plane") is not None:
        lines.append(f"  control plane RSS {switch['rss_mb_control_plane']} MB; "
                     f"control plane CPU {_fmt(switch.get('control_plane_cpu_s_per_call'), 1000)} ms/call")
    lines.append(f"max cps with 0 failures: baseline {_fmt(base.get('max_cps_zero_failures'), 1, 0)} "
                 f"({(base.get('ladder') or {}).get('stopped_by', '-')}), switch "
                 f"{_fmt(switch.get('max_cps_zero_failures'), 1, 0)} "
                 f"({(switch.get('ladder') or {}).get('stopped_by', '-')})")
    for name, ladder in (("baseline", base.get("ladder")), ("switch", switch.get("ladder"))):
        if ladder:
            lines.append(f"  {name} ladder: " + "  ".join(_step_text(step) for step in ladder["steps"]))
    latency = report.get("callback_latency_ms") or {}
    lines.append(f"callback latency, SIP message at the peer -> webhook received ({latency.get('calls', 0)} "
                 "REST calls):")
    for name in ("ringing", "answered", "completed"):
        lines.append(_ms_line(name, latency.get(name)))
    lines.append("API dial delay (REST POST -> INVITE at the peer):")
    lines.append(_ms_line("POST -> INVITE", report.get("api_dial_delay_ms")))
    lines.append(f"post-dial delay: not measured ({PDD_REASON})")
    cap = report.get("capacity") or {}
    if cap:
        lines.append(f"capacity: {cap['reached_in_progress']}/{cap['slots_expected']} calls in-progress "
                     "at once, "
                     f"call {cap['slots_expected'] + 1} -> HTTP {cap['extra_call_http_status']}; "
                     f"slots in use after hang-up: {cap['in_use_after_hangup']}")
    for name, figures in (("1 worker", single), (f"{switch.get('workers', '?')} workers", switch)):
        found = figures.get("switch_log") or {}
        if found.get("errors") or found.get("assertions") or found.get("tracebacks"):
            lines.append(f"switch log ({name}): {found['errors']} errors, {found['assertions']} assertion "
                         f"failures, {found['tracebacks']} tracebacks; most common:")
            lines += [f"  {m['count']}x {m['message'][:150]}" for m in found["messages"][:3]]
    lines.append("targets:")
    for name, target in report["targets"].items():
        verdict = {True: "PASS", False: "FAIL", None: "n/a "}[target["pass"]]
        lines.append(f"  [{verdict}] {name}: {target['target']}")
    for error in report["errors"]:
        lines.append(f"ERROR in {error['phase']}: {error['error']}")
    return "\n".join(lines)


async def _phase(report: Json, name: str, work: Awaitable[Json]) -> Json | None:
    """Run one phase; a failure is recorded in the report and the next phase still runs."""
    try:
        return await work
    except Exception as exc:  # the report says what broke; the other phases still measure
        report["errors"].append({"phase": name, "error": f"{type(exc).__name__}: {exc}"[:2000]})
        return None


async def _bench(p: BenchParams, workdir: Path) -> Json:
    started = time.monotonic()
    report: Json = {"machine": machine_info(), "parameters": p.as_json(), "baseline": None, "switch": None,
                    "callback_latency_ms": None, "api_dial_delay_ms": None, "post_dial_delay_ms": None,
                    "capacity": None, "notes": {"post_dial_delay_ms": PDD_REASON}, "errors": []}
    receiver = WebhookReceiver().start()
    try:
        async with aiohttp.ClientSession() as session:
            base = await _phase(report, "baseline", baseline_phase(workdir / "baseline", p))
            report["baseline"] = base
            single = await _phase(report, "switch-1-worker", switch_phase(
                workdir / "switch-1", receiver, session, p, 1, base, full=False))
            full = await _phase(report, f"switch-{p.workers}-workers", switch_phase(
                workdir / f"switch-{p.workers}", receiver, session, p, p.workers, base, full=True))
    finally:
        receiver.stop()
    if full is not None:
        rest = full.pop("rest", None) or {}
        report["capacity"] = full.pop("capacity", None)
        report["callback_latency_ms"] = rest.get("callback_latency_ms")
        report["api_dial_delay_ms"] = rest.get("api_dial_delay_ms")
        report["rest_calls"] = rest.get("details")
        report["switch"] = {"workers": p.workers, **full, "single_worker": single}
    elif single is not None:
        report["switch"] = {"workers": p.workers, "single_worker": single}
    report["targets"] = evaluate_targets(report)
    report["duration_s"] = round(time.monotonic() - started, 1)
    return report


def run_bench(output: Path, calls: int, rate: float, workers: int, *, hold_ms: int = 100,
              max_rate: float = 300.0, step_seconds: float = 2.5, ladder_budget_s: float = 40.0,
              latency_calls: int | None = None, latency_rate: float = 10.0,
              keep_dir: Path | None = None) -> int:
    """Measure, print the summary, write the JSON report to `output`.

    Exit status 0 when every phase ran (whatever the targets say; they are in the report), 1 when a phase
    could not run, 2 for unusable arguments.  `keep_dir` keeps sipp logs, configs and the switch's log.
    """
    if calls < 1 or rate <= 0 or workers < 1 or shutil.which(SIPP) is None:
        print("softswitch bench: need calls >= 1, rate > 0, workers >= 1 and sipp on PATH", file=sys.stderr)
        return 2
    params = BenchParams(calls=calls, rate=rate, workers=workers, hold_ms=hold_ms, max_rate=max_rate,
                         step_seconds=step_seconds, ladder_budget_s=ladder_budget_s,
                         latency_calls=latency_calls if latency_calls is not None else min(100, calls),
                         latency_rate=latency_rate)
    with tempfile.TemporaryDirectory(prefix="softswitch-bench-") as tmp:
        workdir = keep_dir if keep_dir is not None else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        report = asyncio.run(_bench(params, workdir))
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(format_summary(report), flush=True)
    print(f"report written to {output}", flush=True)
    return 1 if report["errors"] else 0
