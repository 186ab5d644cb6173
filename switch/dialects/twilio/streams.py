"""Twilio's Streams subresource of a call, and the streams' status callbacks, over `switch.core.streams`.

Routes (HTTP Basic, like the Calls routes)::

    POST .../Accounts/{AccountSid}/Calls/{CallSid}/Streams.json         start a listen-only stream -> 201
    POST .../Accounts/{AccountSid}/Calls/{CallSid}/Streams/{Sid}.json   Status=stopped -> 200

Create takes Url (ws:// or wss://), Name, Track (inbound_track, outbound_track, both_tracks), StatusCallback,
StatusCallbackMethod and Parameter1.Name/Parameter1.Value ... Parameter99.Name/Value (the customParameters).
`{Sid}` is the stream's SID or its name.  A stream that cannot start (the name is streaming already, the call has
four) is a 400.

`TwilioStreamCallbacks` renders each `StreamChanged` for the stream's StatusCallback: AccountSid, CallSid,
StreamSid, StreamName (the SID when the stream has no name), StreamEvent (stream-started, stream-stopped,
stream-error), StreamError (stream-error only) and Timestamp (ISO 8601, UTC).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from multidict import MultiMapping

from switch.core.errors import CallNotLive, Conflict, NotFound
from switch.core.service import CallService
from switch.core.status import CallStatus
from switch.core.stream_model import TRACKS, StreamChanged, StreamInfo, StreamSpec, StreamStatus
from switch.core.streams import StreamManager
from switch.core.webhooks import WebhookSender
from switch.dialects.auth import authenticated
from switch.dialects.errors import API_ROOT, InvalidParameter
from switch.dialects.forms import get_param, read_form
from switch.dialects.twilio.api import rfc2822
from switch.verbs.stream import websocket_url
from twiml.verbs import MAX_STREAM_PARAMETERS

EVENTS = {"started": "stream-started", "stopped": "stream-stopped", "error": "stream-error"}


def stream_to_json(info: StreamInfo, status: StreamStatus | None = None) -> dict[str, Any]:
    """A stream as Twilio's Stream resource."""
    return {
        "sid": info.sid,
        "account_sid": info.account_sid,
        "call_sid": info.call_sid,
        "name": info.name,
        "status": str(status or info.status),
        "date_updated": rfc2822(info.date_updated),
        "uri": f"{API_ROOT}/Accounts/{info.account_sid}/Calls/{info.call_sid}/Streams/{info.sid}.json",
    }


def parse_stream(params: MultiMapping[str]) -> StreamSpec:
    """A create request's stream; InvalidParameter for a bad Url, Track or StatusCallbackMethod."""
    url = get_param(params, "Url")
    if url is None:
        raise InvalidParameter("Missing required parameter Url in the post body")
    try:
        url = websocket_url(None, url)
    except ValueError:
        raise InvalidParameter(f"Url must be an absolute ws:// or wss:// URL, not {url!r}") from None
    track = (get_param(params, "Track") or "inbound_track").lower()
    if track not in TRACKS:
        raise InvalidParameter(f"Track must be inbound_track, outbound_track or both_tracks, not {track!r}")
    method = (get_param(params, "StatusCallbackMethod") or "POST").upper()
    if method not in ("GET", "POST"):
        raise InvalidParameter(f"StatusCallbackMethod must be GET or POST, not {method!r}")
    parameters: dict[str, str] = {}
    for index in range(1, MAX_STREAM_PARAMETERS + 1):
        name = get_param(params, f"Parameter{index}.Name")
        if name is not None:
            parameters[name] = params.get(f"Parameter{index}.Value", "")
    return StreamSpec(url=url, name=get_param(params, "Name"), tracks=TRACKS[track], bidirectional=False,
                      status_callback=get_param(params, "StatusCallback"), status_callback_method=method,
                      parameters=tuple(parameters.items()))


class TwilioStreams:
    """The Streams handlers, bound to the call service and the stream manager."""

    def __init__(self, service: CallService, streams: StreamManager) -> None:
        self.service = service
        self.streams = streams

    def _call_status(self, request: web.Request) -> CallStatus:
        call = self.service.get_call(request.match_info["CallSid"])
        if call is None or call.account_sid != self.service.account_sid:
            raise NotFound(request.path)
        return call.status

    async def create(self, request: web.Request) -> web.Response:
        """POST .../Calls/{CallSid}/Streams.json: start a listen-only stream -> 201."""
        status = self._call_status(request)
        spec = parse_stream(await read_form(request))
        if status is not CallStatus.IN_PROGRESS:
            raise CallNotLive(f"Call is {status}; only a call in progress can be streamed")
        try:
            stream = self.streams.start(request.match_info["CallSid"], spec)
        except Conflict as exc:
            raise InvalidParameter(exc.message) from None
        return web.json_response(stream_to_json(stream.info), status=201)

    async def update(self, request: web.Request) -> web.Response:
        """POST .../Calls/{CallSid}/Streams/{Sid}.json with Status=stopped: stop it (by SID or name)."""
        self._call_status(request)
        params = await read_form(request)
        status = get_param(params, "Status")
        if status != "stopped":
            raise InvalidParameter(f"Status must be stopped, not {status!r}")
        stream = self.streams.get(request.match_info["CallSid"], request.match_info["Sid"])
        if stream is None:
            raise NotFound(request.path)
        stream.stop()
        return web.json_response(stream_to_json(stream.info, StreamStatus.STOPPED))


def add_twilio_stream_routes(app: web.Application, service: CallService, streams: StreamManager) -> None:
    """Mount the Streams create and update on `app` (which needs `error_middleware`)."""
    api = TwilioStreams(service, streams)
    base = f"{API_ROOT}/Accounts/{{AccountSid}}/Calls/{{CallSid:[A-Za-z0-9]+}}/Streams"
    app.router.add_post(f"{base}.json", authenticated(service, api.create), name="twilio-call-streams")
    app.router.add_post(f"{base}/{{Sid:[^/]+}}.json", authenticated(service, api.update), name="twilio-call-stream")


class TwilioStreamCallbacks:
    """Renders the streams' `StreamChanged` as Twilio's stream status callbacks (add it to the manager's
    observers); a stream without a StatusCallback reports nowhere."""

    def __init__(self, webhooks: WebhookSender) -> None:
        self.webhooks = webhooks

    def __call__(self, change: StreamChanged) -> None:
        info = change.stream
        url = info.spec.status_callback
        if not url:
            return
        event = EVENTS[change.event]
        params = [("AccountSid", info.account_sid), ("CallSid", info.call_sid), ("StreamSid", info.sid),
                  ("StreamName", info.name or info.sid), ("StreamEvent", event)]
        if change.event == "error":
            params.append(("StreamError", change.error or ""))
        params.append(("Timestamp", change.at.isoformat(timespec="milliseconds").replace("+00:00", "Z")))
        self.webhooks.send(info.call_sid, url, info.spec.status_callback_method, params,
                           event=f"{event}:{info.sid}")
