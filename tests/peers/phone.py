"""Run the lab phone (``switch.worker.labphone``) as a real process and read its JSON events.

::

    with PhoneProcess(["--answer", "auto", "--tone", "1000"]) as callee:   # --sip 127.0.0.1:0 by default
        ...  # dial sip:anyone@{callee.sip}
        callee.wait_for("hangup", timeout=10)
        assert callee.names() == ["ready", "incoming", "answered", "hangup"]

With ``commands=True`` the phone takes commands on stdin (``--commands``): :meth:`PhoneProcess.hold`,
:meth:`PhoneProcess.unhold` and :meth:`PhoneProcess.reinvite` send one and wait for the ``media`` event that
reports the negotiated result; :meth:`PhoneProcess.command` sends any line.

A registered phone (``--register``): :func:`register_args` builds the options, :meth:`PhoneProcess.wait_registered`
waits for the outcome (``registered``, or :class:`RegistrationFailed` on ``registration-failed``), and with
``commands=True`` :meth:`PhoneProcess.unregister`, :meth:`PhoneProcess.register` and :meth:`PhoneProcess.call`
act on it later::

    args = ["--answer", "auto", *register_args("acme.sip.localhost", "alice", "pw", proxy="sip:127.0.0.1:5060")]
    with PhoneProcess(args, commands=True) as alice:
        alice.wait_registered(timeout=5)            # {"event": "registered", "expires": ...}
        alice.call("sip:bob@acme.sip.localhost")    # through the proxy, answering a 407 with the same password
        alice.unregister()                          # {"event": "unregistered", ...}

The phone binds the port the OS gives it (``--sip 127.0.0.1:0``) unless ``sip=`` is passed, and reports it in
its ``ready`` event; :meth:`PhoneProcess.start` waits for that event.  stderr (pjsip's log) goes to a file,
shown by :meth:`PhoneProcess.describe` for assertion messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

REPO = Path(__file__).resolve().parents[2]

Event = dict[str, Any]


REGISTRATION_EVENTS = ("registered", "unregistered", "registration-failed")


class PhoneError(RuntimeError):
    """The phone did not start, or did not print what was awaited in time."""


class RegistrationFailed(PhoneError):
    """The phone printed ``registration-failed`` (``event``) where a registration was awaited."""

    def __init__(self, event: Event, description: str) -> None:
        super().__init__(f"registration failed: {event.get('code')} {event.get('reason')}\n{description}")
        self.event = event


def register_args(
    domain: str, user: str, password: str | None = None, proxy: str | None = None, expires: int | None = None,
    retry: int | None = None, t1_ms: int | None = None,
) -> list[str]:
    """The lab phone's options to register as ``sip:USER@DOMAIN`` (``--register sip:DOMAIN --user USER ...``).

    ``proxy``: outbound proxy for REGISTER and calls (``sip:127.0.0.1:5060``; ``;lr`` is added by the phone);
    ``expires``: ``--reg-expires``; ``retry``: ``--reg-retry`` (seconds before pjsua re-tries after a timeout or
    5xx); ``t1_ms``: ``--sip-t1`` (an unanswered REGISTER fails with 408 after 64 * T1).
    """
    args = ["--register", domain if domain.startswith(("sip:", "sips:")) else f"sip:{domain}", "--user", user]
    if password is not None:
        args += ["--password", password]
    if proxy is not None:
        args += ["--proxy", proxy]
    if expires is not None:
        args += ["--reg-expires", str(expires)]
    if retry is not None:
        args += ["--reg-retry", str(retry)]
    if t1_ms is not None:
        args += ["--sip-t1", str(t1_ms)]
    return args


class PhoneProcess:
    """One lab phone process; its stdout events are collected by a reader thread as they come."""

    def __init__(
        self, args: Sequence[str] = (), sip: str = "127.0.0.1:0", max_seconds: float = 30.0, ready: bool = True,
        commands: bool = False,
    ) -> None:
        self.args = list(args)
        self.commands = commands
        self.expect_ready = ready
        self.sip_arg = sip
        self.max_seconds = max_seconds
        self.sip = ""
        """``host:port`` the phone listens on, from its ``ready`` event."""
        self._events: list[Event] = []
        self._cond = threading.Condition()
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._stderr: IO[bytes] | None = None
        self.stderr_path = Path(tempfile.mkstemp(prefix="labphone-", suffix=".log")[1])

    @property
    def argv(self) -> list[str]:
        """The phone's command line."""
        argv = [sys.executable, "-m", "switch.worker.labphone", "--sip", self.sip_arg]
        if "--max-seconds" not in self.args:
            argv += ["--max-seconds", f"{self.max_seconds:g}"]
        if self.commands and "--commands" not in self.args:
            argv.append("--commands")
        return argv + self.args

    @property
    def port(self) -> int:
        """The SIP port from the ``ready`` event."""
        return int(self.sip.rpartition(":")[2])

    def uri(self, user: str = "phone") -> str:
        """A SIP URI that reaches this phone."""
        return f"sip:{user}@{self.sip}"

    # -- life cycle ---------------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> Self:
        """Start the phone and wait for its ``ready`` event (unless built with ``ready=False``)."""
        self._stderr = open(self.stderr_path, "wb")  # noqa: SIM115 - closed in _close_files()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        stdin = subprocess.PIPE if self.commands else subprocess.DEVNULL
        self._process = subprocess.Popen(
            self.argv, cwd=REPO, stdin=stdin, stdout=subprocess.PIPE, stderr=self._stderr, env=env
        )
        self._reader = threading.Thread(target=self._read, name="labphone-reader", daemon=True)
        self._reader.start()
        if not self.expect_ready:
            return self
        try:
            event = self.wait_for("ready", timeout)
        except PhoneError:
            self.stop()
            raise
        self.sip = str(event["sip"])
        return self

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for raw in self._process.stdout:
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                event = {"event": "garbage", "line": line}
            with self._cond:
                self._events.append(event)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def returncode(self) -> int | None:
        """The exit status once the phone has ended, else None."""
        return None if self._process is None else self._process.poll()

    def wait(self, timeout: float = 15.0) -> int:
        """Wait for the phone to exit by itself; return its status (TimeoutError: it is stopped first)."""
        assert self._process is not None
        try:
            code = self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise TimeoutError(f"phone still running after {timeout:g}s\n{self.describe()}") from None
        self._finish()
        return code

    def terminate(self) -> None:
        """Send SIGTERM (the phone hangs up cleanly and exits)."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)

    def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; return the exit status."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            self.terminate()
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._finish()
        return process.returncode

    def _finish(self) -> None:
        if self._process is not None and self._process.stdin is not None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()
        if self._reader is not None:
            self._reader.join(5.0)
        if self._stderr is not None:
            with contextlib.suppress(OSError):
                self._stderr.close()
            self._stderr = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        with contextlib.suppress(OSError):
            self.stderr_path.unlink()

    # -- commands (with commands=True) ---------------------------------------------------------------
    def command(self, line: str) -> None:
        """Send one command line (``hold``, ``unhold``, ``reinvite PCMA``, ``dtmf 12``, ``hangup``)."""
        process = self._process
        if process is None or process.stdin is None:
            raise PhoneError("the phone takes no commands: start it with commands=True")
        try:
            process.stdin.write(line.encode() + b"\n")
            process.stdin.flush()
        except OSError as exc:
            raise PhoneError(f"cannot send {line!r}: {exc}\n{self.describe()}") from exc

    def _negotiate(self, line: str, timeout: float) -> Event:
        count = len(self.events("media"))
        self.command(line)
        return self.wait_for("media", timeout, count + 1)

    def hold(self, timeout: float = 5.0) -> Event:
        """Hold the answered call (re-INVITE, sendonly); return the ``media`` event of the outcome."""
        return self._negotiate("hold", timeout)

    def unhold(self, timeout: float = 5.0) -> Event:
        """Take the call off hold (re-INVITE, sendrecv); return the ``media`` event of the outcome."""
        return self._negotiate("unhold", timeout)

    def reinvite(self, codec: str | None = None, timeout: float = 5.0) -> Event:
        """Re-INVITE the call, offering only ``codec`` if given; return the ``media`` event of the outcome."""
        return self._negotiate("reinvite" if codec is None else f"reinvite {codec}", timeout)

    # -- registration (a phone started with register_args) ---------------------------------------------
    def registration(self, timeout: float = 10.0, count: int = 1) -> Event:
        """The ``count``-th registration outcome (``registered``, ``unregistered`` or ``registration-failed``)."""
        return self.wait_for_any(REGISTRATION_EVENTS, timeout, count)

    def wait_registered(self, timeout: float = 10.0, count: int = 1) -> Event:
        """Wait for the ``count``-th registration outcome; return it if it is ``registered``, else raise
        :class:`RegistrationFailed` (``registration-failed``) or :class:`PhoneError`."""
        event = self.registration(timeout, count)
        if event.get("event") == "registration-failed":
            raise RegistrationFailed(event, self.describe())
        if event.get("event") != "registered":
            raise PhoneError(f"expected 'registered', got {event}\n{self.describe()}")
        return event

    def _account_command(self, line: str, timeout: float) -> Event:
        count = len(self.events_of(REGISTRATION_EVENTS))
        self.command(line)
        return self.registration(timeout, count + 1)

    def register(self, timeout: float = 10.0) -> Event:
        """Send ``register`` (commands=True); return the outcome (``registered`` or ``registration-failed``)."""
        return self._account_command("register", timeout)

    def unregister(self, timeout: float = 10.0) -> Event:
        """Send ``unregister`` (commands=True); return the outcome (``unregistered`` or ``registration-failed``)."""
        return self._account_command("unregister", timeout)

    def call(self, uri: str, timeout: float = 5.0) -> Event:
        """Place a call to ``uri`` now (commands=True); return its ``calling`` event."""
        count = len(self.events("calling"))
        self.command(f"call {uri}")
        return self.wait_for("calling", timeout, count + 1)

    # -- events -------------------------------------------------------------------------------------
    def events(self, name: str | None = None) -> list[Event]:
        """Every event so far (or those called ``name``), in order."""
        with self._cond:
            return [e for e in self._events if name is None or e.get("event") == name]

    def events_of(self, names: Sequence[str]) -> list[Event]:
        """Every event so far whose name is one of ``names``, in order."""
        with self._cond:
            return [e for e in self._events if e.get("event") in names]

    def names(self) -> list[str]:
        """The names of every event so far, in order, e.g. ``["ready", "incoming", "answered", ...]``."""
        return [str(e.get("event")) for e in self.events()]

    def wait_for(self, name: str, timeout: float = 10.0, count: int = 1) -> Event:
        """Block until ``count`` events called ``name`` have arrived; return the last of them."""
        return self.wait_for_any((name,), timeout, count)

    def wait_for_any(self, names: Sequence[str], timeout: float = 10.0, count: int = 1) -> Event:
        """Block until ``count`` events with a name in ``names`` have arrived; return the last of them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [e for e in self._events if e.get("event") in names]
                if len(found) >= count:
                    return found[count - 1]
                reader_done = self._reader is not None and not self._reader.is_alive()
                left = deadline - time.monotonic()
                if left <= 0 or reader_done:
                    break
                self._cond.wait(left)
        wanted = " or ".join(repr(name) for name in names)
        raise PhoneError(f"no {wanted} event (x{count}) within {timeout:g}s\n{self.describe()}")

    async def event(self, name: str, timeout: float = 10.0, count: int = 1) -> Event:
        """:meth:`wait_for` without blocking the event loop."""
        return await asyncio.to_thread(self.wait_for, name, timeout, count)

    async def wait_async(self, timeout: float = 15.0) -> int:
        """:meth:`wait` without blocking the event loop."""
        return await asyncio.to_thread(self.wait, timeout)

    def log(self) -> str:
        """What the phone wrote on stderr (pjsip's log)."""
        try:
            return self.stderr_path.read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def describe(self, tail: int = 30) -> str:
        """A report for assertion messages: command line, exit status, events, end of the log."""
        lines = [f"phone {self.sip or self.sip_arg}: exit={self.returncode} argv={' '.join(self.argv)}"]
        lines += [f"  {json.dumps(e)}" for e in self.events()]
        log_lines = [line for line in self.log().splitlines() if line.strip()]
        if log_lines:
            lines.append("  stderr:")
            lines += ["    " + line for line in log_lines[-tail:]]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"PhoneProcess({self.sip or self.sip_arg}, exit={self.returncode})"
