"""End-to-end harness: the switch as a real `softswitch serve` process and an HTTP app that records webhooks.

Everything listens on 127.0.0.1 with ports chosen so parallel runs do not collide.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import soundfile as sf
from aiohttp import web
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from media.tones import sine
from switch.tools.bench.common import ThreadedServer
from switch.tools.ports import free_port_block, free_tcp_port
from switch.workers.edge import stop_stale_edge
from switch.workers.edge_config import EdgeFiles

ACCOUNT_SID = "AC" + "5" * 32
AUTH_TOKEN = "f" * 32


@dataclass
class Hook:
    """One request the webhook sink received."""

    method: str
    url: str
    path: str
    params: dict[str, str]
    signature: str | None
    received: float


class WebhookSink(ThreadedServer):
    """An aiohttp app in a background thread recording every request; answers with `responses[path]`.

    Its port is chosen at construction, so a sink not started yet is a URL that refuses connections.
    """

    name = "webhook-sink"

    def __init__(self) -> None:
        super().__init__()
        self.port = free_tcp_port()
        self.hooks: list[Hook] = []
        # path -> callable(hook) returning (status, body, content type); a bytes body is sent as is
        self.responses: dict[str, Callable[[Hook], tuple[int, str | bytes, str]]] = {}
        self.delays: dict[str, float] = {}  # path -> seconds to wait before answering
        self._cond = threading.Condition()

    async def handle(self, request: web.Request) -> web.Response:
        form = await request.post() if request.method == "POST" else request.query
        hook = Hook(request.method, str(request.url), request.path, {k: str(v) for k, v in form.items()},
                    request.headers.get("X-Twilio-Signature"), time.time())
        with self._cond:
            self.hooks.append(hook)
            self._cond.notify_all()
        delay = self.delays.get(request.path)
        if delay:
            await asyncio.sleep(delay)
        responder = self.responses.get(request.path)
        if responder is None:
            return web.Response(status=204)
        status, body, ctype = responder(hook)
        if isinstance(body, bytes):
            return web.Response(status=status, body=body, content_type=ctype)
        return web.Response(status=status, text=body, content_type=ctype)

    def twiml(self, path: str, document: str) -> str:
        """Serve `document` as TwiML at `path`; returns its URL."""
        self.responses[path] = lambda _hook: (200, document, "text/xml")
        return self.url(path)

    def tone(self, path: str, hz: float, seconds: float = 1.0, rate: int = 16000) -> str:
        """Serve a WAV of a `hz` sine (`seconds` long, at `rate`) at `path`; returns its URL."""
        data = io.BytesIO()
        sf.write(data, sine(hz, seconds, rate=rate), rate, format="WAV", subtype="PCM_16")
        body = data.getvalue()
        self.responses[path] = lambda _hook: (200, body, "audio/wav")
        return self.url(path)

    def start(self) -> WebhookSink:
        super().start()
        return self

    def for_path(self, path: str) -> list[Hook]:
        with self._cond:
            return [h for h in self.hooks if h.path == path]

    def wait_for(self, predicate: Callable[[list[Hook]], bool], timeout: float = 15.0) -> list[Hook]:
        """Block until `predicate(hooks)` holds; raise AssertionError with what arrived otherwise."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.hooks):
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(h.path, h.params.get("CallStatus")) for h in self.hooks]
                    raise AssertionError(f"webhooks did not arrive in {timeout} s; got {seen}")
                self._cond.wait(left)
            return list(self.hooks)

    def statuses(self, path: str, call_sid: str) -> list[str]:
        return [h.params["CallStatus"] for h in self.for_path(path) if h.params.get("CallSid") == call_sid]

    def wait_statuses(self, path: str, call_sid: str, count: int, timeout: float = 15.0) -> list[Hook]:
        self.wait_for(lambda hooks: len([h for h in hooks if h.path == path
                                         and h.params.get("CallSid") == call_sid]) >= count, timeout)
        return [h for h in self.for_path(path) if h.params.get("CallSid") == call_sid]

    @staticmethod
    def valid(hook: Hook, token: str = AUTH_TOKEN) -> bool:
        validator = RequestValidator(token)
        if hook.method == "GET":
            return bool(validator.validate(hook.url, {}, hook.signature or ""))
        return bool(validator.validate(hook.url, hook.params, hook.signature or ""))


@dataclass
class SwitchProcess:
    """`softswitch serve` in a subprocess, configured through a TOML file in `workdir`."""

    workdir: Path
    workers: int = 1
    trunks: list[dict[str, Any]] = field(default_factory=list)
    numbers: list[dict[str, Any]] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    edge: dict[str, Any] | None = None  # [edge] keys: Kamailio on sip_port, the workers from sip_port + 1
    fetch_timeout: float = 15.0
    sip_trace: bool = False  # [server] sip_trace: each call's SIP ladder (Calls/{Sid}/SipTrace.json)
    drain_seconds: float = 0.0  # [server] drain_seconds: 0 hangs live calls up at once on SIGTERM
    http_port: int = field(default_factory=free_tcp_port)
    sip_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    args: list[str] = field(default_factory=list)  # more `softswitch serve` flags (--log-format json, ...)

    def __post_init__(self) -> None:
        if not self.sip_port:
            self.sip_port = free_port_block(self.workers + 1)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def sip_uri_host(self) -> str:
        return f"127.0.0.1:{self.sip_port}"

    def write_config(self) -> Path:
        lines = [
            "[server]",
            f'http = "127.0.0.1:{self.http_port}"',
            f'sip = "127.0.0.1:{self.sip_port}"',
            f"workers = {self.workers}",
            f"sip_trace = {'true' if self.sip_trace else 'false'}",
            f"drain_seconds = {self.drain_seconds}",
            f'data_dir = "{self.workdir / "data"}"',
            "[account]",
            f'sid = "{ACCOUNT_SID}"',
            f'auth_token = "{AUTH_TOKEN}"',
            "[twiml]",
            f"fetch_timeout = {self.fetch_timeout}",
            "[webhooks]",
            "timeout = 3",
            "retries = 2",
        ]
        if self.edge is None:  # worker 0 on the SIP address itself: these tests speak to the workers directly
            lines += ["[edge]", "enabled = false"]
        else:
            lines += ["[edge]", "enabled = true", f"worker_port = {self.sip_port + 1}"]
            lines += [f"{k} = {json.dumps(v)}" for k, v in self.edge.items()]
        for trunk in self.trunks:
            lines.append("[[trunks]]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in trunk.items()]
        for number in self.numbers:
            lines.append("[[numbers]]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in number.items()]
        path = self.workdir / "softswitch.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self, timeout: float = 30.0) -> SwitchProcess:
        config = self.write_config()
        self.log_path = self.workdir / f"switch-{int(time.time() * 1000)}.log"
        env = {**os.environ, **self.extra_env}
        env.pop("SOFTSWITCH_ACCOUNT_SID", None)
        env.pop("SOFTSWITCH_AUTH_TOKEN", None)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "switch", "serve", "--config", str(config), *self.args],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            )
        self.wait_healthy(timeout)
        return self

    def healthz(self) -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(self.base_url + "/healthz", timeout=2) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def wait_healthy(self, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"switch exited with {self.proc.returncode}:\n{self.log()}")
            try:
                status, body = self.healthz()
                last = body
                if status == 200:
                    return body
            except (OSError, ValueError) as exc:
                last = exc
            time.sleep(0.1)
        raise RuntimeError(f"switch not healthy in {timeout} s: {last}\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def get(self, url: str, timeout: float = 10.0) -> bytes:
        """GET a URL of the switch's REST API (absolute, or a path) with the account's credentials."""
        request = urllib.request.Request(url if "://" in url else self.base_url + url)
        token = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return bytes(resp.read())

    def recording(self, url: str) -> tuple[Any, int]:
        """A recording's WAV (`RecordingUrl` + .wav) as (int16 frames x channels, sample rate)."""
        data, rate = sf.read(io.BytesIO(self.get(url + ".wav")), dtype="int16", always_2d=True)
        return data, int(rate)

    def client(self) -> Client:
        client = Client(ACCOUNT_SID, AUTH_TOKEN)
        client.api.base_url = self.base_url
        return client

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        # A clean stop removes the edge's pid file; a killed switch leaves its Kamailio running (as designed, for
        # the next start to replace): a test that is done with it must not leave it behind.
        stop_stale_edge(EdgeFiles(self.workdir / "data" / "edge"))
        return code


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll `predicate` (for state only reachable by polling, like the REST API) until true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
