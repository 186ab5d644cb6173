"""`<Play>`: an audio URL, or DTMF digits."""

from __future__ import annotations

from media.audio import AudioError
from switch.session.voice import LiveCall
from switch.verbs.base import Task, ensure_answered
from twiml import verbs
from twiml.control import CONTINUE, Outcome
from twiml.fetch import HTTP_RETRIEVAL_FAILURE, resolve


class Play(Task[verbs.Play]):
    """`<Play loop digits>`: the audio at the URL `loop` times (default 1; 0 = until interrupted), or the DTMF
    `digits` (`w` waits half a second).

    A relative URL is resolved against the document it came from, as Twilio does.  In a fetched document the
    URL must be http(s): a document from an app can never make the switch read its own files.  Local files
    are played only from inline TwiML (given by an authenticated REST request).  An unplayable URL is reported
    (11200) and the call goes on with the next verb, as Twilio does.
    """

    verb = verbs.Play

    async def run(self, call: LiveCall) -> Outcome:
        await ensure_answered(call)
        if self.v.digits:
            await call.send_digits(self.v.digits)
        if not self.v.url:
            return CONTINUE
        url = resolve(self.document_url, self.v.url)
        try:
            path = await call.audio(url, local_files=self.document_url is None)
        except AudioError as exc:
            call.notify(HTTP_RETRIEVAL_FAILURE, f"<Play> could not fetch or decode {url}: {exc}",
                        url=url, method="GET", warning=True)
            return CONTINUE
        if self.v.loop == 0:
            await call.play(path, loop_forever=True)
        for _ in range(self.v.loop):
            await call.play(path)
        return CONTINUE
