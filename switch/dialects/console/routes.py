"""The console's routes: its pages and static files, and the JSON they read, all behind HTTP Basic.

Routes (the account SID and auth token, as the REST API; a browser asks for them on the first 401)::

    GET /console/                    live calls, recent calls (filters: status, direction, to, from), health
    GET /console/calls/{CallSid}     one call: summary, timeline, recordings, its parent and child legs
    GET /console/static/{name}       the pages' CSS and JavaScript
    GET /console/api/calls           {"live": [...], "recent": [...]}; ?status=&direction=&to=&from=&limit=
    GET /console/api/calls/{CallSid} {"call", "timeline", "lanes", "recordings", "children"}
    GET /console/api/health          /healthz's answer: workers, scaling, capacity, edge (503 when degraded)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from switch.core.call_events import CallRequests
from switch.core.calls import CallManager
from switch.core.model import Call, Direction
from switch.core.notifications import Notifications
from switch.core.recording_model import Recording, RecordingFilter, RecordingStatus
from switch.core.recordings import RecordingManager
from switch.core.service import CallFilter
from switch.core.status import CallStatus
from switch.core.store import Store
from switch.dialects.auth import Credentials, check_credentials
from switch.dialects.console.timeline import (
    Source,
    call_events,
    callbacks,
    lanes_of,
    notifications,
    sip_trace,
    timeline,
)
from switch.dialects.errors import API_ROOT, AUTH_REALM, Unauthorized

ROOT = "/console"
STATIC = Path(__file__).parent / "static"
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
_SID = r"{CallSid:CA[0-9a-fA-F]{32}}"
# The live-call list is short and polled often; the recent list scans this many stored calls for a direction.
_SCAN = 2000


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def call_json(call: Call) -> dict[str, Any]:
    """What the pages show of a call."""
    return {
        "sid": call.sid, "parent_call_sid": call.parent_call_sid, "direction": str(call.direction),
        "status": str(call.status), "from": call.from_, "to": call.to, "date_created": _iso(call.date_created),
        "start_time": _iso(call.start_time), "answer_time": _iso(call.answer_time), "end_time": _iso(call.end_time),
        "duration": call.duration, "sip_response_code": call.sip_response_code, "sip_call_id": call.sip_call_id,
        "worker": call.worker, "end_reason": None if call.end_reason is None else str(call.end_reason),
        "error": call.error, "url": call.url,
    }


def recording_json(rec: Recording) -> dict[str, Any]:
    """A recording, with the path of its WAV (the REST API's media resource) once it is complete."""
    done = rec.status is RecordingStatus.COMPLETED
    return {
        "sid": rec.sid, "status": str(rec.status), "duration": rec.duration, "channels": rec.channels,
        "source": str(rec.source), "date_created": _iso(rec.date_created),
        "media": f"{API_ROOT}/Accounts/{rec.account_sid}/Recordings/{rec.sid}.wav" if done else None,
    }


def _unauthorized() -> web.Response:
    return web.Response(status=401, text="401 Unauthorized: the console takes the account SID and auth token.\n",
                        headers={"WWW-Authenticate": AUTH_REALM})


class Console:
    """The console's handlers over the call manager, recordings, notifications and the switch's health (`health`:
    the /healthz handler, whose JSON the page draws)."""

    def __init__(self, creds: Credentials, calls: CallManager, store: Store, recordings: RecordingManager,
                 notes: Notifications, health: Handler, requests: CallRequests | None = None,
                 extra_sources: Sequence[Source] = ()) -> None:
        self.creds = creds
        self.calls = calls
        self.recordings = recordings
        self.health = health
        self.sources: list[Source] = [call_events(store), callbacks(store, requests), notifications(notes)]
        if requests is not None:
            self.sources.append(sip_trace(requests))
        self.sources += extra_sources

    def guard(self, handler: Handler) -> Handler:
        """`handler`, run only for requests with the account's credentials; a Basic challenge otherwise."""
        async def guarded(request: web.Request) -> web.StreamResponse:
            try:
                check_credentials(request, self.creds)
            except Unauthorized:
                return _unauthorized()
            response = await handler(request)
            response.headers.setdefault("Cache-Control", "no-store")
            return response
        return guarded

    # -- pages ----------------------------------------------------------------------------------------------
    async def index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html")

    async def call_page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "call.html")

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = STATIC / name
        if "/" in name or name.startswith(".") or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    # -- JSON -----------------------------------------------------------------------------------------------
    async def api_calls(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            status = CallStatus(q["status"]) if q.get("status") else None
            direction = Direction(q["direction"]) if q.get("direction") else None
            limit = min(max(int(q.get("limit") or DEFAULT_LIMIT), 1), MAX_LIMIT)
        except ValueError as exc:
            raise web.HTTPBadRequest(text=f"bad filter: {exc}") from None
        flt = CallFilter(to=q.get("to") or None, from_=q.get("from") or None, status=status)
        scan = _SCAN if direction is not None else limit
        recent = [c for c in self.calls.list_calls(flt, 0, scan) if direction is None or c.direction == direction]
        live = sorted(self.calls.live.values(), key=lambda c: c.date_created)
        return web.json_response({"live": [call_json(c) for c in live],
                                  "recent": [call_json(c) for c in recent[:limit]]})

    async def api_call(self, request: web.Request) -> web.Response:
        sid = request.match_info["CallSid"]
        call = self.calls.get_call(sid)
        if call is None:
            raise web.HTTPNotFound(text=f"no call {sid}")
        entries = timeline(sid, self.sources)
        start = min([call.date_created, *(e.at for e in entries)])
        children = self.calls.list_calls(CallFilter(parent_call_sid=sid), 0, 100)
        recordings = self.recordings.list_recordings(RecordingFilter(call_sid=sid), 0, 100)
        return web.json_response({
            "call": call_json(call), "start": start.isoformat(),
            "timeline": [e.to_json(start) for e in entries], "lanes": lanes_of(entries),
            "recordings": [recording_json(r) for r in reversed(recordings)],
            "children": [call_json(c) for c in reversed(children)],
        })

    async def api_health(self, request: web.Request) -> web.StreamResponse:
        return await self.health(request)


def add_console_routes(app: web.Application, console: Console) -> None:
    """Mount the console under /console/."""
    guard = console.guard

    async def to_index(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"{ROOT}/")

    app.router.add_get(ROOT, guard(to_index))
    app.router.add_get(f"{ROOT}/", guard(console.index))
    app.router.add_get(f"{ROOT}/calls/{_SID}", guard(console.call_page))
    app.router.add_get(f"{ROOT}/static/{{name}}", guard(console.static))
    app.router.add_get(f"{ROOT}/api/calls", guard(console.api_calls))
    app.router.add_get(f"{ROOT}/api/calls/{_SID}", guard(console.api_call))
    app.router.add_get(f"{ROOT}/api/health", guard(console.api_health))
