"""Runs TwiML on calls: the glue between the call manager, the media layer and `twiml.Interpreter`.

- API-created calls run their Url/Twiml once answered.
- Inbound calls to a number with a voice URL run it *before* answering (180 first), so `<Reject>` refuses
  the call unanswered; the first verb that needs audio answers it.
- A REST update with Url/Twiml redirects the running interpreter at once (or starts one).
- A call that ends stops its interpreter.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiohttp

from media.audio import AudioError, write_wav
from media.sources import AudioCache
from media.speech import Speech
from media.tones import ringback, sine
from switch import __version__
from switch.core.amd import MachineDetection
from switch.core.call_events import HttpExchange
from switch.core.calls import CallManager
from switch.core.conferences import Conferences
from switch.core.conversations import Conversations
from switch.core.errors import RequestError
from switch.core.http_client import HttpTransport
from switch.core.logs import CALL_SID, call_context
from switch.core.model import Call, Direction
from switch.core.notifications import ERROR, WARNING, Notifications
from switch.core.queues import Queues
from switch.core.recordings import RecordingManager
from switch.core.status import CallStatus
from switch.core.streams import StreamManager
from switch.core.tasks import TaskSet
from switch.core.transcriptions import Transcriptions
from switch.core.webhooks import signed_form_request
from twiml.control import TaskFactory
from twiml.errors import TwimlError
from twiml.fetch import Document, Exchange, Fetcher
from twiml.interpreter import Interpreter, Source

log = logging.getLogger("switch.session.voice")

T = TypeVar("T")


class Clock:
    """Time as a call's verbs see it (Pause, Gather and Record timers): asyncio's.  Unit tests hand in one
    that advances without waiting."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def wait_for(self, awaitable: Awaitable[T], seconds: float) -> T:
        """`awaitable`'s result; TimeoutError after `seconds`."""
        return await asyncio.wait_for(awaitable, seconds)


# One TwiML request, for the metrics: seconds it took, and the Twilio error code it failed with (None: a document).
FetchObserver = Callable[[float, int | None], None]


class TimedFetcher(Fetcher):
    """The TwiML fetcher, telling `observers` how long each request took and how it failed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.observers: list[FetchObserver] = []

    async def fetch(self, url: str, method: str, params: list[tuple[str, str]]) -> Document:
        if not self.observers:
            return await super().fetch(url, method, params)
        started = time.perf_counter()
        try:
            document = await super().fetch(url, method, params)
        except TwimlError as exc:
            self._observed(started, exc.code)
            raise
        self._observed(started, None)  # a request cancelled with its call is not counted
        return document

    def _observed(self, started: float, code: int | None) -> None:
        for observer in self.observers:
            observer(time.perf_counter() - started, code)


class TwimlDialect(Protocol):
    """What a call's TwiML session needs from the dialect that speaks TwiML (Twilio's, handed in by the
    application): the session and the verbs sit below the dialects and never spell a dialect's names."""

    def request_params(self, call: Call) -> list[tuple[str, str]]:
        """The parameters of every request about `call` (TwiML fetches, action and detached requests)."""
        ...

    def error_code(self, error: RequestError) -> int:
        """The code a call's notification gives `error` (a `<Dial>` leg that could not be placed, ...)."""
        ...


class LiveCall:
    """`twiml.control.CallControl` for one call of the switch."""

    def __init__(self, engine: VoiceEngine, call: Call) -> None:
        self.engine = engine
        self._call = call

    @property
    def call(self) -> Call:
        return self._call

    @property
    def sid(self) -> str:
        return self._call.sid

    @property
    def clock(self) -> Clock:
        return self.engine.clock

    @property
    def answered(self) -> bool:
        return self.engine.calls.answered(self._call)

    def params(self) -> list[tuple[str, str]]:
        return self.engine.dialect.request_params(self._call)

    async def answer(self) -> None:
        calls = self.engine.calls
        calls.answer(self._call)
        await calls.media.wait_ready(self._call.sid, timeout=5.0)
        await self._confirmed(timeout=5.0)

    async def _confirmed(self, timeout: float) -> None:
        """Wait for the caller's ACK (the call's `in-progress`): media flows once 200 is sent, but what needs
        the call answered (a recording's tap) starts only then."""
        def past_ringing(c: Call) -> bool:
            return c.status is not CallStatus.RINGING and c.status is not CallStatus.QUEUED

        if not await self.engine.calls.wait_until(self._call, past_ringing, timeout):
            log.warning("%s: answered, but no ACK within %g s", self._call.sid, timeout)

    async def reject(self, code: int) -> None:
        self.engine.calls.reject(self._call, code)

    def hangup(self) -> None:
        self.engine.calls.hangup(self._call)

    async def play(self, path: Path, loop_forever: bool = False) -> str:
        return await self.engine.calls.media.play(self._call.sid, str(path), loop=loop_forever)

    async def speech(self, text: str, voice: str, language: str) -> Path:
        return await self.engine.speech.synthesize(text, voice, language)

    async def audio(self, url: str, local_files: bool) -> Path:
        """A Play URL as a bridge-rate WAV (cached).  A local file only when `local_files` (inline TwiML): a
        document fetched from an app can never make the switch read its own files."""
        if url.startswith(("http://", "https://")):
            return await self.engine.audio.from_url(url, self.engine.session)
        if not local_files:
            raise AudioError(f"not an http(s) URL: {url!r} (local files play only from inline TwiML)", url=url)
        return await asyncio.to_thread(self.engine.audio.from_file, url)

    async def beep(self) -> Path:
        return self.engine.beep_path

    def digits(self) -> asyncio.Queue[str]:
        return self.engine.calls.media.digits(self._call.sid)

    async def send_digits(self, digits: str) -> None:
        await self.engine.calls.send_digits(self._call, digits)

    def post_detached(self, url: str, method: str, extra: tuple[tuple[str, str], ...]) -> None:
        params = [*self.params(), *extra]

        async def post() -> None:
            try:
                await self.engine.fetcher.fetch(url, method, params)
            except TwimlError as exc:
                self.notify(exc.code, f"action request after the call moved on failed: {exc.message}", url, method,
                            warning=True)

        self.engine.background.spawn(post(), self._call.sid)

    def notify(self, code: int, message: str, url: str | None = None, method: str | None = None,
               warning: bool = False) -> None:
        self.engine.notifications.add(self._call.sid, code, message, url, method, WARNING if warning else ERROR)


class VoiceEngine:
    """Owns the interpreters of all calls and the shared HTTP session, speech and audio caches."""

    def __init__(self, calls: CallManager, data_dir: Path, auth_token: str, notifications: Notifications,
                 recordings: RecordingManager, tasks: TaskFactory[LiveCall], fetch_timeout: float = 15.0,
                 clock: Clock | None = None, *, dialect: TwimlDialect) -> None:
        self._fetch_timeout = fetch_timeout
        self.dialect = dialect
        self.calls = calls
        self.tasks = tasks  # the verb registry (switch.verbs.registry.task_for)
        self.clock = clock or Clock()
        self.notifications = notifications
        self.recordings = recordings
        self.speech = Speech(data_dir / "cache" / "speech")
        self.audio = AudioCache(data_dir / "cache" / "audio")
        self.beep_path = data_dir / "cache" / "beep.wav"
        self._auth_token = auth_token
        self.transport: HttpTransport  # TwiML requests
        self.session: aiohttp.ClientSession  # <Play> audio downloads
        self.fetcher: Fetcher
        self.fetch_observers: list[FetchObserver] = []  # each TwiML request's time and failure (the metrics)
        # Where each TwiML request of a call goes, with its response (the call's Events); set before `start`.
        self.request_log: Callable[[HttpExchange], None] | None = None
        self.interpreters: dict[str, Interpreter[LiveCall]] = {}
        self.background = TaskSet()  # work that outlives the verb that started it
        self.amd = MachineDetection(calls)  # answering-machine detection of the calls that ask for it
        self._ringbacks: dict[str, Path] = {}
        # The Conversations services <Connect><Conversation> uses; wired in by the application.
        self.conversations: Conversations | None = None
        # The calls' Media Streams (<Start>/<Connect><Stream>, <Stop>); wired in by the application.
        self.streams: StreamManager | None = None
        # The recognizer and the transcriptions (<Gather input="speech">, <Record transcribe>); wired in by the app.
        self.transcriptions: Transcriptions | None = None
        # The call queues <Enqueue> and <Dial><Queue> use (switch.core.queues); wired in by the application.
        self.queues: Queues | None = None
        # The conference rooms <Dial><Conference> seats calls in (switch.core.conferences); wired in likewise.
        self.conferences: Conferences | None = None

    def ringback_path(self, country: str) -> Path:
        """The ringback tone of `country` as a WAV (written once per country)."""
        path = self._ringbacks.get(country)
        if path is None:
            path = self.beep_path.parent / f"ringback-{country}.wav"
            if not path.exists():
                write_wav(path, ringback(country))
            self._ringbacks[country] = path
        return path

    async def start(self) -> None:
        # what a TwiML request tells the app about a call is on disk before it leaves (the store's group commit)
        self.transport = HttpTransport(self._fetch_timeout, f"softswitch/{__version__}", self.calls.store.commit)
        self.session = aiohttp.ClientSession()
        self.fetcher = fetcher = TimedFetcher(self.transport, self._sign, timeout=self._fetch_timeout)
        fetcher.observers = self.fetch_observers
        if self.request_log is not None:
            fetcher.exchange_observers.append(self._exchanged)
        if not self.beep_path.exists():
            write_wav(self.beep_path, sine(1000.0, 0.4, amplitude=0.4))
        self.amd.attach()
        self.calls.answered_hooks.append(self._on_answered)
        self.calls.ended_hooks.append(self._on_ended)
        self.calls.inbound_hook = self._on_inbound
        self.calls.redirect_hook = self._on_redirect

    async def close(self) -> None:
        for interpreter in list(self.interpreters.values()):
            interpreter.stop()
        await self.transport.close()
        await self.session.close()

    @staticmethod
    def _source(call: Call) -> Source | None:
        if call.twiml is not None:
            return Source(twiml=call.twiml)
        if call.url:
            return Source(url=call.url, method=call.method, fallback_url=call.fallback_url,
                          fallback_method=call.fallback_method)
        return None

    def _sign(self, method: str, url: str, params: list[tuple[str, str]]) -> tuple[str, dict[str, str]]:
        return signed_form_request(self._auth_token, method, url, params)

    def _exchanged(self, exchange: Exchange) -> None:
        """A TwiML request ended: log it against the call whose task made it (a `<Dial>` whisper: the parent's)."""
        sid = CALL_SID.get()
        if sid is None or self.request_log is None:
            return
        self.request_log(HttpExchange(sid, dt.datetime.fromtimestamp(exchange.at, dt.UTC), "twiml", exchange.method,
                                      exchange.url, exchange.params, exchange.status, exchange.content_type,
                                      exchange.body, exchange.duration_ms, exchange.error))

    def _run(self, call: Call, source: Source) -> None:
        interpreter = Interpreter(LiveCall(self, call), self.fetcher, self.tasks)
        self.interpreters[call.sid] = interpreter
        with call_context(call.sid):  # the session's task and its log lines carry the CallSid
            task = interpreter.start(source)
        task.add_done_callback(lambda _t: self._finished(call.sid, interpreter))

    def _finished(self, sid: str, interpreter: Interpreter[LiveCall]) -> None:
        if self.interpreters.get(sid) is interpreter:
            del self.interpreters[sid]

    def _on_answered(self, call: Call) -> Coroutine[Any, Any, None] | None:
        if call.direction is Direction.INBOUND or call.sid in self.interpreters:
            return None  # inbound calls started their TwiML before answering
        return self._run_answered(call)

    async def _run_answered(self, call: Call) -> None:
        await self.amd.settled(call)  # synchronous answering-machine detection holds the TwiML until it decides
        source = self._source(call)
        if source is not None and not call.terminal and call.sid not in self.interpreters:
            self._run(call, source)

    def _on_inbound(self, call: Call) -> bool:
        source = self._source(call)
        if source is None:
            return False
        self._run(call, source)
        return True

    def _on_redirect(self, call: Call) -> None:
        source = self._source(call)
        if source is None:
            return
        interpreter = self.interpreters.get(call.sid)
        if interpreter is not None:
            interpreter.redirect(source)
        elif call.status is CallStatus.IN_PROGRESS:
            self._run(call, source)
        # an unanswered outbound call runs the new Url/Twiml when answered

    def _on_ended(self, call: Call) -> None:
        interpreter = self.interpreters.pop(call.sid, None)
        if interpreter is not None:
            interpreter.stop()
