"""`<Gather>`: collect DTMF digits while prompts play."""

from __future__ import annotations

import asyncio
import contextlib

from switch.session.voice import LiveCall
from switch.verbs.base import Task, ensure_answered
from switch.verbs.pause import Pause
from switch.verbs.play import Play
from switch.verbs.say import Say
from twiml import verbs
from twiml.control import CONTINUE, Outcome

# What may be nested in <Gather> (the parser enforces it), each run as its own verb would be.
PROMPTS: dict[type, type[Say] | type[Play] | type[Pause]] = {verbs.Say: Say, verbs.Play: Play, verbs.Pause: Pause}


class Gather(Task[verbs.Gather]):
    """`<Gather input="dtmf" action method timeout numDigits finishOnKey actionOnEmptyResult>`: the nested
    Say/Play/Pause play with barge-in (the first digit stops them); then digits until `numDigits`, `finishOnKey`
    (default `#`) or `timeout` seconds (default 5) without a digit.  Digits (or actionOnEmptyResult) request
    `action` (default: the current document) with Digits and FinishedOnKey; no input and no
    actionOnEmptyResult goes on with the next verb.  Timers run on the call's clock.  `input="speech"` alone
    takes no input at all (no speech recognition here), so it ends after `timeout` as if nothing was said."""

    verb = verbs.Gather

    async def run(self, call: LiveCall) -> Outcome:
        await ensure_answered(call)
        queue = call.digits()
        while not queue.empty():  # digits pressed before the Gather began are not its input
            queue.get_nowait()
        if "dtmf" not in self.v.input.split():
            # input="speech" alone: keys are not input (as on Twilio), and there is no speech recognition
            # (the parser warned), so this Gather ends like one where the caller said nothing.
            queue = asyncio.Queue()
        prompts = asyncio.create_task(self._prompts(call))
        digits = ""
        finished_on = ""
        try:
            first = await self._next_digit(call, queue, prompts)
            if first is not None:
                prompts.cancel()  # barge-in
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
        if not digits and not finished_on and not self.v.action_on_empty_result:
            return CONTINUE
        action = self.v.action or self.document_url
        if action is None:
            return CONTINUE
        extra = [("Digits", digits)]
        if finished_on:
            extra.append(("FinishedOnKey", finished_on))
        return Outcome(next_url=action, method=self.v.method, extra=tuple(extra))

    async def _prompts(self, call: LiveCall) -> None:
        for child in self.v.children:
            # nested verbs come from the same document: their relative URLs resolve against it too
            await PROMPTS[type(child)](child, self.document_url).run(call)  # type: ignore[arg-type]

    async def _next_digit(self, call: LiveCall, queue: asyncio.Queue[str],
                          prompts: asyncio.Task[None]) -> str | None:
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
        return await self._wait(call, queue)

    async def _wait(self, call: LiveCall, queue: asyncio.Queue[str]) -> str | None:
        try:
            return await call.clock.wait_for(queue.get(), self.v.timeout)
        except TimeoutError:
            return None
