"""Twilio's IncomingPhoneNumbers resource over a `NumberRegistry`, close enough that the official client works.

Routes (HTTP Basic, see `switch.dialects.auth`)::

    POST   /2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers.json          create -> 201
    GET    /2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers.json          list   -> 200 page
    GET    /2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json    fetch  -> 200
    POST   /2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json    update -> 200
    DELETE /2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json    delete -> 204
    POST   .../IncomingPhoneNumbers/Local.json (Mobile.json, TollFree.json)     create one of that type -> 201
    GET    .../IncomingPhoneNumbers/Local.json (Mobile.json, TollFree.json)     list the numbers of that type

A number's type is only the subresource it was created under (local when created by the list itself or the
config file).  `VoiceApplicationSid` hands the number's calls to an Application (`switch.core.applications`):
its voice URLs and status callback replace the number's own.

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
from switch.core.paging import PageKey
from switch.dialects.auth import Credentials, authenticated
from switch.dialects.errors import API_ROOT, InvalidParameter
from switch.dialects.forms import cut_page, get_param, parse_page_request, parse_url, read_form
from switch.dialects.twilio.api import API_VERSION, format_address, rfc2822, slice_envelope
from switch.dialects.twilio.params import parse_method

# Twilio's codes: 21421 "PhoneNumber is invalid" (also used here when it is missing); an unknown
# VoiceApplicationSid is 21420 "ApplicationSid is not accessible" for a new number, 22108 "Invalid Application
# SID" when configuring one.
INVALID_PHONE_NUMBER = 21421
APPLICATION_NOT_ACCESSIBLE = 21420
INVALID_APPLICATION_SID = 22108
# The typed subresources and the type each one creates and lists.
TYPED = {"Local": "local", "Mobile": "mobile", "TollFree": "toll-free"}
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
        "voice_application_sid": number.voice_application_sid,
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


def _application_sid(params: MultiMapping[str], registry: NumberRegistry, code: int) -> str | None:
    """VoiceApplicationSid: an application of the account; empty (or absent) is none."""
    value = get_param(params, "VoiceApplicationSid")
    if not value:
        return None
    if registry.applications.get(value) is None:
        raise InvalidParameter(f"VoiceApplicationSid {value} is not an application of this account", code)
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
        """POST .../IncomingPhoneNumbers.json (or Local.json, Mobile.json, TollFree.json): 201 with the new number."""
        params = await read_form(request)
        phone_number = _phone_number(params)
        application_sid = _application_sid(params, self.registry, APPLICATION_NOT_ACCESSIBLE)
        number = self.registry.create(
            phone_number,
            friendly_name=_friendly_name(params) or format_address(phone_number),
            voice_url=parse_url(params, "VoiceUrl"),
            voice_method=parse_method(params, "VoiceMethod") or "POST",
            voice_fallback_url=parse_url(params, "VoiceFallbackUrl"),
            voice_fallback_method=parse_method(params, "VoiceFallbackMethod") or "POST",
            status_callback=parse_url(params, "StatusCallback"),
            status_callback_method=parse_method(params, "StatusCallbackMethod") or "POST",
            voice_application_sid=application_sid,
            number_type=TYPED.get(request.match_info.get("Type", ""), "local"),
        )
        body = number_to_json(number)
        return web.json_response(body, status=201, headers={"Location": self.public_base_url + body["uri"]})

    async def read(self, request: web.Request) -> web.Response:
        """GET .../IncomingPhoneNumbers.json: oldest first; PhoneNumber (a part of it) and FriendlyName filter.

        Origin filters too (only "softswitch" matches); Beta is accepted and ignored.
        """
        query = request.query
        req = parse_page_request(query)
        kind = request.match_info.get("Type")  # Local, Mobile, TollFree: only numbers of that type
        origin = get_param(query, "Origin")
        numbers: list[PhoneNumber] = []
        if origin is None or origin == ORIGIN:
            numbers = self.registry.list_numbers(get_param(query, "PhoneNumber"), get_param(query, "FriendlyName"),
                                                 req.offset, req.page_size + 1, TYPED.get(kind) if kind else None,
                                                 cursor=req.cursor)
        filters = [(name, value) for name in _LIST_FILTERS if (value := query.get(name))]
        path = f"{API_ROOT}/Accounts/{self.registry.account_sid}/IncomingPhoneNumbers{'/' + kind if kind else ''}.json"
        page = cut_page(numbers, req, lambda n: PageKey(n.date_created, n.sid))
        return web.json_response(slice_envelope("incoming_phone_numbers", page, number_to_json, req, path, filters))

    async def fetch(self, request: web.Request) -> web.Response:
        """GET .../IncomingPhoneNumbers/{Sid}.json."""
        return web.json_response(number_to_json(self._number(request)))

    async def update(self, request: web.Request) -> web.Response:
        """POST .../IncomingPhoneNumbers/{Sid}.json: change the name, URLs and methods (not the number)."""
        self._number(request)  # an unknown SID is a 404 whatever the parameters
        params = await read_form(request)
        changes = parse_number_update(params)
        if "VoiceApplicationSid" in params:  # empty: the number answers with its own URLs again
            changes["voice_application_sid"] = _application_sid(params, self.registry, INVALID_APPLICATION_SID)
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
    # Before the instance route, whose {Sid} would take "Local" for a SID.
    typed = app.router.add_resource(f"{base}/{{Type:{'|'.join(TYPED)}}}.json", name="twilio-typed-phone-numbers")
    typed.add_route("POST", authenticated(creds, api.create))
    typed.add_route("GET", authenticated(creds, api.read))
    instance = app.router.add_resource(f"{base}/{{Sid:[A-Za-z0-9]+}}.json", name="twilio-incoming-phone-number")
    instance.add_route("GET", authenticated(creds, api.fetch))
    instance.add_route("POST", authenticated(creds, api.update))
    instance.add_route("DELETE", authenticated(creds, api.delete))
