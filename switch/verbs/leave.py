"""`<Leave>`: leave the queue the call waits in."""

from __future__ import annotations

from switch.session.voice import LiveCall
from switch.verbs.base import Task
from twiml.control import CONTINUE, Outcome
from twiml.verbs_callcenter import Leave as LeaveVerb


class Leave(Task[LeaveVerb]):
    """`<Leave/>` (no attributes): in an `<Enqueue>` waitUrl document it takes the caller out of the queue, and
    the call goes on with the `<Enqueue>` action (QueueResult=leave) or the verb after `<Enqueue>`; the wait loop
    (`switch.verbs.wait_loop`) handles it there.  Anywhere else it does nothing and the call goes on."""

    verb = LeaveVerb

    async def run(self, call: LiveCall) -> Outcome:
        return CONTINUE
