"""The speech half of `<Gather>`: a tap of the caller's audio, speech detection, endpointing and recognition.

`SpeechListener` taps the call's inbound audio (20 ms μ-law frames), decodes it and asks pocketsphinx's voice
activity detector whether each frame is speech.  `START_FRAMES` voiced frames in a row start the utterance
(`started` is set: the Gather's barge-in), with `PREROLL_MS` of audio before them so that the first
syllable is heard and the recognizer has silence to measure.  The utterance ends after `speech_timeout`
seconds without speech (`auto`: `AUTO_SILENCE`), after `maxSpeechTime`, or when the tap ends (hang-up); then
`result` is the recognizer's answer.

Timing counts frames, so it is audio time, not the clock: a test hands in a queue of frames and needs no sleeps.
Partial results leave in order, one request at a time, numbered from 0 (`SequenceNumber`); a newer partial that
arrives while one is being sent replaces the ones still waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from media.recognize import Partial, RecognizeError, Recognizer, Result, Stream
from media.recognize_sphinx import SpeechActivity
from media.ulaw import ulaw_decode
from switch.session.voice import LiveCall
from switch.workers.media_taps import AudioFrame
from twiml.errors import INVALID_CONTENT_TYPE, TwimlError

log = logging.getLogger("switch.gather")

FRAME_MS = 20
START_FRAMES = 3  # 60 ms of speech starts an utterance (a click or a breath does not)
PREROLL_MS = 1000  # pocketsphinx's noise and cepstral-mean estimates need silence before the speech: measured,
# 0.3 s of it loses most phrases, 0.5 s some, 1 s none
AUTO_SILENCE = 1.0  # speechTimeout="auto": a pause this long ends the utterance

PartialSink = Callable[[Partial, int], Awaitable[None]]


class SpeechListener:
    """Listens to one `<Gather>`'s caller (see the module docstring).  `listening` False drops audio (bargeIn
    false while the prompts play)."""

    def __init__(self, recognizer: Recognizer, hints: Sequence[str], speech_timeout: float | None,
                 max_speech_time: float, on_partial: PartialSink | None = None) -> None:
        self.recognizer = recognizer
        self.hints = tuple(hints)
        self.end_silence_ms = int((AUTO_SILENCE if speech_timeout is None else speech_timeout) * 1000)
        self.max_speech_ms = int(max_speech_time * 1000)
        self.on_partial = on_partial
        self.listening = True
        self.started = asyncio.Event()
        self._task: asyncio.Task[Result] | None = None
        self._sender: asyncio.Task[None] | None = None

    def start(self, frames: asyncio.Queue[AudioFrame | None]) -> None:
        """Listen to `frames` (a tap's queue, None at its end) until the utterance ends."""
        self._task = asyncio.create_task(self._listen(frames))

    @property
    def done(self) -> asyncio.Task[Result]:
        assert self._task is not None, "start() first"
        return self._task

    async def result(self) -> Result:
        """What was said ('' when nothing was, or the recognizer failed)."""
        return await self.done

    async def close(self) -> None:
        """Stop listening at once (digits won, the Gather was cancelled)."""
        for task in (self._task, self._sender):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _listen(self, frames: asyncio.Queue[AudioFrame | None]) -> Result:
        activity = SpeechActivity()
        preroll: deque[bytes] = deque(maxlen=PREROLL_MS // FRAME_MS)
        voiced_run = 0
        stream: Stream | None = None
        silence_ms = speech_ms = 0
        while True:
            try:
                frame = await frames.get()
            except asyncio.CancelledError:
                if stream is not None:
                    stream.discard()
                raise
            if frame is None:
                break
            if not self.listening:
                continue
            pcm = ulaw_decode(frame.payload)
            voiced = activity.is_speech(pcm)
            if stream is None:
                preroll.append(pcm)
                voiced_run = voiced_run + 1 if voiced else 0
                if voiced_run >= START_FRAMES:
                    stream = Stream(self.recognizer, self.hints)
                    lead = b"".join(preroll)  # up to PREROLL_MS; less when speech began sooner: pad with silence
                    stream.feed(bytes(max(0, PREROLL_MS * 16 - len(lead))) + lead)
                    if self.on_partial is not None and self.recognizer.partials:
                        self._sender = asyncio.create_task(self._send_partials(stream.partials))
                    self.started.set()
                continue
            stream.feed(pcm)
            speech_ms += FRAME_MS
            silence_ms = 0 if voiced else silence_ms + FRAME_MS
            if silence_ms >= self.end_silence_ms or speech_ms >= self.max_speech_ms:
                break
        if stream is None:
            return Result("", 0.0)
        try:
            result = await stream.finish()
        except RecognizeError as exc:
            log.warning("speech recognition failed: %s", exc)
            result = Result("", 0.0)
        if self._sender is not None:
            await asyncio.sleep(0)  # the last partial queued before the result leaves first
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        return result

    async def _send_partials(self, partials: asyncio.Queue[Partial]) -> None:
        assert self.on_partial is not None
        sequence = 0
        while True:
            partial = await partials.get()
            while not partials.empty():  # only the newest of a backlog is worth sending
                partial = partials.get_nowait()
            await self.on_partial(partial, sequence)
            sequence += 1


async def post_callback(call: LiveCall, url: str, method: str, extra: list[tuple[str, str]], what: str) -> None:
    """A callback request (partialResultCallback, transcribeCallback) with the call's parameters and `extra`.

    Its answer is not a document: any 2xx is fine, whatever its content type; a failure is a warning on the
    call (`what` names the callback)."""
    try:
        await call.engine.fetcher.fetch(url, method, [*call.params(), *extra])
    except TwimlError as exc:
        if exc.code != INVALID_CONTENT_TYPE:
            call.notify(exc.code, f"{what} failed: {exc.message}", url, method, warning=True)
