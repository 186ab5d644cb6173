"""Twilio's 2010-04-01 Transcriptions resources over `switch.core.transcriptions.Transcriptions`.

Routes (HTTP Basic with the account SID and auth token, like the Recordings routes)::

    GET    .../Accounts/{AccountSid}/Transcriptions.json                             list, newest first
    GET    .../Accounts/{AccountSid}/Transcriptions/{Sid}.json                       fetch
    DELETE .../Accounts/{AccountSid}/Transcriptions/{Sid}.json                       delete -> 204
    GET    .../Accounts/{AccountSid}/Recordings/{RecordingSid}/Transcriptions.json   the recording's
    GET    .../Accounts/{AccountSid}/Recordings/{RecordingSid}/Transcriptions/{Sid}.json
    DELETE .../Accounts/{AccountSid}/Recordings/{RecordingSid}/Transcriptions/{Sid}.json
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from switch.core.errors import NotFound
from switch.core.paging import PageKey
from switch.core.transcriptions import Transcription, Transcriptions
from switch.dialects.auth import Credentials, authenticated
from switch.dialects.errors import API_ROOT
from switch.dialects.forms import cut_page, parse_page_request
from switch.dialects.twilio.api import rfc2822, slice_envelope

API_VERSION = "2010-04-01"
_SID = r"{TranscriptionSid:TR[0-9a-fA-F]{32}}"
_RECORDING = r"{RecordingSid:RE[0-9a-fA-F]{32}}"


def transcription_uri(account_sid: str, sid: str) -> str:
    return f"{API_ROOT}/Accounts/{account_sid}/Transcriptions/{sid}.json"


def transcription_to_json(item: Transcription) -> dict[str, Any]:
    """A `Transcription` as Twilio's Transcription resource."""
    return {
        "account_sid": item.account_sid,
        "api_version": API_VERSION,
        "date_created": rfc2822(item.date_created),
        "date_updated": rfc2822(item.date_updated),
        "duration": None if item.duration is None else str(item.duration),
        "price": None,
        "price_unit": "USD",
        "recording_sid": item.recording_sid,
        "sid": item.sid,
        "status": str(item.status),
        "transcription_text": item.text,
        "type": "fast",
        "uri": transcription_uri(item.account_sid, item.sid),
    }


def transcription_url(base_url: str, account_sid: str, sid: str) -> str:
    """The TranscriptionUrl of a transcribeCallback: the resource's absolute URL (without `.json`, as Twilio's)."""
    return f"{base_url.rstrip('/')}{API_ROOT}/Accounts/{account_sid}/Transcriptions/{sid}"


class TwilioTranscriptions:
    """The Transcriptions handlers, bound to one `Transcriptions`."""

    def __init__(self, manager: Transcriptions) -> None:
        self.manager = manager

    def _item(self, request: web.Request) -> Transcription:
        item = self.manager.get(request.match_info["TranscriptionSid"])
        recording = request.match_info.get("RecordingSid")
        if item is None or (recording is not None and item.recording_sid != recording):
            raise NotFound(request.path)
        return item

    async def read(self, request: web.Request) -> web.Response:
        """GET .../Transcriptions.json or .../Recordings/{RecordingSid}/Transcriptions.json: one page."""
        recording = request.match_info.get("RecordingSid")
        req = parse_page_request(request.query)
        found = self.manager.list(recording, req.offset, req.page_size + 1, req.cursor)
        page = cut_page(found, req, lambda t: PageKey(t.date_created, t.sid))
        account = f"{API_ROOT}/Accounts/{self.manager.account_sid}"
        path = f"{account}/Recordings/{recording}/Transcriptions.json" if recording else \
            f"{account}/Transcriptions.json"
        return web.json_response(slice_envelope("transcriptions", page, transcription_to_json, req, path, []))

    async def fetch(self, request: web.Request) -> web.Response:
        """GET .../Transcriptions/{Sid}.json."""
        return web.json_response(transcription_to_json(self._item(request)))

    async def delete(self, request: web.Request) -> web.Response:
        """DELETE .../Transcriptions/{Sid}.json: 204."""
        self.manager.delete(self._item(request).sid)
        return web.Response(status=204)


def add_transcription_routes(app: web.Application, creds: Credentials, manager: Transcriptions) -> None:
    """Mount the Transcriptions API on `app` (with `error_middleware`); `creds` checks the credentials."""
    api = TwilioTranscriptions(manager)

    def route(path: str, **handlers: Any) -> None:
        resource = app.router.add_resource(f"{API_ROOT}/Accounts/{{AccountSid}}{path}")
        for method, handler in handlers.items():
            resource.add_route(method, authenticated(creds, handler))

    route("/Transcriptions.json", GET=api.read)
    route(f"/Transcriptions/{_SID}.json", GET=api.fetch, DELETE=api.delete)
    route(f"/Recordings/{_RECORDING}/Transcriptions.json", GET=api.read)
    route(f"/Recordings/{_RECORDING}/Transcriptions/{_SID}.json", GET=api.fetch, DELETE=api.delete)
