"""Twilio's Call Events (every request the switch made about a call) and the call's SIP ladder.

Routes (HTTP Basic, see `switch.dialects.auth`)::

    GET /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}/Events.json     list -> 200 page of `events`
    GET /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}/SipTrace.json   list -> 200 page of `messages`

An event is Twilio's pair: `request` {url, method, parameters} (the parameters' names in snake_case, as Twilio
renders them: `CallSid` -> `call_sid`) and `response` {date_created, request_duration (ms), response_code,
content_type, response_body (an excerpt)}.  The list is in the order the requests left; a webhook retried is one
event per attempt; a request that got no response has `response_code` null.  Twilio's own events also list the
REST request that created the call; the switch lists only the requests it made.

`SipTrace.json` is the switch's own (Twilio has none): every SIP message the call's legs sent and received, when
`[server] sip_trace = true`; each has `direction` ("sent"/"received"), `leg`, `peer`, `date_created` (with
milliseconds, ISO 8601), `first_line` and the whole `message`.  A call the switch does not know is a 404.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from aiohttp import web

from switch.core.call_events import CallRequests, HttpExchange, SipLine
from switch.core.errors import NotFound
from switch.core.paging import PageKey, select_page
from switch.core.service import CallService
from switch.dialects.auth import authenticated
from switch.dialects.errors import API_ROOT
from switch.dialects.forms import cut_page, parse_page_request
from switch.dialects.twilio.api import rfc2822, slice_envelope

Row = TypeVar("Row", HttpExchange, SipLine)

_ORDER_ONLY = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # the SIP ladder pages by its own order alone
_WORD_START = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake_case(name: str) -> str:
    """A request parameter's name as Twilio's Call Events show it: `CallSid` -> `call_sid`, `SipResponseCode`
    -> `sip_response_code`, `AddOns` -> `add_ons`, `CallSID` -> `call_sid`."""
    return _WORD_START.sub("_", name).replace("-", "_").lower()


def parameters(params: list[tuple[str, str]]) -> dict[str, str]:
    """The parameters as Twilio's `request.parameters`; a name sent more than once has its values joined by
    commas (`StatusCallbackEvent`), in the order sent."""
    out: dict[str, str] = {}
    for name, value in params:
        key = snake_case(name)
        out[key] = f"{out[key]},{value}" if key in out else value
    return out


def event_to_json(exchange: HttpExchange) -> dict[str, Any]:
    """One request of a call as Twilio's Call Event resource."""
    return {
        "request": {"url": exchange.url, "method": exchange.method, "parameters": parameters(exchange.params)},
        "response": {
            "date_created": rfc2822(exchange.at),
            "request_duration": exchange.duration_ms,
            "response_code": exchange.status,
            "content_type": exchange.content_type,
            "response_body": exchange.body,
        },
    }


def sip_to_json(line: SipLine) -> dict[str, Any]:
    """One traced SIP message."""
    return {
        "date_created": line.at.isoformat(timespec="milliseconds"),
        "leg": line.leg,
        "direction": line.direction,
        "peer": line.peer,
        "first_line": line.first_line,
        "message": line.message,
    }


def exchange_key(exchange: HttpExchange) -> PageKey:
    """An event's place in its list: when the request left, then the order it was recorded."""
    return PageKey(exchange.at, f"EV{exchange.id:032d}")


def sip_key(line: SipLine) -> PageKey:
    """A SIP message's place in the ladder: the order the workers reported it (their clocks may differ)."""
    return PageKey(_ORDER_ONLY, f"SM{line.id:032d}")


class TwilioCallEvents:
    """The Events and SipTrace handlers, bound to the call service and the request log."""

    def __init__(self, service: CallService, requests: CallRequests) -> None:
        self.service = service
        self.requests = requests

    def _known(self, request: web.Request) -> str:
        call_sid = request.match_info["CallSid"]
        call = self.service.get_call(call_sid)
        if call is None or call.account_sid != self.service.account_sid:
            raise NotFound(request.path)
        return call_sid

    async def read(self, request: web.Request) -> web.Response:
        """GET .../Calls/{CallSid}/Events.json: one page, in the order the requests left."""
        return self._page(request, "Events.json", "events", self.requests.for_call, exchange_key, event_to_json)

    async def sip_trace(self, request: web.Request) -> web.Response:
        """GET .../Calls/{CallSid}/SipTrace.json: the call's SIP ladder, one page, in the order seen."""
        return self._page(request, "SipTrace.json", "messages", self.requests.sip_ladder, sip_key, sip_to_json)

    def _page(self, request: web.Request, resource: str, key: str, rows: Callable[[str], Sequence[Row]],
              order: Callable[[Row], PageKey], render: Callable[[Row], dict[str, Any]]) -> web.Response:
        """One page of a call's list `resource` (its items under `key`), `rows(call_sid)` sorted by `order`."""
        call_sid = self._known(request)
        req = parse_page_request(request.query)
        found = select_page(rows(call_sid), order, False, req.cursor, req.offset, req.page_size + 1)
        path = f"{API_ROOT}/Accounts/{self.service.account_sid}/Calls/{call_sid}/{resource}"
        page = cut_page(found, req, order)
        return web.json_response(slice_envelope(key, page, render, req, path, []))


def add_twilio_event_routes(app: web.Application, service: CallService, requests: CallRequests) -> None:
    """Mount a call's Events and SipTrace lists on `app` (which needs `error_middleware`)."""
    api = TwilioCallEvents(service, requests)
    base = f"{API_ROOT}/Accounts/{{AccountSid}}/Calls/{{CallSid:[A-Za-z0-9]+}}"
    app.router.add_get(f"{base}/Events.json", authenticated(service, api.read), name="twilio-call-events")
    app.router.add_get(f"{base}/SipTrace.json", authenticated(service, api.sip_trace), name="twilio-call-sip-trace")
