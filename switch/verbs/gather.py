"""`<Gather>`: collect DTMF digits or speech while prompts play."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from media.errors import MediaError
from media.recognize import Partial, Result, parse_hints
from switch.session.voice import LiveCall
from switch.verbs.base import Task, ensure_answered
from switch.verbs.gather_speech import SpeechListener, post_callback
from switch.verbs.pause import Pause
from switch.verbs.play import Play
from switch.verbs.say import Say
from switch.workers.media_taps import AudioTap
from twiml import verbs
from twiml.control import CONTINUE, Outcome
from twiml.fetch import resolve

log = logging.getLogger("switch.gather")

# What may be nested in <Gather> (the parser enforces it), each run as its own verb would be.
PROMPTS: dict[type, type[Say] | type[Play] | type[Pause]] = {verbs.Say: Say, verbs.Play: Play, verbs.Pause: Pause}

SPEECH_UNAVAILABLE = 12200  # a speech <Gather> that cannot listen (no audio tap): a warning on the call
PROFANITY = frozenset({"fuck", "fucking", "fucked", "shit", "bitch", "bastard", "asshole", "cunt", "dick", "damn",
                       "crap", "piss", "bullshit", "motherfucker"})
"""Words profanityFilter (default true) masks in SpeechResult: all but the first letter become `*`, as Twilio's."""
SPEECH_GRACE = 10  # seconds past maxSpeechTime that a started utterance may take to end on the clock


class Gather(Task[verbs.Gather]):
    """`<Gather input action method timeout numDigits finishOnKey actionOnEmptyResult speechTimeout
    maxSpeechTime hints language partialResultCallback partialResultCallbackMethod bargeIn profanityFilter>`.

    The nested Say/Play/Pause play with barge-in (the first digit, or the start of speech, stops them; with
    `bargeIn="false"` speech is only heard once they end); then, within `timeout` seconds (default 5):

    - `dtmf` (the default input): digits until `numDigits`, `finishOnKey` (default `#`) or `timeout` seconds
      without a digit; `action` (default: the current document) gets Digits and FinishedOnKey.
    - `speech`: the caller's audio is recognized (`switch.verbs.gather_speech`, the configured recognizer, en-US)
      with `hints` as the phrases to expect, until `speechTimeout` seconds of silence (default: `timeout`;
      `auto`: a pause) or `maxSpeechTime` (default 60); `action` gets SpeechResult and Confidence.  Each new
      hypothesis goes to `partialResultCallback` with UnstableSpeechResult, StableSpeechResult, Stability and
      SequenceNumber.  `profanityFilter` (default true) masks profane words (`f***`).  With `dtmf speech`,
      whichever comes first wins.

    No input (or an empty recognition) and no actionOnEmptyResult goes on with the next verb.  Timers run on
    the call's clock; speech timing counts audio frames."""

    verb = verbs.Gather

    async def run(self, call: LiveCall) -> Outcome:
        await ensure_answered(call)
        queue = call.digits()
        while not queue.empty():  # digits pressed before the Gather began are not its input
            queue.get_nowait()
        modes = self.v.input.split()
        if "dtmf" not in modes:
            queue = asyncio.Queue()  # input="speech" alone: keys are not input (as on Twilio)
        listener = await self._listen(call) if "speech" in modes else None
        prompts = asyncio.create_task(self._prompts(call))
        digits = ""
        finished_on = ""
        result: Result | None = None
        try:
            first = await self._first_input(call, queue, prompts, listener)
            if first is not None or (listener is not None and listener.started.is_set()):
                prompts.cancel()  # barge-in
            if listener is not None and listener.started.is_set() and first is None:
                result = await self._speech_result(call, listener)
            elif first is not None:
                if listener is not None:
                    await listener.close()
                while first is not None:
                    if first == self.v.finish_on_key and self.v.finish_on_key:
                        finished_on = first
                        break
                    digits += first
                    if self.v.num_digits is not None and len(digits) >= self.v.num_digits:
                        break
                    first = await self._wait(call, queue)
        finally:
            prompts.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await prompts
            if listener is not None:
                await listener.close()
                listener.stop_tap()
        return self._outcome(digits, finished_on, result)

    async def _speech_result(self, call: LiveCall, listener: GatherListener) -> Result | None:
        """The listener's result; its end counts audio frames, so a call whose audio stops flowing (no RTP, no
        hang-up) is bounded on the clock too: maxSpeechTime plus a grace, then no result."""
        try:
            return await call.clock.wait_for(listener.result(), self.v.max_speech_time + SPEECH_GRACE)
        except TimeoutError:
            log.warning("%s: <Gather> speech: no end of speech within %d s; no result", call.sid,
                        self.v.max_speech_time + SPEECH_GRACE)
            return None

    def _outcome(self, digits: str, finished_on: str, result: Result | None) -> Outcome:
        said = result is not None and bool(result.text)
        if not digits and not finished_on and not said and not self.v.action_on_empty_result:
            return CONTINUE
        action = self.v.action or self.document_url
        if action is None:
            return CONTINUE
        extra: list[tuple[str, str]] = []
        if said and result is not None:
            text = mask_profanity(result.text) if self.v.profanity_filter else result.text
            extra += [("SpeechResult", text), ("Confidence", str(round(result.confidence, 6)))]
        elif "dtmf" in self.v.input.split() or digits:
            extra.append(("Digits", digits))
            if finished_on:
                extra.append(("FinishedOnKey", finished_on))
        return Outcome(next_url=action, method=self.v.method, extra=tuple(extra))

    async def _listen(self, call: LiveCall) -> GatherListener | None:
        """A listener on the caller's audio, or None (with a warning on the call) when there is no audio tap."""
        transcriptions = call.engine.transcriptions
        if transcriptions is None:
            call.notify(SPEECH_UNAVAILABLE, "<Gather> speech input: no recognizer is configured; speech is not "
                        "heard", warning=True)
            return None
        try:
            tap = await call.engine.calls.media.tap(call.sid, ("inbound",), False)
        except MediaError as exc:
            call.notify(SPEECH_UNAVAILABLE, f"<Gather> speech input: the caller's audio cannot be tapped ({exc}); "
                        "speech is not heard", warning=True)
            return None
        timeout = self.v.speech_timeout
        seconds = None if timeout == "auto" else float(self.v.timeout if timeout is None else timeout)
        partial_url = (resolve(self.document_url, self.v.partial_result_callback)
                       if self.v.partial_result_callback else None)
        listener = GatherListener(transcriptions.recognizer, parse_hints(self.v.hints), seconds,
                                  self.v.max_speech_time, None)
        listener.tap = tap
        if partial_url is not None:
            listener.on_partial = lambda partial, n: _send_partial(call, partial_url, self.v, partial, n)
        listener.listening = self.v.barge_in or not self.v.children
        listener.start(tap.frames)
        return listener

    async def _first_input(self, call: LiveCall, queue: asyncio.Queue[str], prompts: asyncio.Task[None],
                           listener: GatherListener | None) -> str | None:
        """The first digit, or None when speech started first or nothing came within `timeout` s after the
        prompts (speech under way at the timeout is waited for: its end is the listener's)."""
        getter = asyncio.create_task(queue.get())
        speech = asyncio.create_task(listener.started.wait()) if listener is not None else None
        try:
            waiting: set[asyncio.Future[Any]] = {getter, prompts}
            if speech is not None:
                waiting.add(speech)
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                return getter.result()
            if speech is not None and speech.done():
                return None
            if not prompts.cancelled() and prompts.exception() is not None:
                raise prompts.exception()  # type: ignore[misc]
            if listener is not None:
                listener.listening = True  # bargeIn="false": the prompts are over, now speech counts
            rest = {getter} if speech is None else {getter, speech}
            try:
                await call.clock.wait_for(asyncio.wait(rest, return_when=asyncio.FIRST_COMPLETED), self.v.timeout)
            except TimeoutError:
                return None
            return getter.result() if getter.done() else None
        finally:
            for task in (getter, speech):
                if task is not None and not task.done():
                    task.cancel()

    async def _prompts(self, call: LiveCall) -> None:
        for child in self.v.children:
            # nested verbs come from the same document: their relative URLs resolve against it too
            await PROMPTS[type(child)](child, self.document_url).run(call)  # type: ignore[arg-type]

    async def _wait(self, call: LiveCall, queue: asyncio.Queue[str]) -> str | None:
        try:
            return await call.clock.wait_for(queue.get(), self.v.timeout)
        except TimeoutError:
            return None


class GatherListener(SpeechListener):
    """A `SpeechListener` that owns its tap."""

    tap: AudioTap | None = None

    def stop_tap(self) -> None:
        if self.tap is not None:
            self.tap.stop()


def mask_profanity(text: str) -> str:
    """`text` with each word of PROFANITY masked (`f***`)."""
    return " ".join(w[0] + "*" * (len(w) - 1) if w.lower() in PROFANITY else w for w in text.split(" "))


async def _send_partial(call: LiveCall, url: str, verb: verbs.Gather, partial: Partial, sequence: int) -> None:
    """One partialResultCallback request (profanity masked as in the result)."""
    mask = mask_profanity if verb.profanity_filter else str
    await post_callback(call, url, verb.partial_result_callback_method,
                        [("UnstableSpeechResult", mask(partial.text)), ("StableSpeechResult", mask(partial.stable)),
                         ("Stability", f"{partial.stability:.2f}"), ("SequenceNumber", str(sequence))],
                        "partialResultCallback")
