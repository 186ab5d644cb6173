"""A SIP REFER from the dialed party of a `<Dial>`: Twilio's `referUrl` (its "Inbound SIP REFER to Twilio").

While a `<Dial>` with `referUrl` is bridged, the worker accepts a REFER from the dialed party (202, NOTIFY
`100 Trying`; `switch.worker.refer` says how, without pjsua placing a call of its own) and reports it.  Then:

1. `referUrl` is requested (`referMethod`, POST by default) with the caller's standard parameters plus
   `ReferTransferTarget` (the Refer-To header's value as sent, angle brackets and URI headers included, as
   Twilio passes it), and, a softswitch extension in Twilio's `SipHeader_` style, `SipHeader_Referred-By` and
   each `X-` header of the REFER as `SipHeader_<name>`.
2. Its TwiML is parsed whole.  If that worked, the transferor gets NOTIFY `SIP/2.0 200 OK` (the subscription
   ends) and is hung up; the `<Dial>` ends (`DialCallStatus=completed`; its `action`, if any, is told and its
   answer ignored, as for an interrupted dial); the `referUrl` document runs on the caller next (typically a
   `<Dial>` to the target).  This is Twilio's behaviour without `answerOnBridge`: the NOTIFY and the hang-up
   come right after the webhook.
3. If the request or the document failed, the call gets a notification (11200, 12100, ...), the transferor gets
   NOTIFY `SIP/2.0 503 Service Unavailable`, and the conversation goes on: a failed transfer never drops the
   caller here (Twilio drops the caller in this case when `answerOnBridge` is false).

A REFER on a `<Dial>` without `referUrl` is refused by the worker (403) and the call gets Twilio's notification
13802 ("Dial: No referUrl attribute specified"); the conversation goes on.  Not done: Twilio's `answerOnBridge`
variant (the transferor stays bridged until the target answers, and comes back if it does not).
"""

from __future__ import annotations

import logging

from switch.core.model import Call
from switch.session.voice import LiveCall
from switch.workers.protocol import ReferReceived, ReferRefused
from twiml import verbs
from twiml.errors import TwimlError
from twiml.fetch import Document, resolve
from twiml.parse import parse

log = logging.getLogger("switch.verbs.dial")

NO_REFER_URL = 13802  # Twilio: "Dial: No referUrl attribute specified"
TRANSFERRED = 200  # the sipfrag of a transfer taken
TRANSFER_FAILED = 503  # the sipfrag of a referUrl that gave no TwiML


def refer_params(event: ReferReceived) -> tuple[tuple[str, str], ...]:
    """What `referUrl` is told beyond the caller's standard parameters."""
    out = [("ReferTransferTarget", event.refer_to)]
    if event.referred_by:
        out.append(("SipHeader_Referred-By", event.referred_by))
    out += [(f"SipHeader_{name}", value) for name, value in event.headers]
    return tuple(out)


async def watch_refers(live: LiveCall, dial: verbs.Dial, document_url: str | None, child: Call) -> Document:
    """Until a REFER from `child` is taken: the `referUrl` document to run on the caller (the transferor has been
    told 200 OK; the caller hangs it up).  Refused and failed REFERs are reported and the wait goes on."""
    media = live.engine.calls.media
    refers = media.refers(child.sid)
    while True:
        event = await refers.get()
        if isinstance(event, ReferRefused):
            if dial.refer_url is None:
                live.notify(NO_REFER_URL, f"Dial: No referUrl attribute specified (REFER to {event.refer_to} "
                                          f"from {child.sid} refused {event.code})", warning=True)
            continue
        document = await _fetch(live, dial, document_url, event)
        media.refer_notify(child.sid, TRANSFERRED if document is not None else TRANSFER_FAILED)
        if document is not None:
            return document


async def _fetch(live: LiveCall, dial: verbs.Dial, document_url: str | None,
                 event: ReferReceived) -> Document | None:
    assert dial.refer_url is not None  # the worker accepts REFERs only when there is one
    url = resolve(document_url, dial.refer_url)
    try:
        document = await live.engine.fetcher.fetch(url, dial.refer_method, [*live.params(), *refer_params(event)])
        parse(document.text)  # the whole document must be valid before the transferor is let go
    except TwimlError as exc:
        live.notify(exc.code, f"referUrl: {exc.message}", url=url, method=dial.refer_method)
        return None
    log.info("%s: REFER to %s taken; running %s", live.sid, event.refer_to, document.url)
    return document
