"""`<Start><Stream>`: a listen-only Media Stream of the call; the TwiML goes on at once."""

from __future__ import annotations

from switch.session.voice import LiveCall
from switch.verbs.base import Task, ensure_answered
from switch.verbs.stream import start_stream
from twiml import verbs
from twiml.control import CONTINUE, Outcome


class Start(Task[verbs.Start]):
    """`<Start><Stream url name track statusCallback statusCallbackMethod><Parameter name value/></Stream>`:
    answer the call if it is not, start streaming its `track` (``inbound_track``, the default; ``outbound_track``;
    ``both_tracks``) to `url` with the parameters as customParameters, and go on with the next verb without
    waiting for the socket (as Twilio does).  The stream lasts until `<Stop><Stream name>`, the REST update
    ``Status=stopped``, the server closing it, or the call's end; it reports to `statusCallback`.  A stream that
    cannot start (a url that is not ws/wss/http/https, a name already streaming on the call, a fifth stream) is a
    warning on the call, and the TwiML goes on."""

    verb = verbs.Start

    async def run(self, call: LiveCall) -> Outcome:
        await ensure_answered(call)
        start_stream(call, self.v.stream, self.document_url, bidirectional=False)
        return CONTINUE
