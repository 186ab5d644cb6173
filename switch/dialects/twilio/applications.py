"""Twilio's Applications resource (TwiML Apps) over an `ApplicationRegistry`, close enough for the official client.

Routes (HTTP Basic, see `switch.dialects.auth`)::

    POST   /2010-04-01/Accounts/{AccountSid}/Applications.json          create -> 201
    GET    /2010-04-01/Accounts/{AccountSid}/Applications.json          list (FriendlyName) -> 200 page
    GET    /2010-04-01/Accounts/{AccountSid}/Applications/{Sid}.json    fetch  -> 200
    POST   /2010-04-01/Accounts/{AccountSid}/Applications/{Sid}.json    update -> 200
    DELETE /2010-04-01/Accounts/{AccountSid}/Applications/{Sid}.json    delete -> 204

Voice only: the SMS and messaging fields are present and empty, because the client expects them.  An
IncomingPhoneNumber's VoiceApplicationSid routes its calls here (`switch.dialects.twilio.numbers`).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from multidict import MultiMapping

from switch.core.applications import Application, ApplicationRegistry
from switch.core.errors import NotFound
from switch.core.paging import PageKey
from switch.dialects.auth import Credentials, authenticated
from switch.dialects.errors import API_ROOT, InvalidParameter
from switch.dialects.forms import cut_page, get_param, parse_page_request, parse_url, read_form
from switch.dialects.twilio.api import API_VERSION, rfc2822, slice_envelope
from switch.dialects.twilio.params import parse_method

MAX_FRIENDLY_NAME = 64
_URLS = (("VoiceUrl", "voice_url"), ("VoiceFallbackUrl", "voice_fallback_url"), ("StatusCallback", "status_callback"))
_METHODS = (("VoiceMethod", "voice_method"), ("VoiceFallbackMethod", "voice_fallback_method"),
            ("StatusCallbackMethod", "status_callback_method"))


def application_to_json(app: Application) -> dict[str, Any]:
    """An `Application` as Twilio's Application resource, every field present."""
    return {
        "sid": app.sid,
        "account_sid": app.account_sid,
        "api_version": API_VERSION,
        "friendly_name": app.friendly_name,
        "date_created": rfc2822(app.date_created),
        "date_updated": rfc2822(app.date_updated),
        "voice_url": app.voice_url,
        "voice_method": app.voice_method,
        "voice_fallback_url": app.voice_fallback_url,
        "voice_fallback_method": app.voice_fallback_method,
        "voice_caller_id_lookup": False,
        "status_callback": app.status_callback,
        "status_callback_method": app.status_callback_method,
        "sms_url": None,
        "sms_method": "POST",
        "sms_fallback_url": None,
        "sms_fallback_method": "POST",
        "sms_status_callback": None,
        "message_status_callback": None,
        "public_application_connect_enabled": False,
        "uri": f"{API_ROOT}/Accounts/{app.account_sid}/Applications/{app.sid}.json",
    }


def _friendly_name(params: MultiMapping[str]) -> str | None:
    value = get_param(params, "FriendlyName")
    if value is not None and len(value) > MAX_FRIENDLY_NAME:
        raise InvalidParameter(f"FriendlyName must be at most {MAX_FRIENDLY_NAME} characters")
    return value


def parse_application_fields(params: MultiMapping[str]) -> dict[str, str | None]:
    """The fields a create or update names.  An empty URL clears it (as on Twilio); an empty method is ignored."""
    fields: dict[str, str | None] = {}
    if "FriendlyName" in params:
        fields["friendly_name"] = _friendly_name(params) or None
    for param, field in _URLS:
        if param in params:
            fields[field] = parse_url(params, param)
    for param, field in _METHODS:
        method = parse_method(params, param)
        if method is not None:
            fields[field] = method
    return fields


class TwilioApplications:
    """The Applications handlers, bound to one `ApplicationRegistry`."""

    def __init__(self, registry: ApplicationRegistry, public_base_url: str) -> None:
        self.registry = registry
        self.public_base_url = public_base_url.rstrip("/")

    def _application(self, request: web.Request) -> Application:
        app = self.registry.get(request.match_info["Sid"])
        if app is None:
            raise NotFound(request.path)
        return app

    async def create(self, request: web.Request) -> web.Response:
        """POST .../Applications.json: 201 with the new application."""
        fields = parse_application_fields(await read_form(request))
        app = self.registry.create(
            friendly_name=fields.get("friendly_name"),
            voice_url=fields.get("voice_url"),
            voice_method=fields.get("voice_method") or "POST",
            voice_fallback_url=fields.get("voice_fallback_url"),
            voice_fallback_method=fields.get("voice_fallback_method") or "POST",
            status_callback=fields.get("status_callback"),
            status_callback_method=fields.get("status_callback_method") or "POST",
        )
        body = application_to_json(app)
        return web.json_response(body, status=201, headers={"Location": self.public_base_url + body["uri"]})

    async def read(self, request: web.Request) -> web.Response:
        """GET .../Applications.json: oldest first; FriendlyName filters (exact match)."""
        query = request.query
        req = parse_page_request(query)
        friendly_name = get_param(query, "FriendlyName")
        apps = self.registry.list_applications(friendly_name, req.offset, req.page_size + 1, req.cursor)
        filters = [("FriendlyName", friendly_name)] if friendly_name is not None else []
        path = f"{API_ROOT}/Accounts/{self.registry.account_sid}/Applications.json"
        page = cut_page(apps, req, lambda a: PageKey(a.date_created, a.sid))
        return web.json_response(slice_envelope("applications", page, application_to_json, req, path, filters))

    async def fetch(self, request: web.Request) -> web.Response:
        """GET .../Applications/{Sid}.json."""
        return web.json_response(application_to_json(self._application(request)))

    async def update(self, request: web.Request) -> web.Response:
        """POST .../Applications/{Sid}.json: the named fields; the application's numbers use them from their next
        call on."""
        self._application(request)  # an unknown SID is a 404 whatever the parameters
        app = self.registry.update(request.match_info["Sid"], parse_application_fields(await read_form(request)))
        if app is None:
            raise NotFound(request.path)
        return web.json_response(application_to_json(app))

    async def delete(self, request: web.Request) -> web.Response:
        """DELETE .../Applications/{Sid}.json: 204; its numbers answer with their own URLs again."""
        if not self.registry.delete(request.match_info["Sid"]):
            raise NotFound(request.path)
        return web.Response(status=204)


def add_twilio_application_routes(app: web.Application, creds: Credentials, registry: ApplicationRegistry,
                                  public_base_url: str) -> None:
    """Mount Applications on `app` (which needs `switch.dialects.errors.error_middleware`)."""
    api = TwilioApplications(registry, public_base_url)
    base = f"{API_ROOT}/Accounts/{{AccountSid}}/Applications"
    collection = app.router.add_resource(f"{base}.json", name="twilio-applications")
    collection.add_route("POST", authenticated(creds, api.create))
    collection.add_route("GET", authenticated(creds, api.read))
    instance = app.router.add_resource(f"{base}/{{Sid:[A-Za-z0-9]+}}.json", name="twilio-application")
    instance.add_route("GET", authenticated(creds, api.fetch))
    instance.add_route("POST", authenticated(creds, api.update))
    instance.add_route("DELETE", authenticated(creds, api.delete))
