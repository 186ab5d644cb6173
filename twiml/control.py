"""What TwiML verbs may ask of the call they run on.  The switch implements it (`switch.session.voice`)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Protocol

from switch.core.model import Call
from twiml.verbs import Connect, Dial, Record


class RecordOutcome(Protocol):
    """What <Record>'s action URL is told."""

    def params(self) -> tuple[tuple[str, str], ...]: ...


class DialOutcome(Protocol):
    """How a <Dial> ended, as its action URL is told."""

    @property
    def status(self) -> str: ...

    def params(self) -> tuple[tuple[str, str], ...]: ...


class DialRun(Protocol):
    """A <Dial> in progress; `result` is set even when `run` is cancelled part way."""

    @property
    def result(self) -> DialOutcome | None: ...

    async def run(self) -> DialOutcome: ...


class ConnectOutcome(Protocol):
    """How a <Connect> session ended, as its action URL is told."""

    @property
    def ended(self) -> bool:
        """The session ended the call itself (e.g. refused it): no more TwiML runs."""
        ...

    def params(self) -> tuple[tuple[str, str], ...]: ...


class ConnectRun(Protocol):
    """A <Connect> session in progress; `result` is set even when `run` is cancelled part way."""

    @property
    def result(self) -> ConnectOutcome | None: ...

    async def run(self) -> ConnectOutcome: ...


class CallControl(Protocol):
    """The live call as the interpreter and its verbs see it."""

    @property
    def call(self) -> Call:
        """The call's record (live; read-only for verbs)."""
        ...

    @property
    def answered(self) -> bool: ...

    def params(self) -> list[tuple[str, str]]:
        """Twilio's standard request parameters for the call as it is now."""
        ...

    async def answer(self) -> None:
        """Answer an inbound call (200 OK) and wait until its media flows."""
        ...

    async def reject(self, code: int) -> None:
        """Refuse an unanswered inbound call with a final SIP response."""
        ...

    def hangup(self) -> None:
        """End the call (BYE)."""
        ...

    async def play(self, path: Path, loop_forever: bool = False) -> str:
        """Play a bridge-rate WAV to the caller; returns why it stopped."""
        ...

    async def speech(self, text: str, voice: str, language: str) -> Path:
        """Synthesized speech as a bridge-rate WAV (cached)."""
        ...

    async def audio(self, url: str) -> Path:
        """A Play URL (http, https or file) as a bridge-rate WAV (cached)."""
        ...

    async def beep(self) -> Path: ...

    def digits(self) -> asyncio.Queue[str]:
        """DTMF digits the caller pressed (RFC 2833 or SIP INFO), in order."""
        ...

    async def send_digits(self, digits: str) -> None:
        """Send RFC 2833 digits to the caller; `w` waits half a second."""
        ...

    def dial(self, verb: Dial, document_url: str | None) -> DialRun:
        """A not yet started run of `<Dial>` on this call."""
        ...

    def connect(self, verb: Connect, document_url: str | None) -> ConnectRun:
        """A not yet started run of `<Connect>` (its `<Conversation>`) on this call."""
        ...

    async def record(self, verb: Record, action: str | None) -> RecordOutcome | None:
        """Run <Record>: beep, capture until silence/finishOnKey/maxLength/hang-up.  None when nothing was
        recorded.  If cancelled, the recording is still finished and `action` told, in the background."""
        ...

    def post_detached(self, url: str, method: str, extra: tuple[tuple[str, str], ...]) -> None:
        """Request `url` with the call's parameters and `extra`, ignoring the answer (the call has moved on)."""
        ...

    def notify(self, code: int, message: str, url: str | None = None, method: str | None = None,
               warning: bool = False) -> None:
        """Record an error or warning on the call (Notifications) and log it with the call SID."""
        ...
