"""The processes `softswitch bench` measures or talks to: the bare pjsua2 baseline (UAS or B2BUA), the switch
(`python -m switch serve` on a temporary config) and the lab phone."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from switch.tools.bench.common import HOST, Json, JsonEvents, free_port_block, stop_process, wait_until
from switch.workers.edge import stop_stale_edge
from switch.workers.edge_config import EdgeFiles


@dataclass
class Baseline:
    """`python -m switch.worker.baseline` on a free port: a bare UAS, or with `b2bua` a bare B2BUA to that URI."""

    workdir: Path
    b2bua: str | None = None
    port: int = 0
    proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def target(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def output(self) -> Path:
        return self.workdir / ("baseline.out" if self.b2bua is None else "baseline-b2bua.out")

    async def start(self) -> Baseline:
        self.port = free_port_block(1)
        extra = [] if self.b2bua is None else ["--b2bua", self.b2bua]
        with open(self.output, "wb") as stdout:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "switch.worker.baseline", "--sip", self.target, *extra,
                stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.STDOUT)
        ready = await wait_until(lambda: "baseline ready" in self.output.read_text(errors="replace")
                                 or self.proc is None or self.proc.returncode is not None, 15.0, 0.05)
        if not ready or self.proc.returncode is not None:
            raise RuntimeError(f"baseline did not start:\n{self.output.read_text(errors='replace')[-2000:]}")
        return self

    async def stop(self) -> None:
        if self.proc is not None:
            await stop_process(self.proc, signal.SIGTERM, 5.0)

    def crash_output(self) -> list[str]:
        text = self.output.read_text(errors="replace") if self.output.exists() else ""
        return [ln for ln in text.splitlines() if "Assertion" in ln or "Error" in ln][:5]


@dataclass
class SwitchUnderTest:
    """`python -m switch serve` with a temporary TOML config in `workdir`.

    `numbers` are the `[[numbers]]` entries (number, and optionally voice_url and status_callback).
    """

    workdir: Path
    workers: int
    numbers: list[dict[str, str]]
    account_sid: str = field(default_factory=lambda: "AC" + secrets.token_hex(16))
    auth_token: str = field(default_factory=lambda: secrets.token_hex(16))
    http_port: int = 0
    sip_port: int = 0
    proc: asyncio.subprocess.Process | None = None
    worker_pids: list[int] = field(default_factory=list)
    edge: bool = False  # Kamailio on sip_port, the workers from sip_port + 1
    max_cps: int = 1000  # [edge] max_cps when `edge`
    server: dict[str, Any] = field(default_factory=dict)  # more [server] keys (metrics = false, ...)
    env: dict[str, str] = field(default_factory=dict)  # more environment (SOFTSWITCH_ENGINE=wheel, ...)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    @property
    def calls_url(self) -> str:
        return f"{self.base_url}/2010-04-01/Accounts/{self.account_sid}/Calls.json"

    def call_url(self, sid: str) -> str:
        return f"{self.base_url}/2010-04-01/Accounts/{self.account_sid}/Calls/{sid}.json"

    def target(self, worker: int = 0) -> str:
        """Where SIP for worker `worker` goes (without the edge, worker 0 owns the configured address)."""
        return f"{HOST}:{self.sip_port + worker + (1 if self.edge else 0)}"

    @property
    def public_target(self) -> str:
        """The configured SIP address: Kamailio with `edge`, else worker 0."""
        return f"{HOST}:{self.sip_port}"

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
        # drain_seconds = 0: SIGTERM hangs up what a run left live at once (a 30 s drain outlived stop()'s
        # grace, and a switch killed then left its Kamailio running after the bench)
        server = {"drain_seconds": 0, **self.server}
        lines = ["[server]", f'http = "{HOST}:{self.http_port}"', f'sip = "{HOST}:{self.sip_port}"',
                 f"workers = {self.workers}", f'data_dir = "{self.workdir / "data"}"',
                 *(f"{key} = {json.dumps(value)}" for key, value in server.items()),
                 "[account]", f'sid = "{self.account_sid}"', f'auth_token = "{self.auth_token}"',
                 "[webhooks]", "timeout = 5", "retries = 1"]
        # Without `edge` the bench measures the workers themselves (worker 0 on the SIP address).
        lines += (["[edge]", "enabled = true", f"worker_port = {self.sip_port + 1}", f"max_cps = {self.max_cps}"]
                  if self.edge else ["[edge]", "enabled = false"])
        for number in self.numbers:
            lines.append("[[numbers]]")
            lines += [f"{key} = {json.dumps(value)}" for key, value in number.items()]
        path = self.workdir / "softswitch.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    async def start(self, session: aiohttp.ClientSession) -> SwitchUnderTest:
        self.http_port = free_port_block(1)
        self.sip_port = free_port_block(self.workers + 1)
        config = self._write_config()
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("SOFTSWITCH_")}, **self.env}
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
            code = await stop_process(self.proc, signal.SIGTERM, 15.0)
            if code == -signal.SIGKILL:  # killed before it stopped its edge: stop that too
                stop_stale_edge(EdgeFiles(self.workdir / "data" / "edge"))

    def pids(self, workers: list[int] | None = None) -> dict[str, int]:
        """Control plane and workers (all, or the indexes in `workers`) by name: control_plane, worker0..."""
        chosen = range(len(self.worker_pids)) if workers is None else workers
        return {"control_plane": self.pid, **{f"worker{i}": self.worker_pids[i] for i in chosen}}

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
        return {**counts, "messages": [{"count": n, "message": m[:300]} for m, n in top],
                "tracebacks_seen": _tracebacks(text)}


def _tracebacks(text: str, limit: int = 3) -> list[str]:
    """The first `limit` tracebacks of a log, each as the line before it, its innermost frame and the
    exception, so a report shows where the switch failed even after its log is gone."""
    lines = text.splitlines()
    found: list[str] = []
    for i, line in enumerate(lines):
        if not line.startswith("Traceback (most recent call last)") or len(found) >= limit:
            continue
        end = i + 1
        while end < len(lines) and (lines[end].startswith((" ", "\t")) or not lines[end].strip()):
            end += 1
        frames = [ln.strip() for ln in lines[i + 1:end] if ln.strip().startswith("File ")]
        context = lines[i - 1] if i > 0 else ""
        exception = lines[end] if end < len(lines) else ""
        found.append(" | ".join(part[:300] for part in (context, frames[-1] if frames else "", exception) if part))
    return found


class LabPhone(JsonEvents):
    """`python -m switch.worker.labphone` on a port the OS picks; its JSON events are read as they come."""

    def __init__(self, args: list[str], workdir: Path, max_seconds: float = 40.0) -> None:
        super().__init__()
        self.args = args
        self.workdir = workdir
        self.max_seconds = max_seconds
        self.sip = ""
        self.proc: asyncio.subprocess.Process | None = None

    def uri(self, user: str = "bench") -> str:
        return f"sip:{user}@{self.sip}"

    async def start(self) -> LabPhone:
        with open(self.workdir / "labphone.err", "wb") as err:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "switch.worker.labphone", "--sip", f"{HOST}:0",
                "--max-seconds", f"{self.max_seconds:g}", *self.args,
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        self.follow(self.proc.stdout)
        ready = await self.wait_for("ready", 15.0)
        if ready is None:
            raise RuntimeError("the lab phone did not start: "
                               + (self.workdir / "labphone.err").read_text(errors="replace")[-1000:])
        self.sip = str(ready["sip"])
        return self

    async def wait_for(self, name: str, timeout: float) -> Json | None:
        await wait_until(lambda: self.first(name) is not None, timeout)
        return self.first(name)

    async def stop(self) -> None:
        if self.proc is not None:
            await stop_process(self.proc, signal.SIGTERM, 5.0)
        await self.drain()
