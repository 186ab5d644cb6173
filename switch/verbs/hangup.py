"""`<Hangup>`: end the call."""

from __future__ import annotations

from switch.session.voice import LiveCall
from switch.verbs.base import Task
from twiml import verbs
from twiml.control import STOP, Outcome


class Hangup(Task[verbs.Hangup]):
    """`<Hangup>`: end the call (BYE, or a final response if it was never answered); no attributes."""

    verb = verbs.Hangup

    async def run(self, call: LiveCall) -> Outcome:
        call.hangup()
        return STOP
