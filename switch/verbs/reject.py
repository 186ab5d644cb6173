"""`<Reject>`: refuse an unanswered call."""

from __future__ import annotations

from switch.session.voice import LiveCall
from switch.verbs.base import Task
from twiml import verbs
from twiml.control import STOP, Outcome

REJECT_CODES = {"rejected": 603, "busy": 486}


class Reject(Task[verbs.Reject]):
    """`<Reject reason="rejected|busy">` (default rejected): refuse an unanswered call with 603 or 486 (never
    answered, so nothing is billed); on an answered call it hangs up."""

    verb = verbs.Reject

    async def run(self, call: LiveCall) -> Outcome:
        if call.answered:
            call.hangup()
        else:
            await call.reject(REJECT_CODES[self.v.reason])
        return STOP
