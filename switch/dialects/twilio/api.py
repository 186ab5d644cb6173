"""Twilio's 2010-04-01 Calls resource over a `CallService`, close enough that the official client works.

Routes (all HTTP Basic with the account SID and auth token, see `switch.dialects.auth`)::

    POST   /2010-04-01/Accounts/{AccountSid}/Calls.json            create  -> 201 Call
    GET    /2010-04-01/Accounts/{AccountSid}/Calls.json            list    -> 200 page of Calls
    GET    /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json  fetch   -> 200 Call
    POST   /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json  update  -> 200 Call
    DELETE /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json  delete  -> 204

Twilio's names live only here and in `twilio_params`; the service sees snake_case dataclasses.  Lists page
by cursor (`switch.core.paging`): `next_page_uri` carries `PageToken=PA<sid>-<µs>`, the sort key of the page's
last call, so the client follows it without knowing how, and calls created or deleted meanwhile shift nothing.
Errors are `ApiError`s rendered by `switch.dialects.errors.error_middleware`, which the application must install.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from switch.core.errors import NotFound
from switch.core.metrics import media_quality
from switch.core.model import Call
from switch.core.paging import Cursor, PageKey
from switch.core.service import CallService
from switch.dialects.auth import authenticated
from switch.dialects.errors import API_ROOT
from switch.dialects.formats import rfc2822 as callback_date
from switch.dialects.forms import PageRequest, PageSlice, cut_page, page_token, parse_page_request, read_form
from switch.dialects.twilio.params import FILTER_PARAMS, parse_call_filter, parse_call_update, parse_new_call

API_VERSION = "2010-04-01"

# Call subresources, as Twilio lists them in `subresource_uris`.
_SUBRESOURCES = (
    ("notifications", "Notifications"),
    ("recordings", "Recordings"),
    ("payments", "Payments"),
    ("events", "Events"),
    ("siprec", "Siprec"),
    ("streams", "Streams"),
    ("transcriptions", "Transcriptions"),
    ("user_defined_message_subscriptions", "UserDefinedMessageSubscriptions"),
    ("user_defined_messages", "UserDefinedMessages"),
)
_NANP = re.compile(r"\+1([2-9][0-9]{2})([2-9][0-9]{2})([0-9]{4})")


def rfc2822(moment: dt.datetime | None) -> str | None:
    """Twilio's date format, e.g. "Tue, 31 Aug 2010 20:36:28 +0000" (naive datetimes are taken as UTC)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return callback_date(moment)


def format_address(address: str) -> str:
    """Twilio's `*_formatted`: North American numbers as "(415) 555-1212", anything else unchanged."""
    match = _NANP.fullmatch(address)
    return f"({match[1]}) {match[2]}-{match[3]}" if match else address


def call_uri(account_sid: str, call_sid: str, base: str = API_ROOT) -> str:
    """The `uri` of a Call, relative to the API host as Twilio gives it."""
    return f"{base}/Accounts/{account_sid}/Calls/{call_sid}.json"


def call_to_json(call: Call, base: str = API_ROOT) -> dict[str, Any]:
    """A `Call` as Twilio's Call resource, every field present.

    `base` is the path prefix of the URIs in the document ("/2010-04-01", as Twilio has them; the client
    joins them to its own base URL).
    """
    uri = call_uri(call.account_sid, call.sid, base)
    prefix = uri.removesuffix(".json")
    return {
        "sid": call.sid,
        "date_created": rfc2822(call.date_created),
        "date_updated": rfc2822(call.date_updated),
        "parent_call_sid": call.parent_call_sid,
        "account_sid": call.account_sid,
        "to": call.to,
        "to_formatted": format_address(call.to),
        "from": call.from_,
        "from_formatted": format_address(call.from_),
        "phone_number_sid": call.phone_number_sid,
        "status": call.status.value,
        "start_time": rfc2822(call.start_time),
        "end_time": rfc2822(call.end_time),
        "duration": None if call.duration is None else str(call.duration),
        "price": None,
        "price_unit": "USD",
        "direction": call.direction.value,
        "answered_by": call.answered_by,
        "api_version": API_VERSION,
        "forwarded_from": call.forwarded_from,
        "group_sid": None,
        "caller_name": call.caller_name,
        "queue_time": "0",
        "stir_verstat": None,
        "trunk_sid": None,
        "uri": uri,
        "subresource_uris": {key: f"{prefix}/{name}.json" for key, name in _SUBRESOURCES},
        # Not Twilio's: the RTP of the finished leg as its media worker counted it (switch.core.metrics); null
        # while the call is live or when it never had audio.  The official clients ignore keys they do not know.
        "softswitch_media_quality": None if call.media_quality is None else media_quality(call.media_quality),
    }


def _page_uri(path: str, filters: list[tuple[str, str]], page_size: int, page: int, token: str | None) -> str:
    query = [*filters, ("PageSize", str(page_size)), ("Page", str(page))]
    if token:
        query.append(("PageToken", token))
    return f"{path}?{urlencode(query)}"


def list_envelope(
    calls: list[Call], has_next: bool, req: PageRequest, path: str, filters: list[tuple[str, str]]
) -> dict[str, Any]:
    """Twilio's list page of calls paged by offset (see `slice_envelope` for the cursor pages `read` serves)."""
    return page_envelope("calls", [call_to_json(c) for c in calls], has_next, req, path, filters)


def _envelope(key: str, items: list[dict[str, Any]], req: PageRequest, path: str, filters: list[tuple[str, str]],
              next_page: tuple[int, str | None] | None, previous_page: tuple[int, str | None] | None,
              ) -> dict[str, Any]:
    size = req.page_size
    own_token = req.token or (f"PT{req.offset}" if req.offset and req.cursor is None else None)
    return {
        key: items,
        "end": req.offset + max(len(items) - 1, 0),
        "first_page_uri": _page_uri(path, filters, size, 0, None),
        "next_page_uri": None if next_page is None else _page_uri(path, filters, size, *next_page),
        "page": req.page,
        "page_size": size,
        "previous_page_uri": None if previous_page is None else _page_uri(path, filters, size, *previous_page),
        "start": req.offset,
        "uri": _page_uri(path, filters, size, req.page, own_token),
    }


def page_envelope(
    key: str, items: list[dict[str, Any]], has_next: bool, req: PageRequest, path: str,
    filters: list[tuple[str, str]],
) -> dict[str, Any]:
    """Twilio's list page of any resource paged by offset (`PT<offset>` tokens): `items` under `key`.

    Lists that can page by cursor use `slice_envelope`: an offset skips a record when one before it is deleted
    between two pages."""
    size = req.page_size
    next_page = (req.page + 1, f"PT{req.offset + len(items)}") if has_next else None
    previous_page = None
    if req.offset > 0:
        back = max(req.offset - size, 0)
        previous_page = (max(req.page - 1, 0), f"PT{back}" if back else None)
    return _envelope(key, items, req, path, filters, next_page, previous_page)


def slice_envelope(
    key: str, page: PageSlice[Any], render: Callable[[Any], dict[str, Any]], req: PageRequest, path: str,
    filters: list[tuple[str, str]],
) -> dict[str, Any]:
    """Twilio's list page of a `PageSlice`, each record `render`ed under `key`.

    `next_page_uri` carries `PageToken=PA<sid>-<µs>`, the key of the page's last record (`forms.page_token`),
    and `previous_page_uri` `PB...`, the key of its first: the official clients follow them without reading
    them, and a record created or deleted between two pages moves no other record across the boundary."""
    next_page: tuple[int, str | None] | None = None
    previous_page: tuple[int, str | None] | None = None
    if page.has_next and page.last is not None:
        next_page = (req.page + 1, page_token(Cursor(page.last)))
    if page.has_previous:
        back = max(req.page - 1, 0)
        if page.first is not None:
            previous_page = (back, page_token(Cursor(page.first, backward=True)))
        else:  # an empty page past the end: the previous page by number
            previous_page = (back, None)
    return _envelope(key, [render(item) for item in page.items], req, path, filters, next_page, previous_page)


def call_key(call: Call) -> PageKey:
    """A call's place in the Calls list."""
    return PageKey(call.date_created, call.sid)


class TwilioCalls:
    """The Calls handlers, bound to one `CallService`."""

    def __init__(self, service: CallService, public_base_url: str) -> None:
        self.service = service
        self.public_base_url = public_base_url.rstrip("/")

    def _call(self, request: web.Request) -> Call:
        call = self.service.get_call(request.match_info["CallSid"])
        if call is None or call.account_sid != self.service.account_sid:
            raise NotFound(request.path)
        return call

    async def create(self, request: web.Request) -> web.Response:
        """POST .../Calls.json: place a call; 201 with the queued Call."""
        new_call = parse_new_call(await read_form(request))
        call = await self.service.create_call(new_call)
        body = call_to_json(call)
        return web.json_response(body, status=201, headers={"Location": self.public_base_url + body["uri"]})

    async def read(self, request: web.Request) -> web.Response:
        """GET .../Calls.json: one page of calls, newest first."""
        flt = parse_call_filter(request.query)
        req = parse_page_request(request.query)
        calls = self.service.list_calls(flt, req.offset, req.page_size + 1, req.cursor)
        filters = [(name, value) for name in FILTER_PARAMS if (value := request.query.get(name))]
        path = f"{API_ROOT}/Accounts/{self.service.account_sid}/Calls.json"
        page = cut_page(calls, req, call_key)
        return web.json_response(slice_envelope("calls", page, call_to_json, req, path, filters))

    async def fetch(self, request: web.Request) -> web.Response:
        """GET .../Calls/{CallSid}.json."""
        return web.json_response(call_to_json(self._call(request)))

    async def update(self, request: web.Request) -> web.Response:
        """POST .../Calls/{CallSid}.json: redirect, hang up or cancel a live call."""
        self._call(request)  # an unknown SID is a 404 whatever the parameters
        update = parse_call_update(await read_form(request))
        call = await self.service.update_call(request.match_info["CallSid"], update)
        return web.json_response(call_to_json(call))

    async def delete(self, request: web.Request) -> web.Response:
        """DELETE .../Calls/{CallSid}.json: drop an ended call's record; 204."""
        self._call(request)
        self.service.delete_call(request.match_info["CallSid"])
        return web.Response(status=204)


def add_twilio_routes(app: web.Application, service: CallService, public_base_url: str) -> None:
    """Mount the Twilio Calls API on `app`.

    `public_base_url` is where clients reach this server (e.g. "https://pbx.example.com"); it only
    makes the `Location` header of a created call absolute.  The app also needs
    `switch.dialects.errors.error_middleware` for Twilio-shaped errors.
    """
    api = TwilioCalls(service, public_base_url)
    calls = f"{API_ROOT}/Accounts/{{AccountSid}}/Calls.json"
    call = f"{API_ROOT}/Accounts/{{AccountSid}}/Calls/{{CallSid:[A-Za-z0-9]+}}.json"
    collection = app.router.add_resource(calls, name="twilio-calls")
    collection.add_route("POST", authenticated(service, api.create))
    collection.add_route("GET", authenticated(service, api.read))
    instance = app.router.add_resource(call, name="twilio-call")
    instance.add_route("GET", authenticated(service, api.fetch))
    instance.add_route("POST", authenticated(service, api.update))
    instance.add_route("DELETE", authenticated(service, api.delete))
