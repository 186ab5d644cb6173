"""Twilio's SIP API over a `SipDirectory`: Domains and the mappings that attach lists to them, plus the lists
themselves (`switch.dialects.twilio.sip_lists`), close enough for the official client.

Routes under /2010-04-01/Accounts/{AccountSid}/SIP (HTTP Basic, see `switch.dialects.auth`)::

    Domains.json                    POST create (DomainName required) -> 201, GET list
    Domains/{SD}.json               GET, POST update, DELETE -> 204
    Domains/{SD}/Auth/Calls/CredentialListMappings[/{CL}].json           calls by digest
    Domains/{SD}/Auth/Calls/IpAccessControlListMappings[/{AL}].json      calls by source address
    Domains/{SD}/Auth/Registrations/CredentialListMappings[/{CL}].json   REGISTER by digest
    Domains/{SD}/CredentialListMappings[/{CL}].json                      legacy: the Calls credential lists
    Domains/{SD}/IpAccessControlListMappings[/{AL}].json                 legacy: the Calls IP lists

Each mapping collection takes POST (CredentialListSid or IpAccessControlListSid) -> 201 and GET; an instance GET
and DELETE -> 204.  A mapping's SID is the SID of the list it maps, its FriendlyName the list's.

DomainName is any DNS host name, unique across the switch in any case: unlike Twilio, no `sip.twilio.com` suffix
is required, since a self-hosted switch answers for whatever names point at it.  Invalid domain fields, an
unknown list or a list mapped twice are 400s with Twilio's 21231 ("Domain Validation Error").  Emergency calling,
`Secure` and BYOC trunks are not supported: asking for them is a 400, leaving them off is fine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from switch.core.errors import NotFound
from switch.core.paging import PageKey
from switch.core.sip_domain_model import Mapping, MappingKind, SipDomain
from switch.core.sip_domains import SipDirectory
from switch.dialects.auth import Credentials
from switch.dialects.errors import API_ROOT, InvalidParameter
from switch.dialects.forms import get_param, parse_url, read_form
from switch.dialects.twilio.api import API_VERSION, rfc2822
from switch.dialects.twilio.params import parse_method
from switch.dialects.twilio.sip_lists import (
    TwilioSipLists,
    add_sip_list_routes,
    created,
    list_page,
    mount,
    record_key,
    sip_root,
    validation,
)

DOMAIN_INVALID = 21231  # "Domain Validation Error"
_URLS = (("VoiceUrl", "voice_url"), ("VoiceFallbackUrl", "voice_fallback_url"),
         ("VoiceStatusCallbackUrl", "voice_status_callback_url"))
_METHODS = (("VoiceMethod", "voice_method"), ("VoiceFallbackMethod", "voice_fallback_method"),
            ("VoiceStatusCallbackMethod", "voice_status_callback_method"))
_UNSUPPORTED_FLAGS = ("EmergencyCallingEnabled", "Secure")
_UNSUPPORTED_SIDS = ("ByocTrunkSid", "EmergencyCallerSid")


@dataclass(frozen=True)
class MappingResource:
    """One mapping collection: its path under the domain, what it maps, the list SID parameter, the key of its list
    pages, and whether it is the legacy rendering (with `domain_sid` and `uri`)."""

    path: str
    kind: MappingKind
    sid_param: str
    list_key: str
    legacy: bool


MAPPINGS = (
    MappingResource("Auth/Calls/CredentialListMappings", MappingKind.CALL_CREDENTIALS, "CredentialListSid",
                    "contents", False),
    MappingResource("Auth/Calls/IpAccessControlListMappings", MappingKind.CALL_NETWORKS, "IpAccessControlListSid",
                    "contents", False),
    MappingResource("Auth/Registrations/CredentialListMappings", MappingKind.REGISTRATION_CREDENTIALS,
                    "CredentialListSid", "contents", False),
    MappingResource("CredentialListMappings", MappingKind.CALL_CREDENTIALS, "CredentialListSid",
                    "credential_list_mappings", True),
    MappingResource("IpAccessControlListMappings", MappingKind.CALL_NETWORKS, "IpAccessControlListSid",
                    "ip_access_control_list_mappings", True),
)


def domain_to_json(domain: SipDomain, auth_type: str) -> dict[str, Any]:
    """A `SipDomain` as Twilio's Domain resource, every field present."""
    uri = f"{sip_root(domain.account_sid)}/Domains/{domain.sid}"
    return {
        "account_sid": domain.account_sid,
        "api_version": API_VERSION,
        "auth_type": auth_type,
        "date_created": rfc2822(domain.date_created),
        "date_updated": rfc2822(domain.date_updated),
        "domain_name": domain.domain_name,
        "friendly_name": domain.friendly_name,
        "sid": domain.sid,
        "uri": f"{uri}.json",
        "voice_fallback_method": domain.voice_fallback_method,
        "voice_fallback_url": domain.voice_fallback_url,
        "voice_method": domain.voice_method,
        "voice_status_callback_method": domain.voice_status_callback_method,
        "voice_status_callback_url": domain.voice_status_callback_url,
        "voice_url": domain.voice_url,
        "subresource_uris": {
            "ip_access_control_list_mappings": f"{uri}/IpAccessControlListMappings.json",
            "credential_list_mappings": f"{uri}/CredentialListMappings.json",
        },
        "sip_registration": domain.sip_registration,
        "emergency_calling_enabled": False,
        "secure": False,
        "byoc_trunk_sid": None,
        "emergency_caller_sid": None,
    }


def _bool(params: MultiMapping[str], name: str) -> bool | None:
    value = get_param(params, name)
    if value is None:
        return None
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise InvalidParameter(f"{name} must be true or false, not {value!r}", DOMAIN_INVALID)


def parse_domain_fields(params: MultiMapping[str]) -> dict[str, Any]:
    """The fields a create or update names.  An empty URL or FriendlyName clears it (as on Twilio); an empty
    method is ignored; DomainName is passed on as given for the directory to check."""
    for name in _UNSUPPORTED_FLAGS:
        if _bool(params, name):
            raise InvalidParameter(f"{name}=true is not supported by this switch", DOMAIN_INVALID)
    for name in _UNSUPPORTED_SIDS:
        if get_param(params, name) is not None:
            raise InvalidParameter(f"{name} is not supported by this switch", DOMAIN_INVALID)
    fields: dict[str, Any] = {}
    if "DomainName" in params:
        fields["domain_name"] = params["DomainName"]
    if "FriendlyName" in params:
        fields["friendly_name"] = get_param(params, "FriendlyName")
    for param, field in _URLS:
        if param in params:
            fields[field] = parse_url(params, param)
    for param, field in _METHODS:
        method = parse_method(params, param)
        if method is not None:
            fields[field] = method
    registration = _bool(params, "SipRegistration")
    if registration is not None:
        fields["sip_registration"] = registration
    return fields


class TwilioSipDomains:
    """The Domains and mapping handlers, bound to one `SipDirectory`."""

    def __init__(self, directory: SipDirectory, public_base_url: str) -> None:
        self.directory = directory
        self.public_base_url = public_base_url.rstrip("/")
        self.root = sip_root(directory.account_sid)

    def _domain(self, request: web.Request) -> SipDomain:
        found = self.directory.domain(request.match_info["DomainSid"])
        if found is None:
            raise NotFound(request.path)
        return found

    def _render(self, domain: SipDomain) -> dict[str, Any]:
        return domain_to_json(domain, self.directory.auth_type(domain.sid))

    async def create(self, request: web.Request) -> web.Response:
        """POST Domains.json: 201 with the new domain."""
        fields = parse_domain_fields(await read_form(request))
        if not fields.get("domain_name"):
            raise InvalidParameter("DomainName is required", DOMAIN_INVALID)
        with validation(DOMAIN_INVALID):
            domain = self.directory.create_domain(**fields)
        return created(self._render(domain), self.public_base_url)

    async def read(self, request: web.Request) -> web.Response:
        """GET Domains.json: oldest first."""
        return list_page(request, "domains", self.directory.list_domains, self._render, record_key,
                         f"{self.root}/Domains.json")

    async def fetch(self, request: web.Request) -> web.Response:
        return web.json_response(self._render(self._domain(request)))

    async def update(self, request: web.Request) -> web.Response:
        """POST Domains/{SD}.json: the named fields; the SIP edge uses them from its next request on."""
        current = self._domain(request)  # an unknown SID is a 404 whatever the parameters
        fields = parse_domain_fields(await read_form(request))
        with validation(DOMAIN_INVALID):
            domain = self.directory.update_domain(current.sid, fields)
        if domain is None:
            raise NotFound(request.path)
        return web.json_response(self._render(domain))

    async def delete(self, request: web.Request) -> web.Response:
        """DELETE Domains/{SD}.json: 204; its mappings go, the lists stay."""
        if not self.directory.delete_domain(request.match_info["DomainSid"]):
            raise NotFound(request.path)
        return web.Response(status=204)


class TwilioSipMappings:
    """The handlers of one `MappingResource` of every domain."""

    def __init__(self, directory: SipDirectory, resource: MappingResource, public_base_url: str) -> None:
        self.directory = directory
        self.resource = resource
        self.public_base_url = public_base_url.rstrip("/")
        self.root = sip_root(directory.account_sid)

    def _collection(self, domain_sid: str) -> str:
        return f"{self.root}/Domains/{domain_sid}/{self.resource.path}"

    def _render(self, mapping: Mapping) -> dict[str, Any]:
        listed = self.directory.mapped_list(mapping)
        body: dict[str, Any] = {
            "account_sid": mapping.account_sid,
            "date_created": rfc2822(mapping.date_created),
            "date_updated": rfc2822(mapping.date_updated),
            "friendly_name": None if listed is None else listed.friendly_name,
            "sid": mapping.list_sid,
        }
        if self.resource.legacy:
            body["domain_sid"] = mapping.domain_sid
            body["uri"] = f"{self._collection(mapping.domain_sid)}/{mapping.list_sid}.json"
        return body

    def _domain_sid(self, request: web.Request) -> str:
        sid = request.match_info["DomainSid"]
        if self.directory.domain(sid) is None:
            raise NotFound(request.path)
        return sid

    def _mapping(self, request: web.Request) -> Mapping:
        found = self.directory.mapping(self._domain_sid(request), self.resource.kind, request.match_info["Sid"])
        if found is None:
            raise NotFound(request.path)
        return found

    async def create(self, request: web.Request) -> web.Response:
        """POST: map the list named by the SID parameter; 201 with the mapping."""
        domain_sid = self._domain_sid(request)
        params = await read_form(request)
        list_sid = get_param(params, self.resource.sid_param)
        if list_sid is None:
            raise InvalidParameter(f"{self.resource.sid_param} is required", DOMAIN_INVALID)
        with validation(DOMAIN_INVALID):
            mapping = self.directory.add_mapping(domain_sid, self.resource.kind, list_sid)
        body = self._render(mapping)
        location = f"{self.public_base_url}{self._collection(domain_sid)}/{mapping.list_sid}.json"
        return web.json_response(body, status=201, headers={"Location": location})

    async def read(self, request: web.Request) -> web.Response:
        domain_sid = self._domain_sid(request)
        return list_page(
            request, self.resource.list_key,
            lambda offset, limit, cursor: self.directory.list_mappings(domain_sid, self.resource.kind, offset,
                                                                       limit, cursor),
            self._render, lambda m: PageKey(m.date_created, m.list_sid), f"{self._collection(domain_sid)}.json")

    async def fetch(self, request: web.Request) -> web.Response:
        return web.json_response(self._render(self._mapping(request)))

    async def delete(self, request: web.Request) -> web.Response:
        """DELETE: 204; the list stays, the domain no longer uses it."""
        mapping = self._mapping(request)
        self.directory.remove_mapping(mapping.domain_sid, self.resource.kind, mapping.list_sid)
        return web.Response(status=204)


def add_twilio_sip_routes(app: web.Application, creds: Credentials, directory: SipDirectory,
                          public_base_url: str) -> None:
    """Mount the SIP API on `app` (which needs `switch.dialects.errors.error_middleware`)."""
    add_sip_list_routes(app, creds, TwilioSipLists(directory, public_base_url))
    domains = TwilioSipDomains(directory, public_base_url)
    domain = "Domains/{DomainSid:[A-Za-z0-9]+}"
    routes = [("Domains", {"POST": domains.create, "GET": domains.read}),
              (domain, {"GET": domains.fetch, "POST": domains.update, "DELETE": domains.delete})]
    for resource in MAPPINGS:
        api = TwilioSipMappings(directory, resource, public_base_url)
        prefix = f"{domain}/{resource.path}"
        routes += [(prefix, {"POST": api.create, "GET": api.read}),
                   (f"{prefix}/{{Sid:[A-Za-z0-9]+}}", {"GET": api.fetch, "DELETE": api.delete})]
    mount(app, creds, f"{API_ROOT}/Accounts/{{AccountSid}}/SIP", routes)
