"""`<Say>`: text to speech."""

from __future__ import annotations

from switch.session.voice import LiveCall
from switch.verbs.base import Task, ensure_answered
from twiml import verbs
from twiml.control import CONTINUE, Outcome


class Say(Task[verbs.Say]):
    """`<Say voice language loop>`: espeak-ng speech (cached), `loop` times; `loop="0"` repeats until
    interrupted.  Defaults: voice man, language en-US, loop 1.  Empty text is skipped."""

    verb = verbs.Say

    async def run(self, call: LiveCall) -> Outcome:
        await ensure_answered(call)
        if not self.v.text.strip():
            return CONTINUE
        path = await call.speech(self.v.text, self.v.voice, self.v.language)
        if self.v.loop == 0:
            await call.play(path, loop_forever=True)
        for _ in range(self.v.loop):
            await call.play(path)
        return CONTINUE
