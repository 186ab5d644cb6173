"""What every verb task shares: its base class, answering before audio, and sessions that tell their action.

A task runs one verb on one call (`switch.session.voice.LiveCall`) and returns an `Outcome`: carry on with the
next verb, load another document (Redirect, a Gather/Record/Dial action), or stop (Hangup, Reject).  Cancelling
a task (far-end hang-up, REST redirect) stops its audio at once: `LiveCall.play` stops the worker's player when
its awaiting task is cancelled.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar, Generic, Protocol, TypeVar

from switch.session.voice import LiveCall
from twiml.control import Outcome

V = TypeVar("V")


class Task(Generic[V]):
    """Base of the verb tasks: `v` is the parsed verb, `document_url` the document it came from (None for
    inline TwiML); relative URLs in the verb are resolved against it."""

    verb: ClassVar[type]

    def __init__(self, verb: V, document_url: str | None) -> None:
        self.v = verb
        self.document_url = document_url

    async def run(self, call: LiveCall) -> Outcome:
        raise NotImplementedError


async def ensure_answered(call: LiveCall) -> None:
    """Answer an inbound call before the first verb that needs audio."""
    if not call.answered:
        await call.answer()


class Told(Protocol):
    """The result of a session, as its action URL is told."""

    def params(self) -> tuple[tuple[str, str], ...]: ...


T_co = TypeVar("T_co", bound=Told, covariant=True)


class Session(Protocol[T_co]):
    """A `<Dial>` or `<Connect>` in progress; `result` is set even when `run` is cancelled part way."""

    @property
    def result(self) -> T_co | None: ...

    async def run(self) -> T_co: ...


async def run_session(call: LiveCall, session: Session[T_co], action: str | None, method: str) -> T_co:
    """Run a `<Dial>` or `<Connect>` session; interrupted part way (caller hung up, REST redirect), its action
    URL is still told how far it got, and the answer ignored."""
    try:
        return await session.run()
    except asyncio.CancelledError:
        if action is not None and session.result is not None:
            call.post_detached(action, method, session.result.params())
        raise
