"""Exotel's v1 Calls API over `ExotelEdge` (switch.dialects.exotel.connect), close enough that Exotel client code
works unchanged.

Routes (HTTP Basic with the Exotel API key and token; `{AccountSid}` is the Exotel account SID)::

    POST /v1/Accounts/{AccountSid}/Calls/connect[.json]        connect two numbers -> 200 {"Call": {...}}
    GET  /v1/Accounts/{AccountSid}/Calls/{CallSid}[.json]      call details        -> 200 {"Call": {..., "Details"}}
    GET  /v1/Accounts/{AccountSid}/Recordings/{RecordingSid}.mp3                   -> the recording

With `.json` the answer is JSON; without it, XML in Exotel's `<TwilioResponse>` envelope (Exotel's default).
Parameters are read from the query string and the form body alike (Exotel's own samples put them in the URL of a
POST).  Errors of every /v1 path are Exotel's `RestException` (Status, Message), rendered by
`exotel_error_middleware`, which `add_exotel_routes` installs.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import re
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import MultiDict, MultiMapping

from switch.core.errors import NotFound, RequestError
from switch.core.model import Direction
from switch.core.webhooks import BodyFormat
from switch.dialects.errors import ApiError, http_status
from switch.dialects.exotel.connect import API_ROOT, ExotelEdge
from switch.dialects.exotel.render import (
    STATUS,
    CallView,
    ConnectRequest,
    Event,
    conversation_duration,
    end_time,
    exotel_time,
    overall_status,
    start_time,
)
from switch.dialects.forms import get_param, is_address, parse_url

log = logging.getLogger(__name__)

MAX_TIME_LIMIT = 14400
MAX_TIMEOUT = 600
MAX_CUSTOM_FIELD = 128  # Exotel's limit on CustomField
CALL_TYPES = ("trans", "promo")
CONTENT_TYPES: dict[str, BodyFormat] = {"application/json": "json", "multipart/form-data": "multipart"}
_EVENTS_KEY = re.compile(r"StatusCallbackEvents(?:\[(\d*)\])?")
_INTEGER = re.compile(r"[0-9]{1,9}")


class BadRequest(ApiError):
    """A 400 about one request parameter."""

    def __init__(self, message: str) -> None:
        super().__init__(400, 400, message)


@dataclass(frozen=True)
class ExotelAuth:
    """Who may use the Exotel API: its account SID (in the path) and API key and token (HTTP Basic)."""

    account_sid: str
    api_key: str
    api_token: str


# -- parameters -------------------------------------------------------------------------------------
def _address(params: MultiMapping[str], name: str, required: bool) -> str | None:
    value = get_param(params, name)
    if value is None:
        if required:
            raise BadRequest(f"Missing parameter '{name}'")
        return None
    if not is_address(value):
        raise BadRequest(f"Invalid '{name}' number: {value}")
    return value


def _int(params: MultiMapping[str], name: str, default: int, maximum: int) -> int:
    value = get_param(params, name)
    if value is None:
        return default
    if not _INTEGER.fullmatch(value) or not 1 <= int(value) <= maximum:
        raise BadRequest(f"'{name}' must be a whole number of seconds from 1 to {maximum}, not {value!r}")
    return int(value)


def _choice(params: MultiMapping[str], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = get_param(params, name)
    if value is None:
        return default
    if value.lower() not in allowed:
        raise BadRequest(f"'{name}' must be one of {', '.join(allowed)}, not {value!r}")
    return value.lower()


def _events(params: MultiMapping[str]) -> tuple[Event, ...]:
    """`StatusCallbackEvents[0]=terminal&StatusCallbackEvents[1]=answered` (also `[]` or no brackets), in order."""
    found: list[tuple[int, int, str]] = []
    for position, (key, value) in enumerate(params.items()):
        match = _EVENTS_KEY.fullmatch(key)
        if match is not None and value.strip():
            found.append((int(match[1]) if match[1] else position, position, value.strip().lower()))
    events: list[Event] = []
    for _, _, word in sorted(found):
        try:
            event = Event(word)
        except ValueError:
            raise BadRequest(f"Invalid StatusCallbackEvents {word!r}: use terminal, answered or ringing") from None
        if event not in events:
            events.append(event)
    return tuple(events)


def _custom_field(params: MultiMapping[str]) -> str | None:
    """CustomField: Exotel's metadata string of at most 128 characters."""
    value = get_param(params, "CustomField", strip=False)
    if value is not None and len(value) > MAX_CUSTOM_FIELD:
        raise BadRequest(f"'CustomField' must be at most {MAX_CUSTOM_FIELD} characters, not {len(value)}")
    return value


def _content_type(params: MultiMapping[str]) -> BodyFormat:
    value = get_param(params, "StatusCallbackContentType")
    if value is None:
        return "json"
    body_format = CONTENT_TYPES.get(value.split(";", 1)[0].strip().lower())
    if body_format is None:
        raise BadRequest(f"'StatusCallbackContentType' must be application/json or multipart/form-data, not {value!r}")
    return body_format


def parse_connect(params: MultiMapping[str]) -> ConnectRequest:
    """Validate the parameters of `Calls/connect`: From, To and CallerId (the ExoPhone) are required, as Exotel's."""
    from_ = _address(params, "From", required=True)
    to = _address(params, "To", required=True)
    assert from_ is not None and to is not None
    record = _choice(params, "Record", ("true", "false"), "false") == "true"
    return ConnectRequest(
        from_=from_,
        to=to,
        caller_id=_address(params, "CallerId", required=True),
        call_type=_choice(params, "CallType", CALL_TYPES, "trans"),
        time_limit=_int(params, "TimeLimit", MAX_TIME_LIMIT, MAX_TIME_LIMIT),
        timeout=_int(params, "TimeOut", 30, MAX_TIMEOUT),
        record=record,
        recording_channels=_choice(params, "RecordingChannels", ("single", "dual"), "single"),
        recording_format=_choice(params, "RecordingFormat", ("mp3", "mp3-hq"), "mp3"),
        custom_field=_custom_field(params),
        status_callback=parse_url(params, "StatusCallback"),
        events=_events(params),
        body_format=_content_type(params),
    )


async def read_params(request: web.Request) -> MultiMapping[str]:
    """The query string's parameters followed by the form body's text fields."""
    params: MultiDict[str] = MultiDict(request.query)
    if request.method == "POST":
        body = await request.post()
        params.extend((k, v) for k, v in body.items() if isinstance(v, str))
    return params


# -- resources --------------------------------------------------------------------------------------
def call_uri(account_sid: str, call_sid: str) -> str:
    return f"{API_ROOT}/Accounts/{account_sid}/Calls/{call_sid}.json"


def call_resource(view: CallView, account_sid: str, details: bool) -> dict[str, Any]:
    """Exotel's Call object; with `details`, the Details of both legs too."""
    leg1, leg2, request = view.leg1, view.leg2, view.request
    updated = max([leg.date_updated for leg in (leg1, leg2) if leg is not None])
    ended = view.ended
    body: dict[str, Any] = {
        "Sid": leg1.sid,
        "ParentCallSid": leg1.parent_call_sid,
        "DateCreated": exotel_time(leg1.date_created),
        "DateUpdated": exotel_time(updated),
        "AccountSid": account_sid,
        "To": request.to if request is not None else leg1.to,
        "From": request.from_ if request is not None else leg1.from_,
        "PhoneNumberSid": request.caller_id if request is not None else leg1.phone_number_sid,
        "Status": overall_status(view),
        "StartTime": exotel_time(start_time(leg1)),
        "EndTime": exotel_time(end_time(view)),
        "Duration": str(leg1.duration or 0) if ended else None,
        "Price": None,
        "Direction": str(Direction.OUTBOUND_API) if request is not None else str(leg1.direction),
        "AnsweredBy": leg1.answered_by,
        "ForwardedFrom": leg1.forwarded_from,
        "CallerName": leg1.caller_name,
        "Uri": call_uri(account_sid, leg1.sid),
        "RecordingUrl": view.recording_url,
    }
    if details:
        legs = [leg for leg in (leg1, leg2) if leg is not None]
        body["Details"] = {
            "ConversationDuration": conversation_duration(view) if ended else None,
            "Leg1Status": STATUS[leg1.status],
            "Leg2Status": STATUS[leg2.status] if leg2 is not None else None,
            "Legs": [{"Leg": {"Id": number, "OnCallDuration": leg.duration if leg.terminal else None}}
                     for number, leg in enumerate(legs, 1)],
        }
    return body


def _xml(name: str, value: Any) -> str:
    if value is None:
        return f"<{name}/>"
    if isinstance(value, dict):
        inner = "".join(_xml(key, item) for key, item in value.items())
    elif isinstance(value, list):  # a list of one-key objects, e.g. [{"Leg": {...}}, ...]
        inner = "".join(_xml(key, sub) for item in value for key, sub in item.items())
    elif isinstance(value, bool):
        inner = "true" if value else "false"
    else:
        inner = escape(str(value))
    return f"<{name}>{inner}</{name}>"


def respond(request: web.Request, body: dict[str, Any], status: int = 200,
            headers: dict[str, str] | None = None) -> web.Response:
    """JSON for a `.json` path, else Exotel's default XML: `<TwilioResponse>` around the body's elements."""
    if request.path.endswith(".json"):
        return web.json_response(body, status=status, headers=headers)
    elements = "".join(_xml(key, value) for key, value in body.items())
    text = f'<?xml version="1.0" encoding="UTF-8"?>\n<TwilioResponse>{elements}</TwilioResponse>\n'
    return web.Response(text=text, status=status, content_type="application/xml", headers=headers)


# -- errors and authentication ----------------------------------------------------------------------
def is_exotel_path(path: str) -> bool:
    return path.startswith(API_ROOT + "/")


def error_response(request: web.Request, err: ApiError | RequestError) -> web.Response:
    """Exotel's RestException: the HTTP status and the message (Exotel's errors carry no code of their own)."""
    if isinstance(err, RequestError):
        err = ApiError(http_status(err), http_status(err), err.message)
    headers = {"WWW-Authenticate": 'Basic realm="softswitch"'} if err.http_status == 401 else None
    return respond(request, {"RestException": {"Status": err.http_status, "Message": err.message}},
                   err.http_status, headers)


@web.middleware
async def exotel_error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure under /v1 as Exotel's RestException; other paths pass through untouched."""
    if not is_exotel_path(request.path):
        return await handler(request)
    try:
        return await handler(request)
    except (ApiError, RequestError) as exc:
        return error_response(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(request, ApiError(exc.status, exc.status, exc.reason))
    except Exception:
        log.exception("unhandled error serving %s %s", request.method, request.path)
        return error_response(request, ApiError(500, 500, "Internal Server Error"))


def _basic_auth(header: str | None) -> tuple[str, str] | None:
    scheme, _, encoded = (header or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def check_auth(request: web.Request, auth: ExotelAuth) -> None:
    """401 unless the request carries the API key and token; 403 when the path names another account."""
    parsed = _basic_auth(request.headers.get("Authorization"))
    key_ok = parsed is not None and _same(parsed[0], auth.api_key)
    token_ok = parsed is not None and _same(parsed[1], auth.api_token)
    if not (key_ok and token_ok):
        raise ApiError(401, 401, "Authentication is required: HTTP Basic with your API key and API token")
    if not _same(request.match_info.get("AccountSid", ""), auth.account_sid):
        raise ApiError(403, 403, "Your credentials do not give access to this account")


# -- handlers ---------------------------------------------------------------------------------------
class ExotelCalls:
    """The handlers, bound to one edge."""

    def __init__(self, edge: ExotelEdge, auth: ExotelAuth) -> None:
        self.edge = edge
        self.auth = auth

    async def connect(self, request: web.Request) -> web.Response:
        """POST .../Calls/connect: call From, then To once From answers."""
        check_auth(request, self.auth)
        connect = parse_connect(await read_params(request))
        view = await self.edge.connect(connect)
        return respond(request, {"Call": call_resource(view, self.auth.account_sid, details=False)})

    async def details(self, request: web.Request) -> web.Response:
        """GET .../Calls/{CallSid}: the call, with Details of its legs."""
        check_auth(request, self.auth)
        view = self.edge.view(request.match_info["CallSid"])
        if view is None:
            raise NotFound(request.path)
        return respond(request, {"Call": call_resource(view, self.auth.account_sid, details=True)})

    async def recording(self, request: web.Request) -> web.StreamResponse:
        """GET .../Recordings/{RecordingSid}.mp3: a connect call's RecordingUrl."""
        check_auth(request, self.auth)
        path = await self.edge.recordings.media(request.match_info["RecordingSid"], "mp3")
        return web.FileResponse(path, headers={"Content-Type": "audio/mpeg"})


async def _start(edge: ExotelEdge, _app: web.Application) -> None:
    resumed = edge.start()
    if resumed:
        log.info("start-up: %d Exotel terminal callbacks resumed", resumed)


async def _close(edge: ExotelEdge, _app: web.Application) -> None:
    await edge.close()


def add_exotel_routes(app: web.Application, edge: ExotelEdge, auth: ExotelAuth) -> None:
    """Mount the Exotel API on `app`, with its error middleware; the edge starts and stops with the app."""
    app.middlewares.append(exotel_error_middleware)
    api = ExotelCalls(edge, auth)
    root = f"{API_ROOT}/Accounts/{{AccountSid}}"
    for suffix in ("", ".json"):
        app.router.add_post(f"{root}/Calls/connect{suffix}", api.connect)
    for suffix in ("", ".json"):
        app.router.add_get(f"{root}/Calls/{{CallSid:[A-Za-z0-9]+}}{suffix}", api.details)
    app.router.add_get(f"{root}/Recordings/{{RecordingSid:RE[0-9a-f]{{32}}}}.mp3", api.recording)
    app.on_startup.append(lambda app_: _start(edge, app_))
    app.on_cleanup.append(lambda app_: _close(edge, app_))
