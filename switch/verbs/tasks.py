"""How each TwiML verb runs: one task class per verb, found through the explicit `TASKS` registry.

A task's `run` returns an `Outcome`: carry on with the next verb, load another document (Redirect, a
Gather/Record action), or stop (Hangup, Reject).  Cancelling a task (far-end hang-up, REST redirect) stops
its audio at once: `CallControl.play` stops the worker's player when its awaiting task is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import ClassVar, Protocol, TypeVar

from media.audio import AudioError
from twiml import verbs
from twiml.control import CallControl
from twiml.fetch import HTTP_RETRIEVAL_FAILURE, resolve

log = logging.getLogger("twiml")


@dataclass(frozen=True)
class Outcome:
    """What the interpreter does after a verb."""

    next_url: str | None = None  # load this document next...
    method: str = "POST"
    extra: tuple[tuple[str, str], ...] = ()  # ...with these parameters added (Digits, ...)
    stop: bool = False  # the call is over (Hangup, Reject)


CONTINUE = Outcome()
STOP = Outcome(stop=True)


class Task:
    """Base of the verb tasks."""

    verb: ClassVar[type]

    async def run(self, control: CallControl) -> Outcome:
        raise NotImplementedError


async def _ensure_answered(control: CallControl) -> None:
    if not control.answered:
        await control.answer()


class SayTask(Task):
    """<Say>: espeak-ng speech, `loop` times (0 = until interrupted)."""

    verb = verbs.Say

    def __init__(self, verb: verbs.Say) -> None:
        self.v = verb

    async def run(self, control: CallControl) -> Outcome:
        await _ensure_answered(control)
        if not self.v.text.strip():
            return CONTINUE
        path = await control.speech(self.v.text, self.v.voice, self.v.language)
        if self.v.loop == 0:
            await control.play(path, loop_forever=True)
        for _ in range(self.v.loop):
            await control.play(path)
        return CONTINUE


class PlayTask(Task):
    """<Play>: a WAV/MP3 URL `loop` times (0 = until interrupted), or DTMF `digits`.

    An unplayable URL is reported (11200) and the call goes on with the next verb, as Twilio does.
    """

    verb = verbs.Play

    def __init__(self, verb: verbs.Play) -> None:
        self.v = verb

    async def run(self, control: CallControl) -> Outcome:
        await _ensure_answered(control)
        if self.v.digits:
            await control.send_digits(self.v.digits)
        if not self.v.url:
            return CONTINUE
        try:
            path = await control.audio(self.v.url)
        except AudioError as exc:
            control.notify(HTTP_RETRIEVAL_FAILURE, f"<Play> could not fetch or decode {self.v.url}: {exc}",
                           url=self.v.url, method="GET", warning=True)
            return CONTINUE
        if self.v.loop == 0:
            await control.play(path, loop_forever=True)
        for _ in range(self.v.loop):
            await control.play(path)
        return CONTINUE


class PauseTask(Task):
    """<Pause length>: silence for `length` seconds (default 1)."""

    verb = verbs.Pause

    def __init__(self, verb: verbs.Pause) -> None:
        self.v = verb

    async def run(self, control: CallControl) -> Outcome:
        await _ensure_answered(control)
        await asyncio.sleep(self.v.length)
        return CONTINUE


class GatherTask(Task):
    """<Gather input="dtmf">: nested Say/Play/Pause with barge-in, then digits until numDigits,
    finishOnKey or `timeout` seconds without a digit.  Digits (or actionOnEmptyResult) request `action`
    with Digits and FinishedOnKey; no input and no actionOnEmptyResult goes on with the next verb."""

    verb = verbs.Gather

    def __init__(self, verb: verbs.Gather, document_url: str | None) -> None:
        self.v = verb
        self.document_url = document_url

    async def run(self, control: CallControl) -> Outcome:
        await _ensure_answered(control)
        queue = control.digits()
        while not queue.empty():  # digits pressed before the Gather began are not its input
            queue.get_nowait()
        prompts = asyncio.create_task(self._prompts(control))
        digits = ""
        finished_on = ""
        try:
            first = await self._next_digit(queue, prompts)
            if first is not None:
                prompts.cancel()  # barge-in
                while first is not None:
                    if first == self.v.finish_on_key and self.v.finish_on_key:
                        finished_on = first
                        break
                    digits += first
                    if self.v.num_digits is not None and len(digits) >= self.v.num_digits:
                        break
                    first = await self._wait(queue, self.v.timeout)
        finally:
            prompts.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await prompts
        if not digits and not finished_on and not self.v.action_on_empty_result:
            return CONTINUE
        action = self.v.action or self.document_url
        if action is None:
            return CONTINUE
        extra = [("Digits", digits)]
        if finished_on:
            extra.append(("FinishedOnKey", finished_on))
        return Outcome(next_url=action, method=self.v.method, extra=tuple(extra))

    async def _prompts(self, control: CallControl) -> None:
        for child in self.v.children:
            await task_for(child, None).run(control)

    async def _next_digit(self, queue: asyncio.Queue[str], prompts: asyncio.Task[None]) -> str | None:
        """The first digit, pressed during the prompts or within `timeout` s after them."""
        getter = asyncio.create_task(queue.get())
        try:
            await asyncio.wait({getter, prompts}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                return getter.result()
            if not prompts.cancelled() and prompts.exception() is not None:
                raise prompts.exception()  # type: ignore[misc]
        finally:
            if not getter.done():
                getter.cancel()
        return await self._wait(queue, self.v.timeout)

    @staticmethod
    async def _wait(queue: asyncio.Queue[str], timeout: float) -> str | None:
        try:
            return await asyncio.wait_for(queue.get(), timeout)
        except TimeoutError:
            return None


class RedirectTask(Task):
    """<Redirect method>: continue with the document at the URL."""

    verb = verbs.Redirect

    def __init__(self, verb: verbs.Redirect) -> None:
        self.v = verb

    async def run(self, control: CallControl) -> Outcome:
        return Outcome(next_url=self.v.url, method=self.v.method)


class HangupTask(Task):
    """<Hangup>: end the call."""

    verb = verbs.Hangup

    def __init__(self, verb: verbs.Hangup) -> None:
        self.v = verb

    async def run(self, control: CallControl) -> Outcome:
        control.hangup()
        return STOP


REJECT_CODES = {"rejected": 603, "busy": 486}


class RejectTask(Task):
    """<Reject reason="rejected|busy">: refuse an unanswered call with 603 or 486 (never answered, so
    nothing is billed); on an answered call it hangs up."""

    verb = verbs.Reject

    def __init__(self, verb: verbs.Reject) -> None:
        self.v = verb

    async def run(self, control: CallControl) -> Outcome:
        if control.answered:
            control.hangup()
        else:
            await control.reject(REJECT_CODES[self.v.reason])
        return STOP


class _Told(Protocol):
    def params(self) -> tuple[tuple[str, str], ...]: ...


_T_co = TypeVar("_T_co", bound=_Told, covariant=True)


class _Session(Protocol[_T_co]):
    @property
    def result(self) -> _T_co | None: ...

    async def run(self) -> _T_co: ...


async def _run_session(control: CallControl, session: _Session[_T_co], action: str | None, method: str) -> _T_co:
    """Run a `<Dial>` or `<Connect>` session; interrupted part way (caller hung up, REST redirect), its action
    URL is still told how far it got, and the answer ignored."""
    try:
        return await session.run()
    except asyncio.CancelledError:
        if action is not None and session.result is not None:
            control.post_detached(action, method, session.result.params())
        raise


class DialTask(Task):
    """<Dial>: ring the nouns, bridge the first that answers; then request `action` with DialCallStatus,
    DialCallSid, DialCallDuration (and DialSipResponseCode for <Sip>), or go on with the next verb.
    When the dial is interrupted (caller hung up, REST redirect) the action is still told, and ignored."""

    verb = verbs.Dial

    def __init__(self, verb: verbs.Dial, document_url: str | None) -> None:
        self.v = verb
        self.document_url = document_url

    async def run(self, control: CallControl) -> Outcome:
        action = resolve(self.document_url, self.v.action) if self.v.action else None
        result = await _run_session(control, control.dial(self.v, self.document_url), action, self.v.method)
        if action is None:
            return CONTINUE
        return Outcome(next_url=action, method=self.v.method, extra=result.params())


class ConnectTask(Task):
    """<Connect action method><Conversation .../></Connect>: hand the call to a Conversations session; then
    request `action` with Result, WorkerInitiated, DialCallStatus, DialCallSid, DialCallDuration and (with
    `record`) RecordingUrl, RecordingSid, RecordingDuration, and run its TwiML -- or, without `action`, go on with
    the next verb.  When the session is interrupted (caller hung up, REST redirect) or ends the call itself
    (refused it), the action is still told, and its answer ignored."""

    verb = verbs.Connect

    def __init__(self, verb: verbs.Connect, document_url: str | None) -> None:
        self.v = verb
        self.document_url = document_url

    async def run(self, control: CallControl) -> Outcome:
        action = resolve(self.document_url, self.v.action) if self.v.action else None
        result = await _run_session(control, control.connect(self.v, self.document_url), action, self.v.method)
        if result.ended or control.call.terminal:  # nothing can run on the call any more
            if action is not None:
                control.post_detached(action, self.v.method, result.params())
            return STOP
        if action is None:
            return CONTINUE
        return Outcome(next_url=action, method=self.v.method, extra=result.params())


class RecordTask(Task):
    """<Record>: beep (playBeep), record the caller until `timeout` s of silence, a finishOnKey digit,
    `maxLength` s or hang-up; then request `action` (default: the current document) with RecordingUrl,
    RecordingSid, RecordingDuration and Digits.  Nothing recorded: go on with the next verb."""

    verb = verbs.Record

    def __init__(self, verb: verbs.Record, document_url: str | None) -> None:
        self.v = verb
        self.document_url = document_url

    async def run(self, control: CallControl) -> Outcome:
        await _ensure_answered(control)
        action = resolve(self.document_url, self.v.action) if self.v.action else self.document_url
        result = await control.record(self.v, action)
        if result is None or action is None:
            return CONTINUE
        return Outcome(next_url=action, method=self.v.method, extra=result.params())


class UnsupportedTask(Task):
    """A verb the parser accepts but this switch does not run yet: reported, then skipped."""

    verb = object

    def __init__(self, verb: object) -> None:
        self.name = type(verb).__name__

    async def run(self, control: CallControl) -> Outcome:
        control.notify(12200, f"<{self.name}> is not supported by softswitch yet; skipped", warning=True)
        return CONTINUE


def task_for(verb: object, document_url: str | None) -> Task:
    """The task that runs `verb` (explicit table; an unknown verb type is a programming error)."""
    if isinstance(verb, verbs.Gather):
        return GatherTask(verb, document_url)
    if isinstance(verb, verbs.Dial):
        return DialTask(verb, document_url)
    if isinstance(verb, verbs.Record):
        return RecordTask(verb, document_url)
    if isinstance(verb, verbs.Connect):
        return ConnectTask(verb, document_url)
    factory = TASKS.get(type(verb))
    if factory is None:
        return UnsupportedTask(verb)
    return factory(verb)  # type: ignore[call-arg]


TASKS: dict[type, type[Task]] = {
    verbs.Say: SayTask,
    verbs.Play: PlayTask,
    verbs.Pause: PauseTask,
    verbs.Redirect: RedirectTask,
    verbs.Hangup: HangupTask,
    verbs.Reject: RejectTask,
}
