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
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Literal, Self

from switch.tools.ports import free_port_block

__all__ = [
    "EXIT_FAILED",
    "EXIT_FATAL",
    "EXIT_INTERNAL_COMMAND",
    "EXIT_NO_CALLS",
    "EXIT_OK",
    "EXIT_SOCKET_BIND",
    "SCENARIO_DIR",
    "SipMessage",
    "SippError",
    "SippPeer",
    "digest_response_ok",
    "free_udp_port",
    "free_udp_port_pair",
    "parse_digest",
    "parse_message_log",
    "scenario_path",
    "sipp_binary",
]

#: Directory holding the project's scenario files.
SCENARIO_DIR = Path(__file__).resolve().parent / "sipp"

#: sipp exit codes (``sipp -h``, "Exit codes").
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERNAL_COMMAND = 97
EXIT_NO_CALLS = 99
EXIT_FATAL = 255  # -1: fatal error, or -timeout reached with -timeout_error
EXIT_SOCKET_BIND = 254  # -2: fatal error binding a socket

Direction = Literal["sent", "received"]

LOCALHOST = "127.0.0.1"

# "----------------------------------------------- 2026-11-24 13:12:09.706716"
_SEPARATOR_RE = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d[ \t]\d\d:\d\d:\d\d(?:\.\d+)?)[^\n]*\n", re.MULTILINE)
# "UDP message received [512] bytes :" / "UDP message sent (309 bytes):"
_ENTRY_HEAD_RE = re.compile(r"^(?P<transport>\S+) (?:control )?message (?P<direction>sent|received)\b")
_HEADER_END_RE = re.compile(r"\r?\n\r?\n")
_COMPACT_HEADERS = {
    "i": "call-id",
    "m": "contact",
    "e": "content-encoding",
    "l": "content-length",
    "c": "content-type",
    "f": "from",
    "s": "subject",
    "k": "supported",
    "t": "to",
    "v": "via",
}
_DIGEST_PARAM_RE = re.compile(r'([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


class SippError(RuntimeError):
    """sipp could not be started, or did not behave as a peer must."""


def sipp_binary() -> str:
    """Return the path of the sipp executable (``$SIPP``, then ``PATH``, then /usr/bin/sipp)."""
    env = os.environ.get("SIPP")
    if env:
        return env
    return shutil.which("sipp") or "/usr/bin/sipp"


def scenario_path(name: str | os.PathLike[str]) -> Path:
    """Resolve a scenario: an existing path as is, else a file name in :data:`SCENARIO_DIR`."""
    path = Path(name)
    if path.is_file():
        return path.resolve()
    candidate = SCENARIO_DIR / path
    if candidate.is_file():
        return candidate
    raise FileNotFoundError(f"no sipp scenario {name!r} (looked in {SCENARIO_DIR})")


def free_udp_port() -> int:
    """A port free for UDP (and TCP) on 127.0.0.1 right now, below the ephemeral range (`switch.tools.ports`), so
    that no port-0 bind of another process (a lab phone) can take it before sipp binds it."""
    return free_port_block(1)


def free_udp_port_pair() -> int:
    """An even port ``p`` with ``p`` .. ``p + 3`` free (sipp's audio and video RTP/RTCP ports)."""
    base = free_port_block(5)
    return base + base % 2


def _udp_port_bound(port: int, host: str = LOCALHOST) -> bool | None:
    """Whether some socket is bound to UDP ``host:port``, from /proc/net/udp (None: cannot tell).

    Reading /proc does not touch the port, so it cannot race with sipp's own bind().
    """
    wanted = {f"{port:04X}"}
    try:
        packed = socket.inet_aton(host)
    except OSError:
        return None
    local_hex = packed[::-1].hex().upper()
    try:
        with open("/proc/net/udp", encoding="ascii") as table:
            next(table, None)
            for line in table:
                fields = line.split()
                if len(fields) < 2 or ":" not in fields[1]:
                    continue
                addr, port_hex = fields[1].split(":", 1)
                if port_hex in wanted and addr in (local_hex, "00000000"):
                    return True
    except OSError:
        return None
    return False


@dataclass(frozen=True)
class SipMessage:
    """One SIP message from sipp's message log, as sipp sent or received it."""

    direction: Direction
    """'sent' or 'received', from sipp's point of view."""
    timestamp: float
    """Seconds since the epoch, from the log entry's header line (sipp writes local time)."""
    transport: str
    """Transport named by sipp, e.g. 'UDP'."""
    raw: str
    """The message text as logged (CRLF line ends preserved)."""
    retransmission: bool = False
    """True when an identical message already went the same way (a retransmission)."""

    @property
    def first_line(self) -> str:
        """The start line, e.g. 'INVITE sip:bob@127.0.0.1:5080 SIP/2.0' or 'SIP/2.0 180 Ringing'."""
        return self.raw.split("\n", 1)[0].rstrip("\r")

    @property
    def is_response(self) -> bool:
        """True for a response (start line 'SIP/2.0 <code> <reason>')."""
        return self.first_line.startswith("SIP/")

    @property
    def is_request(self) -> bool:
        """True for a request."""
        return not self.is_response

    @property
    def status_code(self) -> int | None:
        """The response code, or None for a request."""
        if not self.is_response:
            return None
        parts = self.first_line.split(maxsplit=2)
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None

    @property
    def reason(self) -> str | None:
        """The response's reason phrase, or None for a request."""
        if not self.is_response:
            return None
        parts = self.first_line.split(maxsplit=2)
        return parts[2] if len(parts) > 2 else ""

    @property
    def method(self) -> str | None:
        """The request method, or None for a response (see :attr:`cseq_method` for those)."""
        if self.is_response:
            return None
        return self.first_line.split(maxsplit=1)[0]

    @property
    def request_uri(self) -> str | None:
        """The Request-URI, or None for a response."""
        if self.is_response:
            return None
        parts = self.first_line.split()
        return parts[1] if len(parts) > 1 else None

    @property
    def cseq_method(self) -> str | None:
        """The method named in CSeq (the request a response answers)."""
        cseq = self.header("CSeq")
        if not cseq:
            return None
        parts = cseq.split()
        return parts[1] if len(parts) > 1 else None

    @property
    def call_id(self) -> str | None:
        """The Call-ID header value."""
        return self.header("Call-ID")

    def _split(self) -> tuple[list[str], str]:
        match = _HEADER_END_RE.search(self.raw)
        if match is None:
            head, body = self.raw, ""
        else:
            head, body = self.raw[: match.start()], self.raw[match.end() :]
        lines = head.replace("\r\n", "\n").split("\n")[1:]
        headers: list[str] = []
        for line in lines:
            if line[:1] in (" ", "\t") and headers:
                headers[-1] += " " + line.strip()
            elif line:
                headers.append(line)
        return headers, body

    def headers(self, name: str) -> list[str]:
        """All values of header ``name`` (case-insensitive, compact forms understood), in order."""
        wanted = name.strip().rstrip(":").lower()
        values: list[str] = []
        for line in self._split()[0]:
            key, sep, value = line.partition(":")
            if not sep:
                continue
            key = key.strip().lower()
            if _COMPACT_HEADERS.get(key, key) == wanted:
                values.append(value.strip())
        return values

    def header(self, name: str) -> str | None:
        """The first value of header ``name``, or None when absent."""
        values = self.headers(name)
        return values[0] if values else None

    @property
    def body(self) -> str:
        """The message body (cut to Content-Length when one is given)."""
        body = self._split()[1]
        length = self.header("Content-Length")
        if length is not None and length.strip().isdigit():
            encoded = body.encode("utf-8", "surrogateescape")[: int(length)]
            return encoded.decode("utf-8", "surrogateescape")
        return body.rstrip("\r\n")

    def __str__(self) -> str:
        arrow = "->" if self.direction == "sent" else "<-"
        return f"{arrow} {self.first_line}"


def _parse_timestamp(text: str) -> float:
    text = text.replace("\t", " ")
    fmt = "%Y-%m-%d %H:%M:%S.%f" if "." in text else "%Y-%m-%d %H:%M:%S"
    return datetime.strptime(text, fmt).timestamp()


def parse_message_log(text: str) -> list[SipMessage]:
    """Parse a sipp ``-trace_msg`` log into messages, in log order.

    The log is a series of entries, each::

        ----------------------------------------------- 2026-11-24 13:12:09.706716
        UDP message received [512] bytes :

        INVITE sip:service@127.0.0.1:47001 SIP/2.0\\r\\n...

    (sent entries read ``UDP message sent (309 bytes):``).  Entries of other kinds are
    skipped.  Retransmissions (a message identical to an earlier one in the same
    direction) are flagged, not dropped.
    """
    messages: list[SipMessage] = []
    seen: set[tuple[str, str]] = set()
    marks = list(_SEPARATOR_RE.finditer(text))
    for index, mark in enumerate(marks):
        end = marks[index + 1].start() if index + 1 < len(marks) else len(text)
        entry = text[mark.end() : end]
        head, _, rest = entry.partition("\n")
        found = _ENTRY_HEAD_RE.match(head.strip())
        if found is None:
            continue
        raw = rest.lstrip("\n")
        # The log adds its own LF framing after the message; keep the message's CRLFs.
        while raw.endswith("\n") and not raw.endswith("\r\n"):
            raw = raw[:-1]
        if not raw.strip():
            continue
        direction: Direction = "sent" if found["direction"] == "sent" else "received"
        key = (direction, raw)
        messages.append(
            SipMessage(
                direction=direction,
                timestamp=_parse_timestamp(mark.group(1)),
                transport=found["transport"],
                raw=raw,
                retransmission=key in seen,
            )
        )
        seen.add(key)
    return messages


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def _digest_hash(algorithm: str, text: str) -> str:
    name = algorithm.lower().removesuffix("-sess")
    if name in ("", "md5"):
        return _md5(text)
    if name == "sha-256":
        return hashlib.sha256(text.encode("utf-8")).hexdigest()
    if name == "sha-512-256":
        return hashlib.new("sha512_256", text.encode("utf-8")).hexdigest()
    raise ValueError(f"unsupported digest algorithm {algorithm!r}")


def parse_digest(header_value: str) -> dict[str, str]:
    """Parse the parameters of a ``Digest ...`` credentials or challenge value (keys lower-case)."""
    scheme, _, params = header_value.strip().partition(" ")
    if scheme.lower() != "digest":
        return {}
    result: dict[str, str] = {}
    for match in _DIGEST_PARAM_RE.finditer(params):
        value = match.group(2) if match.group(2) is not None else match.group(3)
        result[match.group(1).lower()] = value
    return result


def digest_response_ok(header_value: str, method: str, username: str, password: str, body: str = "") -> bool:
    """Check a Digest ``Authorization``/``Proxy-Authorization`` value against a password (RFC 2617/7616).

    The username in the credentials must equal ``username``; realm, nonce, uri, qop,
    nc and cnonce are taken from the credentials themselves.
    """
    params = parse_digest(header_value)
    needed = ("username", "realm", "nonce", "uri", "response")
    if not params or any(key not in params for key in needed) or params["username"] != username:
        return False
    algorithm = params.get("algorithm", "MD5")
    try:
        ha1 = _digest_hash(algorithm, f"{username}:{params['realm']}:{password}")
        if algorithm.lower().endswith("-sess"):
            ha1 = _digest_hash(algorithm, f"{ha1}:{params['nonce']}:{params.get('cnonce', '')}")
        qop = params.get("qop", "")
        if qop == "auth-int":
            ha2 = _digest_hash(algorithm, f"{method}:{params['uri']}:{_digest_hash(algorithm, body)}")
        else:
            ha2 = _digest_hash(algorithm, f"{method}:{params['uri']}")
        if qop:
            tail = f"{params['nonce']}:{params.get('nc', '')}:{params.get('cnonce', '')}:{qop}:{ha2}"
        else:
            tail = f"{params['nonce']}:{ha2}"
        expected = _digest_hash(algorithm, f"{ha1}:{tail}")
    except ValueError:
        return False
    return expected == params["response"].lower()


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
            bound = _udp_port_bound(self.port, self.local_ip)
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
