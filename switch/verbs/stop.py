"""`<Stop><Stream>`: stop a listen-only Media Stream of the call."""

from __future__ import annotations

import logging

from switch.session.voice import LiveCall
from switch.verbs.base import Task
from switch.verbs.stream import streams_of
from twiml import verbs
from twiml.control import CONTINUE, Outcome

log = logging.getLogger("switch.verbs.stop")


class Stop(Task[verbs.Stop]):
    """`<Stop><Stream name/></Stop>`: stop the call's listen-only stream called `name` (sending ``stop`` and
    closing its socket); a `<Stream>` without a name stops all of them.  Nothing to stop is not an error (the
    server may have closed it already).  Goes on with the next verb at once."""

    verb = verbs.Stop

    async def run(self, call: LiveCall) -> Outcome:
        streams = streams_of(call).listen_only(call.sid, self.v.stream.name)
        if not streams:
            log.info("%s: <Stop><Stream name=%r>: no such stream is running", call.sid, self.v.stream.name)
        for stream in streams:
            stream.stop()
        return CONTINUE
