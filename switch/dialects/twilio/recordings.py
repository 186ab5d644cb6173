"""Twilio's 2010-04-01 Recordings resources over a `RecordingManager`, close enough for the official client.

Routes (HTTP Basic with the account SID and auth token, like the Calls routes)::

    GET    .../Accounts/{AccountSid}/Recordings.json                       list (CallSid, DateCreated[<>])
    GET    .../Accounts/{AccountSid}/Recordings/{Sid}.json                 fetch
    DELETE .../Accounts/{AccountSid}/Recordings/{Sid}.json                 delete -> 204
    GET    .../Accounts/{AccountSid}/Recordings/{Sid}[.wav|.mp3]           media (no extension: WAV, as Twilio)
    GET    .../Accounts/{AccountSid}/Calls/{CallSid}/Recordings.json       the call's recordings
    POST   .../Accounts/{AccountSid}/Calls/{CallSid}/Recordings.json       start recording a live call -> 201
    GET    .../Accounts/{AccountSid}/Calls/{CallSid}/Recordings/{Sid}.json fetch
    POST   .../Accounts/{AccountSid}/Calls/{CallSid}/Recordings/{Sid}.json Status=paused|in-progress|stopped
                                                                           (PauseBehavior=silence|skip)
    DELETE .../Accounts/{AccountSid}/Calls/{CallSid}/Recordings/{Sid}.json delete -> 204

`{Sid}` may be `Twilio.CURRENT` on the call routes: the call's active recording.  Stopping returns the
recording once its file is written (`completed`, or `absent`), not Twilio's transient `stopped`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from multidict import MultiMapping

from switch.core.errors import CallNotLive, NotFound
from switch.core.paging import PageKey
from switch.core.recording_model import Recording, RecordingFilter, RecordingSource, RecordingStatus
from switch.core.recordings import RecordingManager
from switch.core.status import CallStatus
from switch.dialects.auth import account_path_only, authenticated
from switch.dialects.errors import API_ROOT, InvalidParameter
from switch.dialects.forms import cut_page, parse_page_request, read_form
from switch.dialects.twilio.api import rfc2822, slice_envelope
from switch.dialects.twilio.callbacks import recording_error_code, recording_source
from switch.dialects.twilio.params import parse_date, parse_recording_options

API_VERSION = "2010-04-01"
CURRENT = "Twilio.CURRENT"
FILTER_PARAMS = ("CallSid", "DateCreated", "DateCreated<", "DateCreated>")
MEDIA_TYPES = {"wav": "audio/x-wav", "mp3": "audio/mpeg"}
# What a paused recording holds: `silence` (the default) keeps the paused time as silence, `skip` leaves it out.
PAUSE_BEHAVIORS = ("skip", "silence")
_SID = r"{RecordingSid:RE[0-9a-fA-F]{32}}"


def recording_to_json(rec: Recording, media_url: str, call_scoped: bool = False) -> dict[str, Any]:
    """A `Recording` as Twilio's Recording resource (under the call's path when `call_scoped`)."""
    account = f"{API_ROOT}/Accounts/{rec.account_sid}"
    own = f"{account}/Recordings/{rec.sid}"
    uri = f"{account}/Calls/{rec.call_sid}/Recordings/{rec.sid}.json" if call_scoped else f"{own}.json"
    return {
        "account_sid": rec.account_sid,
        "api_version": API_VERSION,
        "call_sid": rec.call_sid,
        "conference_sid": rec.conference_sid,
        "date_created": rfc2822(rec.date_created),
        "date_updated": rfc2822(rec.date_updated),
        "start_time": rfc2822(rec.start_time or rec.date_created),
        # Twilio reports -1 until the recording is processed.
        "duration": str(rec.duration) if rec.status.final else "-1",
        "sid": rec.sid,
        "price": None,
        "price_unit": "USD",
        "status": str(rec.status),
        "channels": rec.channels,
        "source": recording_source(rec.source),
        "error_code": recording_error_code(rec),
        "track": rec.track,
        "uri": uri,
        "encryption_details": None,
        "media_url": media_url,
        "subresource_uris": {
            "add_on_results": f"{own}/AddOnResults.json",
            "transcriptions": f"{own}/Transcriptions.json",
        },
    }


def parse_recording_filter(params: MultiMapping[str]) -> RecordingFilter:
    return RecordingFilter(
        call_sid=params.get("CallSid") or None,
        date_created_on=parse_date(params, "DateCreated"),
        date_created_before=parse_date(params, "DateCreated<"),
        date_created_after=parse_date(params, "DateCreated>"),
    )


class TwilioRecordings:
    """The Recordings handlers, bound to one `RecordingManager`."""

    def __init__(self, manager: RecordingManager) -> None:
        self.manager = manager
        self.account_sid = manager.account_sid

    def _json(self, rec: Recording, call_scoped: bool = False) -> dict[str, Any]:
        return recording_to_json(rec, self.manager.media_url(rec), call_scoped)

    def _recording(self, request: web.Request) -> Recording:
        """The recording the path names, checked against the path's call when there is one."""
        sid = request.match_info["RecordingSid"]
        call_sid = request.match_info.get("CallSid")
        if call_sid is not None:
            self._call_status(request)
        rec = self.manager.current(call_sid) if sid == CURRENT and call_sid else self.manager.get(sid)
        if rec is None or (call_sid is not None and rec.call_sid != call_sid):
            raise NotFound(request.path)
        return rec

    def _call_status(self, request: web.Request) -> CallStatus:
        call = self.manager.calls.get_call(request.match_info["CallSid"])
        if call is None:
            raise NotFound(request.path)
        return call.status

    async def _page(self, request: web.Request, flt: RecordingFilter, path: str, call_scoped: bool) -> web.Response:
        req = parse_page_request(request.query)
        found: list[Recording] = []
        if not request.query.get("ConferenceSid"):  # no conference recordings here (yet)
            found = self.manager.list_recordings(flt, req.offset, req.page_size + 1, req.cursor)
        filters = [(name, value) for name in FILTER_PARAMS if (value := request.query.get(name))]
        page = cut_page(found, req, lambda r: PageKey(r.date_created, r.sid))
        return web.json_response(slice_envelope("recordings", page, lambda r: self._json(r, call_scoped), req, path,
                                                filters))

    # -- account recordings -----------------------------------------------------------------------
    async def read(self, request: web.Request) -> web.Response:
        """GET .../Recordings.json: one page, newest first."""
        path = f"{API_ROOT}/Accounts/{self.account_sid}/Recordings.json"
        return await self._page(request, parse_recording_filter(request.query), path, call_scoped=False)

    async def fetch(self, request: web.Request) -> web.Response:
        """GET .../Recordings/{Sid}.json (also under the call)."""
        return web.json_response(self._json(self._recording(request), "CallSid" in request.match_info))

    async def delete(self, request: web.Request) -> web.Response:
        """DELETE .../Recordings/{Sid}.json: the resource and its files; 204."""
        self.manager.delete(self._recording(request).sid)
        return web.Response(status=204)

    async def media(self, request: web.Request) -> web.StreamResponse:
        """GET .../Recordings/{Sid}.wav|.mp3 (or no extension: WAV)."""
        fmt = request.match_info.get("fmt", "wav")
        path = await self.manager.media(self._recording(request).sid, "mp3" if fmt == "mp3" else "wav")
        return web.FileResponse(path, headers={"Content-Type": MEDIA_TYPES[fmt]})

    # -- call recordings ----------------------------------------------------------------------------
    async def read_call(self, request: web.Request) -> web.Response:
        """GET .../Calls/{CallSid}/Recordings.json."""
        self._call_status(request)
        call_sid = request.match_info["CallSid"]
        query_filter = parse_recording_filter(request.query)
        flt = RecordingFilter(call_sid, query_filter.date_created_on, query_filter.date_created_before,
                              query_filter.date_created_after)
        path = f"{API_ROOT}/Accounts/{self.account_sid}/Calls/{call_sid}/Recordings.json"
        return await self._page(request, flt, path, call_scoped=True)

    async def create(self, request: web.Request) -> web.Response:
        """POST .../Calls/{CallSid}/Recordings.json: record a call in progress; 201."""
        status = self._call_status(request)
        options = parse_recording_options(await read_form(request), default_trim="do-not-trim")
        if status is not CallStatus.IN_PROGRESS:
            raise CallNotLive(f"Call is {status}; only a call in progress can be recorded")
        call_sid = request.match_info["CallSid"]
        rec = await self.manager.start(
            [call_sid], RecordingSource.API, 2 if options.channels == "dual" else 1, options.trim == "trim-silence",
            options.status_callback, options.status_callback_method, options.status_callback_events,
            parent_call_sid=call_sid, track=options.track, tracks=True)
        return web.json_response(self._json(rec, call_scoped=True), status=201)

    async def update(self, request: web.Request) -> web.Response:
        """POST .../Calls/{CallSid}/Recordings/{Sid}.json: Status=paused|in-progress|stopped."""
        rec = self._recording(request)
        params = await read_form(request)
        raw = (params.get("Status") or "").strip().lower()
        behavior = (params.get("PauseBehavior") or "silence").strip().lower()
        if behavior not in PAUSE_BEHAVIORS:
            raise InvalidParameter(f"PauseBehavior must be skip or silence, not {behavior!r}")
        if raw == RecordingStatus.PAUSED:
            rec = await self.manager.pause(rec.sid, skip=behavior == "skip")
        elif raw == RecordingStatus.IN_PROGRESS:
            rec = await self.manager.resume(rec.sid)
        elif raw == RecordingStatus.STOPPED:
            rec = await self.manager.stop(rec.sid)
        else:
            raise InvalidParameter(f"Status must be paused, in-progress or stopped, not {raw!r}")
        return web.json_response(self._json(rec, call_scoped=True))


async def _close(manager: RecordingManager, _app: web.Application) -> None:
    await manager.close()


def add_recording_routes(app: web.Application, manager: RecordingManager, public_media: bool = False) -> None:
    """Mount the Recordings API on `app` (with `error_middleware`); unfinished recordings are finalized at
    application cleanup.  `public_media`: the media URLs need no credentials (the path's account must match)."""
    api = TwilioRecordings(manager)
    creds = manager.calls

    def route(path: str, public: bool = False, **handlers: Any) -> None:
        resource = app.router.add_resource(f"{API_ROOT}/Accounts/{{AccountSid}}{path}")
        for method, handler in handlers.items():
            resource.add_route(method, account_path_only(creds, handler) if public else authenticated(creds, handler))

    route("/Recordings.json", GET=api.read)
    route(f"/Recordings/{_SID}.json", GET=api.fetch, DELETE=api.delete)
    route(f"/Recordings/{_SID}.{{fmt:wav|mp3}}", public_media, GET=api.media)
    route(f"/Recordings/{_SID}", public_media, GET=api.media)
    call = "/Calls/{CallSid:[A-Za-z0-9]+}/Recordings"
    route(f"{call}.json", GET=api.read_call, POST=api.create)
    route(f"{call}/{{RecordingSid:RE[0-9a-fA-F]{{32}}|Twilio\\.CURRENT}}.json", GET=api.fetch, POST=api.update,
          DELETE=api.delete)
    app.on_cleanup.append(lambda app_: _close(manager, app_))
