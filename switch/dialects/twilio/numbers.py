"""Twilio's IncomingPhoneNumbers resource over a `NumberRegistry`, close enough that the official client works.

Routes (HTTP Basic, see `switch.dialects.auth`)::

    POST   /2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers.json          create -> 201
    GET    /2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers.json          list   -> 200 page
    GET    /2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json    fetch  -> 200
    POST   /2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json    update -> 200
    DELETE /2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json    delete -> 204

Nothing is bought: `PhoneNumber` is whatever user part callers dial here, an E.164-ish number or a SIP
user ("alice", "ext-100").  Voice only; the SMS fields are there, empty, because the client expects them.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from switch.core.errors import NotFound
from switch.core.numbers import NumberRegistry, PhoneNumber
from switch.dialects.auth import Credentials, authenticated
from switch.dialects.errors import API_ROOT, InvalidParameter
from switch.dialects.forms import get_param, parse_page_request, parse_url, read_form
from switch.dialects.twilio.api import API_VERSION, format_address, page_envelope, rfc2822
from switch.dialects.twilio.params import parse_method

# Twilio's codes: 21421 "PhoneNumber is invalid" (also used here when it is missing).
INVALID_PHONE_NUMBER = 21421
ORIGIN = "softswitch"

_PHONE = re.compile(r"\+?[0-9]{3,15}")
# A SIP user part (RFC 3261 unreserved and user-unreserved characters), starting with a letter.
_SIP_USER = re.compile(r"[A-Za-z][A-Za-z0-9\-_.!~*'()&=+$,;?/]{0,63}")
_LIST_FILTERS = ("PhoneNumber", "FriendlyName", "Origin", "Beta")
MAX_FRIENDLY_NAME = 64


def is_dialable(value: str) -> bool:
    """A phone number (3 to 15 digits, optional '+') or a SIP user part that starts with a letter."""
    return bool(_PHONE.fullmatch(value) or _SIP_USER.fullmatch(value))


def number_uri(account_sid: str, sid: str) -> str:
    return f"{API_ROOT}/Accounts/{account_sid}/IncomingPhoneNumbers/{sid}.json"


def number_to_json(number: PhoneNumber) -> dict[str, Any]:
    """A `PhoneNumber` as Twilio's IncomingPhoneNumber resource."""
    uri = number_uri(number.account_sid, number.sid)
    return {
        "sid": number.sid,
        "account_sid": number.account_sid,
        "friendly_name": number.friendly_name,
        "phone_number": number.phone_number,
        "voice_url": number.voice_url,
        "voice_method": number.voice_method,
        "voice_fallback_url": number.voice_fallback_url,
        "voice_fallback_method": number.voice_fallback_method,
        "voice_caller_id_lookup": False,
        "voice_application_sid": None,
        "voice_receive_mode": "voice",
        "status_callback": number.status_callback,
        "status_callback_method": number.status_callback_method,
        "date_created": rfc2822(number.date_created),
        "date_updated": rfc2822(number.date_updated),
        "capabilities": {"voice": True, "sms": False, "mms": False, "fax": False},
        "api_version": API_VERSION,
        "beta": False,
        "origin": ORIGIN,
        "status": "in-use",
        "trunk_sid": None,
        "address_sid": None,
        "address_requirements": "none",
        "identity_sid": None,
        "bundle_sid": None,
        "emergency_status": "Inactive",
        "emergency_address_sid": None,
        "emergency_address_status": "unregistered",
        "sms_application_sid": None,
        "sms_url": None,
        "sms_method": "POST",
        "sms_fallback_url": None,
        "sms_fallback_method": "POST",
        "uri": uri,
        "subresource_uris": {"assigned_add_ons": uri.removesuffix(".json") + "/AssignedAddOns.json"},
    }


def _friendly_name(params: MultiMapping[str]) -> str | None:
    value = get_param(params, "FriendlyName")
    if value is not None and len(value) > MAX_FRIENDLY_NAME:
        raise InvalidParameter(f"FriendlyName must be at most {MAX_FRIENDLY_NAME} characters")
    return value


def _phone_number(params: MultiMapping[str]) -> str:
    value = get_param(params, "PhoneNumber")
    if value is None:
        raise InvalidParameter("PhoneNumber is required", INVALID_PHONE_NUMBER)
    if not is_dialable(value):
        raise InvalidParameter(
            f"PhoneNumber {value!r} is invalid: give a number (+ and 3 to 15 digits) or a SIP user name",
            INVALID_PHONE_NUMBER,
        )
    return value


def parse_number_update(params: MultiMapping[str]) -> dict[str, str | None]:
    """The fields an update names.  An empty URL clears it, as on Twilio; an empty name or method is ignored."""
    changes: dict[str, str | None] = {}
    friendly_name = _friendly_name(params)
    if friendly_name is not None:
        changes["friendly_name"] = friendly_name
    for param, field in (("VoiceUrl", "voice_url"), ("VoiceFallbackUrl", "voice_fallback_url"),
                         ("StatusCallback", "status_callback")):
        if param in params:
            changes[field] = parse_url(params, param)
    for param, field in (("VoiceMethod", "voice_method"), ("VoiceFallbackMethod", "voice_fallback_method"),
                         ("StatusCallbackMethod", "status_callback_method")):
        method = parse_method(params, param)
        if method is not None:
            changes[field] = method
    return changes


class TwilioNumbers:
    """The IncomingPhoneNumbers handlers, bound to one `NumberRegistry`."""

    def __init__(self, registry: NumberRegistry, public_base_url: str) -> None:
        self.registry = registry
        self.public_base_url = public_base_url.rstrip("/")

    def _number(self, request: web.Request) -> PhoneNumber:
        number = self.registry.get(request.match_info["Sid"])
        if number is None:
            raise NotFound(request.path)
        return number

    async def create(self, request: web.Request) -> web.Response:
        """POST .../IncomingPhoneNumbers.json: 201 with the new number."""
        params = await read_form(request)
        phone_number = _phone_number(params)
        number = self.registry.create(
            phone_number,
            friendly_name=_friendly_name(params) or format_address(phone_number),
            voice_url=parse_url(params, "VoiceUrl"),
            voice_method=parse_method(params, "VoiceMethod") or "POST",
            voice_fallback_url=parse_url(params, "VoiceFallbackUrl"),
            voice_fallback_method=parse_method(params, "VoiceFallbackMethod") or "POST",
            status_callback=parse_url(params, "StatusCallback"),
            status_callback_method=parse_method(params, "StatusCallbackMethod") or "POST",
        )
        body = number_to_json(number)
        return web.json_response(body, status=201, headers={"Location": self.public_base_url + body["uri"]})

    async def read(self, request: web.Request) -> web.Response:
        """GET .../IncomingPhoneNumbers.json: oldest first; PhoneNumber (a part of it) and FriendlyName filter.

        Origin filters too (only "softswitch" matches); Beta is accepted and ignored.
        """
        query = request.query
        req = parse_page_request(query)
        origin = get_param(query, "Origin")
        numbers: list[PhoneNumber] = []
        if origin is None or origin == ORIGIN:
            numbers = self.registry.list_numbers(get_param(query, "PhoneNumber"), get_param(query, "FriendlyName"),
                                                 req.offset, req.page_size + 1)
        filters = [(name, value) for name in _LIST_FILTERS if (value := query.get(name))]
        path = f"{API_ROOT}/Accounts/{self.registry.account_sid}/IncomingPhoneNumbers.json"
        records = [number_to_json(n) for n in numbers[: req.page_size]]
        body = page_envelope("incoming_phone_numbers", records, len(numbers) > req.page_size, req, path, filters)
        return web.json_response(body)

    async def fetch(self, request: web.Request) -> web.Response:
        """GET .../IncomingPhoneNumbers/{Sid}.json."""
        return web.json_response(number_to_json(self._number(request)))

    async def update(self, request: web.Request) -> web.Response:
        """POST .../IncomingPhoneNumbers/{Sid}.json: change the name, URLs and methods (not the number)."""
        self._number(request)  # an unknown SID is a 404 whatever the parameters
        changes = parse_number_update(await read_form(request))
        number = self.registry.update(request.match_info["Sid"], changes)
        if number is None:
            raise NotFound(request.path)
        return web.json_response(number_to_json(number))

    async def delete(self, request: web.Request) -> web.Response:
        """DELETE .../IncomingPhoneNumbers/{Sid}.json: release the number; calls to it get 404s.  204."""
        if not self.registry.delete(request.match_info["Sid"]):
            raise NotFound(request.path)
        return web.Response(status=204)


def add_twilio_number_routes(app: web.Application, creds: Credentials, registry: NumberRegistry,
                             public_base_url: str) -> None:
    """Mount IncomingPhoneNumbers on `app` (which needs `switch.dialects.errors.error_middleware`)."""
    api = TwilioNumbers(registry, public_base_url)
    base = f"{API_ROOT}/Accounts/{{AccountSid}}/IncomingPhoneNumbers"
    collection = app.router.add_resource(f"{base}.json", name="twilio-incoming-phone-numbers")
    collection.add_route("POST", authenticated(creds, api.create))
    collection.add_route("GET", authenticated(creds, api.read))
    instance = app.router.add_resource(f"{base}/{{Sid:[A-Za-z0-9]+}}.json", name="twilio-incoming-phone-number")
    instance.add_route("GET", authenticated(creds, api.fetch))
    instance.add_route("POST", authenticated(creds, api.update))
    instance.add_route("DELETE", authenticated(creds, api.delete))
