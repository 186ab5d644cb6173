"""The demo's far ends: lab phones (`python -m switch.worker.labphone`) as asyncio subprocesses.

Each phone prints one JSON object per line for every event (see `switch.worker.labphone`); `DemoPhone` reads
them as they come, hands each to `on_event`, and lets the demo wait for one::

    phone = await DemoPhone.start("A", ["--answer", "auto", "--tone", "600"], on_event=print)
    ...  # call sip:customer@{phone.sip}
    await phone.wait_for("hangup", timeout=10)
    await phone.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

PhoneEvent = dict[str, Any]
Listener = Callable[["DemoPhone", PhoneEvent], None]

_REPO = Path(__file__).resolve().parent.parent


class PhoneFailure(RuntimeError):
    """A phone did not start, exited early, or did not report an awaited event in time."""


class DemoPhone:
    """One lab phone process; `events` grows as its JSON lines arrive."""

    def __init__(self, name: str, process: asyncio.subprocess.Process, log_path: Path,
                 on_event: Listener | None) -> None:
        self.name = name
        self.process = process
        self.log_path = log_path
        self.on_event = on_event
        self.events: list[PhoneEvent] = []
        self.sip = ""  # host:port, from the "ready" event
        self._changed = asyncio.Condition()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def start(cls, name: str, args: Sequence[str], on_event: Listener | None = None,
                    max_seconds: float = 40.0, timeout: float = 10.0) -> DemoPhone:
        """Start a phone on a free port (`--sip 127.0.0.1:0`) and wait for its `ready` event."""
        fd, log_name = tempfile.mkstemp(prefix=f"softswitch-demo-phone-{name.lower()}-", suffix=".log")
        argv = [sys.executable, "-m", "switch.worker.labphone", "--sip", "127.0.0.1:0",
                "--max-seconds", f"{max_seconds:g}", *args]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO), env.get("PYTHONPATH")]))
        try:
            process = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=fd, env=env)
        finally:
            os.close(fd)
        phone = cls(name, process, Path(log_name), on_event)
        try:
            ready = await phone.wait_for("ready", timeout)
        except PhoneFailure:
            await phone.stop()
            raise
        phone.sip = str(ready["sip"])
        return phone

    def uri(self, user: str) -> str:
        return f"sip:{user}@{self.sip}"

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            try:
                event: PhoneEvent = json.loads(line)
            except json.JSONDecodeError:
                event = {"event": "garbage", "line": line}
            self.events.append(event)
            if self.on_event is not None:
                self.on_event(self, event)
            async with self._changed:
                self._changed.notify_all()
        async with self._changed:
            self._changed.notify_all()

    def named(self, name: str) -> list[PhoneEvent]:
        return [e for e in self.events if e.get("event") == name]

    async def wait_for(self, name: str, timeout: float) -> PhoneEvent:
        """The first event called `name`, waiting up to `timeout` seconds for it."""

        def found() -> bool:
            return bool(self.named(name)) or self._reader.done()

        try:
            async with self._changed:
                await asyncio.wait_for(self._changed.wait_for(found), timeout)
        except TimeoutError:
            pass
        events = self.named(name)
        if not events:
            raise PhoneFailure(f"phone {self.name}: no {name!r} event within {timeout:g} s\n{self.describe()}")
        return events[0]

    def describe(self, tail: int = 8) -> str:
        """Exit status, events and the end of pjsip's log: for failure messages."""
        lines = [f"  phone {self.name} ({self.sip or 'not ready'}), exit status {self.process.returncode}"]
        lines += [f"    {json.dumps(e)}" for e in self.events]
        with contextlib.suppress(OSError):
            log = [x for x in self.log_path.read_text("utf-8", "replace").splitlines() if x.strip()]
            lines += [f"    | {x}" for x in log[-tail:]]
        return "\n".join(lines)

    async def stop(self, grace: float = 5.0) -> None:
        """SIGTERM (the phone hangs up cleanly), SIGKILL after `grace` s; then remove its log."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                await self.process.wait()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(self._reader, 2.0)
        self.log_path.unlink(missing_ok=True)
