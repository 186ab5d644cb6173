"""`<Pause>`: silence."""

from __future__ import annotations

from switch.session.voice import LiveCall
from switch.verbs.base import Task, ensure_answered
from twiml import verbs
from twiml.control import CONTINUE, Outcome


class Pause(Task[verbs.Pause]):
    """`<Pause length>`: silence for `length` seconds (default 1), timed by the call's clock."""

    verb = verbs.Pause

    async def run(self, call: LiveCall) -> Outcome:
        await ensure_answered(call)
        await call.clock.sleep(self.v.length)
        return CONTINUE
