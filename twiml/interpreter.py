"""The one loop that owns a call's TwiML control flow.

A call's app is a chain of documents: the first comes from the call's Url (or inline Twiml); a <Redirect>,
a <Gather> action or a REST redirect each mean "load this document next".  Every document is fetched and
parsed whole before any verb runs.  Verbs run one at a time, each in its own task, so that

- a REST redirect (`redirect()`) cancels only the running verb, and the loop loads the new document at once;
- a hang-up from the far end cancels the whole interpreter (`stop()`).

Errors follow Twilio: a failed fetch or a bad document (an error, not a warning: see `twiml.errors`; warnings
are recorded on the call and the document runs) requests the FallbackUrl (with ErrorCode and
ErrorUrl) when there is one; otherwise the caller hears a short application-error message and the call
ends.  Each error is recorded on the call.  After the last verb the call hangs up.  More than
`MAX_DOCUMENTS` documents in a row that the app reached by itself (the first document, <Redirect>s, verb actions)
is taken for a redirect loop and ends the call; a REST redirect starts a new count, since each one is a request
of its own (an app may move a long call between documents by REST any number of times).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Generic, TypeVar

from media.audio import AudioError
from media.errors import MediaError
from twiml.control import CallControl, Outcome, TaskFactory
from twiml.errors import INTERNAL_FAILURE, TwimlError
from twiml.fetch import Fetcher, resolve
from twiml.parse import parse
from twiml.verbs import Response

log = logging.getLogger("twiml")

MAX_DOCUMENTS = 100
REDIRECT_LOOP = INTERNAL_FAILURE  # Twilio documents no code for a voice redirect loop
APPLICATION_ERROR = "We are sorry, an application error has occurred. Goodbye."


@dataclass(frozen=True)
class Source:
    """Where the next document comes from: a URL with a method and extra parameters, or inline TwiML."""

    url: str | None = None
    method: str = "POST"
    extra: tuple[tuple[str, str], ...] = ()
    twiml: str | None = None
    fallback_url: str | None = None
    fallback_method: str = "POST"


C = TypeVar("C", bound=CallControl)


class Interpreter(Generic[C]):
    """Runs TwiML on one call until the app is done, the call ends, or `stop()` is called.

    `tasks` makes the task of each verb (the switch's verb registry); `control` is the call they run on.
    """

    def __init__(self, control: C, fetcher: Fetcher, tasks: TaskFactory[C], hangup_when_done: bool = True) -> None:
        self.control = control
        self.fetcher = fetcher
        self.tasks = tasks
        # False for a <Dial> whisper: running out of verbs there means "connect", not "hang up"
        self.hangup_when_done = hangup_when_done
        self.documents = 0
        self.stopped = False  # a verb (Hangup, Reject) ended the call itself
        self._pending: Source | None = None
        self._verb_task: asyncio.Task[Outcome] | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def sid(self) -> str:
        return self.control.sid

    def start(self, source: Source) -> asyncio.Task[None]:
        self._task = asyncio.get_running_loop().create_task(self.run(source), name=f"twiml-{self.sid}")
        return self._task

    def redirect(self, source: Source) -> None:
        """Live redirect: interrupt the running verb and run `source` next."""
        self._pending = source
        if self._verb_task is not None and not self._verb_task.done():
            self._verb_task.cancel()

    def stop(self) -> None:
        """The call ended: cancel everything."""
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def run(self, source: Source) -> None:
        current: Source | None = source
        try:
            while current is not None:
                self.documents += 1
                if self.documents > MAX_DOCUMENTS:
                    self.control.notify(REDIRECT_LOOP, f"more than {MAX_DOCUMENTS} TwiML documents in a row with no "
                                                       "REST redirect: a redirect loop? The call was ended.")
                    self.control.hangup()
                    return
                loaded = await self._load(current)
                if loaded is None:
                    await self._application_error()
                    return
                url, response = loaded
                current = await self._run_document(url, response)
            if self.hangup_when_done and not self.stopped:
                self.control.hangup()  # the app ran out of verbs
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never leave a call hanging on a bug: report, then hang up
            log.exception("%s: interpreter failed", self.sid)
            self.control.notify(INTERNAL_FAILURE, f"internal error while running TwiML: {exc!r}")
            self.control.hangup()

    async def _run_document(self, url: str | None, response: Response) -> Source | None:
        """Run the verbs; return the next document's source, or None when the call is done."""
        for warning in response.warnings:  # Twilio logs these and goes on with the problem ignored
            log.info("%s: TwiML warning %s", self.sid, warning)
            self.control.notify(warning.code, warning.text, url=url, warning=True)
        for verb in response.verbs:
            self._verb_task = asyncio.get_running_loop().create_task(self._run_verb(verb, url))
            try:
                outcome = await self._verb_task
            except asyncio.CancelledError:
                if self._pending is None or (self._task is not None and self._task.cancelling()):
                    raise
                return self._take_pending()
            except (MediaError, AudioError) as exc:
                if self._pending is not None:
                    return self._take_pending()
                self.control.notify(INTERNAL_FAILURE, f"media failed during <{type(verb).__name__}>: {exc}")
                return None
            finally:
                self._verb_task = None
            if self._pending is not None:
                return self._take_pending()
            if outcome.stop:
                self.stopped = True
                return None
            if outcome.next_url is not None:
                return Source(url=resolve(url, outcome.next_url), method=outcome.method, extra=outcome.extra,
                              twiml=outcome.twiml)
        if self._pending is not None:
            return self._take_pending()
        return None

    async def _run_verb(self, verb: object, url: str | None) -> Outcome:
        return await self.tasks(verb, url).run(self.control)

    def _take_pending(self) -> Source:
        """The REST redirect's source, next; the loop guard counts the documents from it."""
        pending, self._pending = self._pending, None
        assert pending is not None
        self.documents = 0
        return pending

    async def _load(self, source: Source) -> tuple[str | None, Response] | None:
        """Fetch and parse `source`, trying its FallbackUrl on failure; None when both fail."""
        try:
            return await self._fetch_and_parse(source)
        except TwimlError as exc:
            self.control.notify(exc.code, exc.message, url=source.url, method=source.method)
            if not source.fallback_url:
                return None
            fallback = Source(url=source.fallback_url, method=source.fallback_method,
                              extra=(("ErrorCode", str(exc.code)), ("ErrorUrl", source.url or "")))
            try:
                return await self._fetch_and_parse(fallback)
            except TwimlError as again:
                self.control.notify(again.code, f"fallback failed too: {again.message}", url=fallback.url,
                                    method=fallback.method)
                return None

    async def _fetch_and_parse(self, source: Source) -> tuple[str | None, Response]:
        if source.twiml is not None:  # inline TwiML (no URL), or a document fetched already (its URL)
            return source.url, parse(source.twiml)
        assert source.url is not None
        document = await self.fetcher.fetch(source.url, source.method, [*self.control.params(), *source.extra])
        return document.url, parse(document.text)

    async def _application_error(self) -> None:
        """Tell the caller something went wrong, then hang up (Twilio's behaviour without a fallback)."""
        try:
            if not self.control.answered:
                await self.control.answer()
            path = await self.control.speech(APPLICATION_ERROR, "woman", "en-US")
            await asyncio.wait_for(self.control.play(path), 10)
        except (MediaError, AudioError, TimeoutError) as exc:
            log.warning("%s: could not play the application-error message: %s", self.sid, exc)
        self.control.hangup()
