"""`<Redirect>`: continue with another document."""

from __future__ import annotations

from switch.session.voice import LiveCall
from switch.verbs.base import Task
from twiml import verbs
from twiml.control import Outcome


class Redirect(Task[verbs.Redirect]):
    """`<Redirect method>`: continue with the document at the URL (relative to the current one); method
    defaults to POST."""

    verb = verbs.Redirect

    async def run(self, call: LiveCall) -> Outcome:
        return Outcome(next_url=self.v.url, method=self.v.method)
