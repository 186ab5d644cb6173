"""The seam between the interpreter and the verbs that run on a call.

The interpreter knows documents, not calls: it asks a `TaskFactory` for the task of each verb and runs it on
the call's control object.  The switch provides both (`switch.verbs.registry.task_for` and
`switch.session.voice.LiveCall`); the interpreter itself only needs what `CallControl` lists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar


@dataclass(frozen=True)
class Outcome:
    """What the interpreter does after a verb."""

    next_url: str | None = None  # load this document next...
    method: str = "POST"
    extra: tuple[tuple[str, str], ...] = ()  # ...with these parameters added (Digits, ...)
    twiml: str | None = None  # ...or run this document, already fetched from `next_url` (a <Dial> referUrl)
    stop: bool = False  # the call is over (Hangup, Reject)


CONTINUE = Outcome()
STOP = Outcome(stop=True)


class CallControl(Protocol):
    """The live call as the interpreter sees it."""

    @property
    def sid(self) -> str: ...

    @property
    def answered(self) -> bool: ...

    def params(self) -> list[tuple[str, str]]:
        """The standard request parameters for the call as it is now."""
        ...

    async def answer(self) -> None:
        """Answer an inbound call (200 OK) and wait until its media flows."""
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

    def notify(self, code: int, message: str, url: str | None = None, method: str | None = None,
               warning: bool = False) -> None:
        """Record an error or warning on the call (Notifications) and log it with the call SID."""
        ...


C_contra = TypeVar("C_contra", bound=CallControl, contravariant=True)


class VerbTask(Protocol[C_contra]):
    """One verb, ready to run on a call; cancelling `run` stops it at once."""

    async def run(self, control: C_contra) -> Outcome: ...


# The task of a verb found in a document fetched from `document_url` (None: inline TwiML).
TaskFactory = Callable[[object, str | None], VerbTask[C_contra]]
