"""Real SIP peers for end-to-end tests: a small harness around the ``sipp`` binary.

A :class:`SippPeer` runs one sipp process with one of the scenarios in ``tests/peers/sipp/``
(or any scenario file), bound to 127.0.0.1 only, bounded in calls (``-m``) and in
time (``-timeout``), so it always stops by itself.  Every SIP message it sends or
receives is logged (``-trace_msg``) and can be read back, in order, with
:meth:`SippPeer.messages`, to assert whole sequences::

    async with SippPeer("uas_busy.xml") as callee:
        ...  # make the switch dial sip:someone@127.0.0.1:{callee.port}
        assert await callee.wait(15) == 0
        assert callee.codes_sent() == [100, 180, 486]
        assert callee.methods_received() == ["INVITE", "ACK"]

sipp's exit code is surfaced as is: 0 when every call succeeded, 1 when at least one
failed, 255 on a fatal error or when the global timeout struck (``-timeout_error``),
254 when a socket could not be bound, 97 on an internal stop command, 99 when it
stopped without processing a call.

The message log's parsing and the digest check live in ``sipp_log``; the binary, scenarios, exit codes and free
ports in ``sipp_env``: both are re-exported here, so tests import everything from this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from tests.peers.sipp_env import (
    EXIT_FAILED as EXIT_FAILED,
    EXIT_FATAL as EXIT_FATAL,
    EXIT_INTERNAL_COMMAND as EXIT_INTERNAL_COMMAND,
    EXIT_NO_CALLS as EXIT_NO_CALLS,
    EXIT_OK as EXIT_OK,
    EXIT_SOCKET_BIND as EXIT_SOCKET_BIND,
    LOCALHOST,
    SCENARIO_DIR as SCENARIO_DIR,
    free_udp_port as free_udp_port,
    free_udp_port_pair as free_udp_port_pair,
    scenario_path as scenario_path,
    sipp_binary as sipp_binary,
    udp_port_bound,
)
from tests.peers.sipp_log import (
    Direction,
    SipMessage as SipMessage,
    digest_response_ok as digest_response_ok,
    parse_digest as parse_digest,
    parse_message_log as parse_message_log,
)


class SippError(RuntimeError):
    """sipp could not be started, or did not behave as a peer must."""


class SippPeer:
    """One sipp process playing a scenario on 127.0.0.1, bounded in calls and time.

    Server scenarios (``uas_*``) listen on :attr:`port`; client scenarios (``uac_*``)
    need ``remote`` (``"host:port"`` or ``(host, port)``) and place ``calls`` calls.
    Ports default to free ones picked by the OS.  Files (message log, error log,
    screen output) go to ``workdir`` (a fresh temporary directory by default).
    """

    def __init__(
        self,
        scenario: str | os.PathLike[str],
        *,
        remote: str | tuple[str, int] | None = None,
        port: int | None = None,
        media_port: int | None = None,
        calls: int = 1,
        service: str | None = None,
        variables: Mapping[str, str | int | float] | None = None,
        auth: tuple[str, str] | None = None,
        keywords: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        recv_timeout: float | None = None,
        rate: float | None = None,
        rtp_echo: bool = False,
        auto_answer: bool = True,
        extra_args: Sequence[str] = (),
        workdir: str | os.PathLike[str] | None = None,
        local_ip: str = LOCALHOST,
        name: str | None = None,
    ) -> None:
        """Describe the peer; nothing runs until :meth:`start`.

        Args:
            scenario: scenario file, or a file name in ``tests/peers/sipp/``.
            remote: where a UAC scenario sends its calls (``-s``/positional target).
            port: local SIP port (``-p``); a free one by default.
            media_port: local RTP port (``-mp``, ``[media_port]``); a free one by default.
            calls: stop after this many calls (``-m``).
            service: user part of the Request-URI for UAC scenarios (``-s``).
            variables: global scenario variables (``-set NAME VALUE``), e.g. ``{"pause_ms": 200}``.
            auth: ``(username, password)``: ``-au``/``-ap`` for answering challenges, and the
                ``auth_user``/``auth_pass`` keywords the ``uas_auth*`` scenarios check against.
            keywords: extra generic keywords (``-key NAME VALUE``, used as ``[NAME]``).
            timeout: global time limit in seconds (``-timeout`` with ``-timeout_error``).
            recv_timeout: per-receive limit in seconds (``-recv_timeout``), optional.
            rate: calls per second for UAC scenarios (``-r``), optional.
            rtp_echo: echo RTP received on the media port (``-rtp_echo``).
            auto_answer: answer INFO/NOTIFY/OPTIONS/UPDATE with 200 OK (``-aa``).
            extra_args: more sipp arguments, appended before the remote target.
            workdir: where the logs go; a new temporary directory when None.
            local_ip: address to bind and advertise (``-i``/``-mi``); 127.0.0.1.
            name: label used in file names and messages; the scenario's stem by default.
        """
        self.scenario = scenario_path(scenario)
        self.name = name or self.scenario.stem
        if isinstance(remote, tuple):
            remote = f"{remote[0]}:{remote[1]}"
        self.remote = remote
        self.local_ip = local_ip
        self.port = port if port is not None else free_udp_port()
        self.media_port = media_port if media_port is not None else free_udp_port_pair()
        self.control_port = free_udp_port()
        self.calls = calls
        self.service = service
        self.variables = dict(variables or {})
        self.auth = auth
        self.keywords = dict(keywords or {})
        self.timeout = timeout
        self.recv_timeout = recv_timeout
        self.rate = rate
        self.rtp_echo = rtp_echo
        self.auto_answer = auto_answer
        self.extra_args = list(extra_args)
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="sipp-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        stem = f"{self.name}-{self.port}"
        self.message_file = self.workdir / f"{stem}-msgs.log"
        self.error_file = self.workdir / f"{stem}-errors.log"
        self.screen_file = self.workdir / f"{stem}-screen.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._screen: IO[bytes] | None = None
        self._started_at: float | None = None

    # ------------------------------------------------------------------ command line

    @property
    def argv(self) -> list[str]:
        """The full sipp command line."""
        args = [
            sipp_binary(),
            "-sf", str(self.scenario),
            "-i", self.local_ip,
            "-mi", self.local_ip,
            "-bind_local",
            "-p", str(self.port),
            "-mp", str(self.media_port),
            "-ci", self.local_ip,
            "-cp", str(self.control_port),
            "-m", str(self.calls),
            "-nostdin",
            "-trace_msg", "-message_file", str(self.message_file),
            "-trace_err", "-error_file", str(self.error_file),
            "-timeout", f"{max(1, round(self.timeout * 1000))}ms",
            "-timeout_error",
        ]  # fmt: skip
        if self.recv_timeout is not None:
            args += ["-recv_timeout", f"{max(1, round(self.recv_timeout * 1000))}ms"]
        if self.rate is not None:
            args += ["-r", f"{self.rate:g}"]
        if self.service is not None:
            args += ["-s", self.service]
        if self.auth is not None:
            user, password = self.auth
            args += ["-au", user, "-ap", password, "-key", "auth_user", user, "-key", "auth_pass", password]
        for key, keyword in self.keywords.items():
            args += ["-key", key, keyword]
        for var, value in self.variables.items():
            args += ["-set", var, str(value)]
        if self.rtp_echo:
            args.append("-rtp_echo")
        if self.auto_answer:
            args.append("-aa")
        args += self.extra_args
        if self.remote is not None:
            args.append(self.remote)
        return args

    @property
    def uri_host(self) -> str:
        """``ip:port`` where this peer takes SIP, e.g. for ``sip:alice@{peer.uri_host}``."""
        return f"{self.local_ip}:{self.port}"

    # ------------------------------------------------------------------ lifecycle

    def start(self, ready_timeout: float = 5.0) -> Self:
        """Start sipp; for a server scenario, return once it listens on :attr:`port`.

        Raises:
            SippError: sipp is missing, exits at once, or does not bind its port in time.
        """
        if self._process is not None:
            raise SippError(f"{self.name}: already started")
        binary = sipp_binary()
        if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
            raise SippError(f"sipp not found at {binary!r} (install the sip-tester package)")
        for stale in (self.message_file, self.error_file):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        screen = open(self.screen_file, "wb")  # noqa: SIM115 - closed in _reap()
        self._screen = screen
        try:
            self._process = subprocess.Popen(
                self.argv,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=screen,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            screen.close()
            self._screen = None
            raise SippError(f"{self.name}: cannot start sipp: {exc}") from exc
        self._started_at = time.monotonic()
        self._wait_ready(ready_timeout)
        return self

    def _wait_ready(self, ready_timeout: float) -> None:
        deadline = time.monotonic() + ready_timeout
        while True:
            code = self.returncode
            if code is not None:
                self._reap()
                raise SippError(f"{self.name}: sipp exited at once with {code}\n{self.describe()}")
            bound = udp_port_bound(self.port, self.local_ip)
            if bound is None:
                time.sleep(0.2)  # no /proc: give it a moment
                return
            if bound:
                return
            if time.monotonic() > deadline:
                self.stop()
                raise SippError(f"{self.name}: sipp did not bind port {self.port}\n{self.describe()}")
            time.sleep(0.01)

    @property
    def running(self) -> bool:
        """True while the sipp process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        """sipp's exit code once it has ended (see the module docstring), else None."""
        if self._process is None:
            return None
        return self._process.poll()

    @property
    def pid(self) -> int | None:
        """The sipp process id, once started."""
        return self._process.pid if self._process is not None else None

    def _default_wait(self) -> float:
        return self.timeout + 5.0

    def wait_sync(self, timeout: float | None = None) -> int:
        """Block until sipp ends; return its exit code.

        Args:
            timeout: seconds to wait; by default the sipp timeout plus 5 s.

        Raises:
            TimeoutError: sipp still ran after ``timeout`` (it is stopped first).
        """
        process = self._require_started()
        limit = self._default_wait() if timeout is None else timeout
        try:
            code = process.wait(limit)
        except subprocess.TimeoutExpired:
            self.stop()
            raise TimeoutError(
                f"{self.name}: sipp still running after {limit:g}s\n{self.describe()}"
            ) from None
        self._reap()
        return code

    async def wait(self, timeout: float | None = None) -> int:
        """Wait (without blocking the event loop) until sipp ends; return its exit code.

        Args:
            timeout: seconds to wait; by default the sipp timeout plus 5 s.

        Raises:
            TimeoutError: sipp still ran after ``timeout`` (it is stopped first).
        """
        process = self._require_started()
        limit = self._default_wait() if timeout is None else timeout
        deadline = time.monotonic() + limit
        try:
            while process.poll() is None:
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(f"{self.name}: sipp still running after {limit:g}s\n{self.describe()}")
                await asyncio.sleep(0.02)
        except asyncio.CancelledError:
            self.stop()
            raise
        self._reap()
        code = process.returncode
        assert code is not None
        return code

    def stop(self, grace: float = 3.0) -> int | None:
        """End sipp if it still runs (SIGTERM, then SIGKILL after ``grace`` s); return its exit code."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                process.wait()
        self._reap()
        return process.returncode

    def _reap(self) -> None:
        screen = self._screen
        self._screen = None
        if screen is not None:
            with contextlib.suppress(OSError):
                screen.close()

    def _require_started(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise SippError(f"{self.name}: not started")
        return self._process

    def cleanup(self) -> None:
        """Stop sipp and remove the work directory if this peer created it."""
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    # ------------------------------------------------------------------ results

    def messages(self, include_retransmissions: bool = True) -> list[SipMessage]:
        """Every SIP message sipp sent or received so far, in order (from its message log)."""
        try:
            data = self.message_file.read_bytes()
        except FileNotFoundError:
            return []
        parsed = parse_message_log(data.decode("utf-8", "surrogateescape"))
        if include_retransmissions:
            return parsed
        return [message for message in parsed if not message.retransmission]

    def _select(self, direction: Direction, include_retransmissions: bool) -> Iterable[SipMessage]:
        return (m for m in self.messages(include_retransmissions) if m.direction == direction)

    def codes_sent(self, include_retransmissions: bool = False) -> list[int]:
        """Status codes of the responses sipp sent, in order, e.g. ``[100, 180, 486]``."""
        return [m.status_code for m in self._select("sent", include_retransmissions) if m.status_code]

    def codes_received(self, include_retransmissions: bool = False) -> list[int]:
        """Status codes of the responses sipp received, in order."""
        return [m.status_code for m in self._select("received", include_retransmissions) if m.status_code]

    def methods_sent(self, include_retransmissions: bool = False) -> list[str]:
        """Methods of the requests sipp sent, in order, e.g. ``["INVITE", "ACK", "BYE"]``."""
        return [m.method for m in self._select("sent", include_retransmissions) if m.method]

    def methods_received(self, include_retransmissions: bool = False) -> list[str]:
        """Methods of the requests sipp received, in order."""
        return [m.method for m in self._select("received", include_retransmissions) if m.method]

    def first(self, direction: Direction, what: str | int) -> SipMessage | None:
        """The first message going ``direction`` with method ``what`` (str) or status code (int)."""
        for message in self.messages(include_retransmissions=False):
            if message.direction != direction:
                continue
            if (isinstance(what, int) and message.status_code == what) or message.method == what:
                return message
        return None

    def verify_digest(self, username: str, password: str) -> bool:
        """Check the digest credentials of every request sipp received against a password.

        True when at least one received request carried ``Authorization`` or
        ``Proxy-Authorization`` and every such header holds a correct response for
        ``username``/``password`` (used with ``uas_auth407.xml``, whose digest sipp's
        ``<verifyauth>`` cannot check).
        """
        checked = 0
        for message in self.messages(include_retransmissions=False):
            if message.direction != "received" or message.method is None:
                continue
            for value in message.headers("Authorization") + message.headers("Proxy-Authorization"):
                checked += 1
                if not digest_response_ok(value, message.method, username, password, message.body):
                    return False
        return checked > 0

    def errors(self) -> str:
        """The text of sipp's error log (unexpected messages, failed checks), or ''."""
        try:
            return self.error_file.read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def screen(self) -> str:
        """What sipp printed (its statistics screens and fatal errors)."""
        try:
            return self.screen_file.read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def describe(self, tail: int = 40) -> str:
        """A report for assertion messages: command line, exit code, message flow, errors."""
        lines = [f"sipp {self.name}: exit={self.returncode} argv={' '.join(self.argv)}"]
        lines += [f"  {message}" for message in self.messages()]
        errors = self.errors().strip()
        if errors:
            lines.append("  errors:")
            lines += ["    " + line for line in errors.splitlines()[-tail:]]
        screen = [line for line in self.screen().splitlines() if line.strip()]
        if screen and self.returncode not in (None, EXIT_OK):
            lines.append("  screen:")
            lines += ["    " + line for line in screen[-tail:]]
        return "\n".join(lines)

    def __repr__(self) -> str:
        state = "running" if self.running else f"exit={self.returncode}"
        return f"SippPeer({self.scenario.name!r}, port={self.port}, {state})"
