"""Twilio's SIP CredentialLists (with their Credentials) and IpAccessControlLists (with their IpAddresses) over a
`SipDirectory`, close enough for the official client.  Mounted by `switch.dialects.twilio.sip`.

Routes under /2010-04-01/Accounts/{AccountSid}/SIP (HTTP Basic, see `switch.dialects.auth`)::

    CredentialLists.json                            POST create -> 201, GET list
    CredentialLists/{CL}.json                       GET, POST (FriendlyName), DELETE -> 204
    CredentialLists/{CL}/Credentials.json           POST create (Username, Password) -> 201, GET list
    CredentialLists/{CL}/Credentials/{CR}.json      GET, POST (Password), DELETE -> 204
    IpAccessControlLists.json                       POST create -> 201, GET list
    IpAccessControlLists/{AL}.json                  GET, POST (FriendlyName), DELETE -> 204
    IpAccessControlLists/{AL}/IpAddresses.json      POST create (FriendlyName, IpAddress, CidrPrefixLength) -> 201
    IpAccessControlLists/{AL}/IpAddresses/{IP}.json GET, POST, DELETE -> 204

A credential's password is stored (the SIP edge answers digest challenges with it) and never rendered.  Invalid
values are 400s with Twilio's validation codes: 21240 for a credential list, 21243 for a credential; the IP lists
have no documented code of their own and use the generic 20001.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import MultiMapping

from switch.core.errors import Conflict, InvalidArgument, NotFound
from switch.core.paging import Cursor, PageKey
from switch.core.sip_domain_model import Credential, CredentialList, IpAccessControlList, IpAddress
from switch.core.sip_domains import SipDirectory
from switch.dialects.auth import Credentials, authenticated
from switch.dialects.errors import API_ROOT, INVALID_PARAMETER, InvalidParameter
from switch.dialects.forms import cut_page, parse_int, parse_page_request, read_form
from switch.dialects.twilio.api import rfc2822, slice_envelope

CREDENTIAL_LIST_INVALID = 21240  # "Credential List Validation Error"
CREDENTIAL_INVALID = 21243  # "Credential Validation Error" (a weak password, a username taken)
SID = "{Sid:[A-Za-z0-9]+}"
Lister = Callable[[int, int, Cursor | None], list[Any]]


@contextlib.contextmanager
def validation(code: int) -> Iterator[None]:
    """Report the core's InvalidArgument and Conflict as 400s with Twilio's `code` for the resource."""
    try:
        yield
    except (InvalidArgument, Conflict) as exc:
        raise InvalidParameter(exc.message, code) from exc


def sip_root(account_sid: str) -> str:
    return f"{API_ROOT}/Accounts/{account_sid}/SIP"


def created(body: dict[str, Any], public_base_url: str) -> web.Response:
    """201 with the new resource and its Location."""
    return web.json_response(body, status=201, headers={"Location": public_base_url + body["uri"]})


def list_page(request: web.Request, key: str, lister: Lister, render: Callable[[Any], dict[str, Any]],
              page_key: Callable[[Any], PageKey], path: str) -> web.Response:
    """One page of a SIP list, oldest first, paged by cursor as every list here is."""
    req = parse_page_request(request.query)
    page = cut_page(lister(req.offset, req.page_size + 1, req.cursor), req, page_key)
    return web.json_response(slice_envelope(key, page, render, req, path, []))


def record_key(item: Any) -> PageKey:
    return PageKey(item.date_created, item.sid)


def _dates(item: Any) -> dict[str, Any]:
    return {"date_created": rfc2822(item.date_created), "date_updated": rfc2822(item.date_updated)}


def credential_list_to_json(cl: CredentialList) -> dict[str, Any]:
    uri = f"{sip_root(cl.account_sid)}/CredentialLists/{cl.sid}"
    return {"account_sid": cl.account_sid, **_dates(cl), "friendly_name": cl.friendly_name, "sid": cl.sid,
            "subresource_uris": {"credentials": f"{uri}/Credentials.json"}, "uri": f"{uri}.json"}


def credential_to_json(cred: Credential) -> dict[str, Any]:
    """A credential as Twilio renders it: the username, never the password."""
    return {"sid": cred.sid, "account_sid": cred.account_sid, "credential_list_sid": cred.credential_list_sid,
            "username": cred.username, **_dates(cred),
            "uri": f"{sip_root(cred.account_sid)}/CredentialLists/{cred.credential_list_sid}/Credentials/"
                   f"{cred.sid}.json"}


def acl_to_json(acl: IpAccessControlList) -> dict[str, Any]:
    uri = f"{sip_root(acl.account_sid)}/IpAccessControlLists/{acl.sid}"
    return {"sid": acl.sid, "account_sid": acl.account_sid, "friendly_name": acl.friendly_name, **_dates(acl),
            "subresource_uris": {"ip_addresses": f"{uri}/IpAddresses.json"}, "uri": f"{uri}.json"}


def ip_address_to_json(ip: IpAddress) -> dict[str, Any]:
    return {"sid": ip.sid, "account_sid": ip.account_sid, "friendly_name": ip.friendly_name,
            "ip_address": ip.ip_address, "cidr_prefix_length": ip.cidr_prefix_length,
            "ip_access_control_list_sid": ip.ip_access_control_list_sid, **_dates(ip),
            "uri": f"{sip_root(ip.account_sid)}/IpAccessControlLists/{ip.ip_access_control_list_sid}/IpAddresses/"
                   f"{ip.sid}.json"}


def _raw(params: MultiMapping[str], name: str) -> str:
    """A parameter as given ("" when absent): the core says what is wrong with it."""
    return params.get(name, "")


class TwilioSipLists:
    """The CredentialLists and IpAccessControlLists handlers, bound to one `SipDirectory`."""

    def __init__(self, directory: SipDirectory, public_base_url: str) -> None:
        self.directory = directory
        self.public_base_url = public_base_url.rstrip("/")
        self.root = sip_root(directory.account_sid)

    def _list(self, request: web.Request) -> CredentialList:
        found = self.directory.credential_list(request.match_info["ListSid"])
        if found is None:
            raise NotFound(request.path)
        return found

    def _acl(self, request: web.Request) -> IpAccessControlList:
        found = self.directory.ip_access_control_list(request.match_info["ListSid"])
        if found is None:
            raise NotFound(request.path)
        return found

    # -- CredentialLists --------------------------------------------------------------------------------------
    async def create_list(self, request: web.Request) -> web.Response:
        params = await read_form(request)
        with validation(CREDENTIAL_LIST_INVALID):
            made = self.directory.create_credential_list(_raw(params, "FriendlyName"))
        return created(credential_list_to_json(made), self.public_base_url)

    async def read_lists(self, request: web.Request) -> web.Response:
        return list_page(request, "credential_lists", self.directory.list_credential_lists, credential_list_to_json,
                         record_key, f"{self.root}/CredentialLists.json")

    async def fetch_list(self, request: web.Request) -> web.Response:
        return web.json_response(credential_list_to_json(self._list(request)))

    async def update_list(self, request: web.Request) -> web.Response:
        current = self._list(request)
        params = await read_form(request)
        with validation(CREDENTIAL_LIST_INVALID):
            updated = self.directory.update_credential_list(current.sid, _raw(params, "FriendlyName"))
        if updated is None:
            raise NotFound(request.path)
        return web.json_response(credential_list_to_json(updated))

    async def delete_list(self, request: web.Request) -> web.Response:
        """DELETE: 204; its credentials go, and it is unmapped from every domain."""
        if not self.directory.delete_credential_list(request.match_info["ListSid"]):
            raise NotFound(request.path)
        return web.Response(status=204)

    # -- Credentials ------------------------------------------------------------------------------------------
    def _credential(self, request: web.Request) -> Credential:
        found = self.directory.credential(self._list(request).sid, request.match_info["Sid"])
        if found is None:
            raise NotFound(request.path)
        return found

    async def create_credential(self, request: web.Request) -> web.Response:
        cl = self._list(request)
        params = await read_form(request)
        with validation(CREDENTIAL_INVALID):
            made = self.directory.create_credential(cl.sid, _raw(params, "Username"), _raw(params, "Password"))
        return created(credential_to_json(made), self.public_base_url)

    async def read_credentials(self, request: web.Request) -> web.Response:
        cl = self._list(request)
        return list_page(request, "credentials",
                         lambda offset, limit, cursor: self.directory.list_credentials(cl.sid, offset, limit, cursor),
                         credential_to_json, record_key, f"{self.root}/CredentialLists/{cl.sid}/Credentials.json")

    async def fetch_credential(self, request: web.Request) -> web.Response:
        return web.json_response(credential_to_json(self._credential(request)))

    async def update_credential(self, request: web.Request) -> web.Response:
        """POST: a new Password (the username cannot change); none given changes nothing."""
        current = self._credential(request)
        params = await read_form(request)
        if "Password" not in params:
            return web.json_response(credential_to_json(current))
        with validation(CREDENTIAL_INVALID):
            updated = self.directory.update_credential(current.credential_list_sid, current.sid, params["Password"])
        if updated is None:
            raise NotFound(request.path)
        return web.json_response(credential_to_json(updated))

    async def delete_credential(self, request: web.Request) -> web.Response:
        if not self.directory.delete_credential(self._list(request).sid, request.match_info["Sid"]):
            raise NotFound(request.path)
        return web.Response(status=204)

    # -- IpAccessControlLists ---------------------------------------------------------------------------------
    async def create_acl(self, request: web.Request) -> web.Response:
        params = await read_form(request)
        with validation(INVALID_PARAMETER):
            made = self.directory.create_ip_access_control_list(_raw(params, "FriendlyName"))
        return created(acl_to_json(made), self.public_base_url)

    async def read_acls(self, request: web.Request) -> web.Response:
        return list_page(request, "ip_access_control_lists", self.directory.list_ip_access_control_lists,
                         acl_to_json, record_key, f"{self.root}/IpAccessControlLists.json")

    async def fetch_acl(self, request: web.Request) -> web.Response:
        return web.json_response(acl_to_json(self._acl(request)))

    async def update_acl(self, request: web.Request) -> web.Response:
        current = self._acl(request)
        params = await read_form(request)
        with validation(INVALID_PARAMETER):
            updated = self.directory.update_ip_access_control_list(current.sid, _raw(params, "FriendlyName"))
        if updated is None:
            raise NotFound(request.path)
        return web.json_response(acl_to_json(updated))

    async def delete_acl(self, request: web.Request) -> web.Response:
        """DELETE: 204; its addresses go, and it is unmapped from every domain."""
        if not self.directory.delete_ip_access_control_list(request.match_info["ListSid"]):
            raise NotFound(request.path)
        return web.Response(status=204)

    # -- IpAddresses ------------------------------------------------------------------------------------------
    def _ip(self, request: web.Request) -> IpAddress:
        found = self.directory.ip_address(self._acl(request).sid, request.match_info["Sid"])
        if found is None:
            raise NotFound(request.path)
        return found

    async def create_ip(self, request: web.Request) -> web.Response:
        acl = self._acl(request)
        params = await read_form(request)
        with validation(INVALID_PARAMETER):
            made = self.directory.create_ip_address(acl.sid, _raw(params, "FriendlyName"),
                                                    _raw(params, "IpAddress"), parse_int(params, "CidrPrefixLength"))
        return created(ip_address_to_json(made), self.public_base_url)

    async def read_ips(self, request: web.Request) -> web.Response:
        acl = self._acl(request)
        return list_page(request, "ip_addresses",
                         lambda offset, limit, cursor: self.directory.list_ip_addresses(acl.sid, offset, limit, cursor),
                         ip_address_to_json, record_key, f"{self.root}/IpAccessControlLists/{acl.sid}/IpAddresses.json")

    async def fetch_ip(self, request: web.Request) -> web.Response:
        return web.json_response(ip_address_to_json(self._ip(request)))

    async def update_ip(self, request: web.Request) -> web.Response:
        """POST: the FriendlyName, IpAddress and CidrPrefixLength given; the others stay."""
        current = self._ip(request)
        params = await read_form(request)
        with validation(INVALID_PARAMETER):
            updated = self.directory.update_ip_address(
                current.ip_access_control_list_sid, current.sid,
                params.get("FriendlyName"), params.get("IpAddress"), parse_int(params, "CidrPrefixLength"))
        if updated is None:
            raise NotFound(request.path)
        return web.json_response(ip_address_to_json(updated))

    async def delete_ip(self, request: web.Request) -> web.Response:
        if not self.directory.delete_ip_address(self._acl(request).sid, request.match_info["Sid"]):
            raise NotFound(request.path)
        return web.Response(status=204)


def add_sip_list_routes(app: web.Application, creds: Credentials, api: TwilioSipLists) -> None:
    """Mount CredentialLists, Credentials, IpAccessControlLists and IpAddresses."""
    base = f"{API_ROOT}/Accounts/{{AccountSid}}/SIP"
    routes = (
        ("CredentialLists", {"POST": api.create_list, "GET": api.read_lists}),
        ("CredentialLists/{ListSid:[A-Za-z0-9]+}", {"GET": api.fetch_list, "POST": api.update_list,
                                                    "DELETE": api.delete_list}),
        ("CredentialLists/{ListSid:[A-Za-z0-9]+}/Credentials", {"POST": api.create_credential,
                                                                "GET": api.read_credentials}),
        (f"CredentialLists/{{ListSid:[A-Za-z0-9]+}}/Credentials/{SID}", {
            "GET": api.fetch_credential, "POST": api.update_credential, "DELETE": api.delete_credential}),
        ("IpAccessControlLists", {"POST": api.create_acl, "GET": api.read_acls}),
        ("IpAccessControlLists/{ListSid:[A-Za-z0-9]+}", {"GET": api.fetch_acl, "POST": api.update_acl,
                                                         "DELETE": api.delete_acl}),
        ("IpAccessControlLists/{ListSid:[A-Za-z0-9]+}/IpAddresses", {"POST": api.create_ip, "GET": api.read_ips}),
        (f"IpAccessControlLists/{{ListSid:[A-Za-z0-9]+}}/IpAddresses/{SID}", {
            "GET": api.fetch_ip, "POST": api.update_ip, "DELETE": api.delete_ip}),
    )
    mount(app, creds, base, routes)


def mount(app: web.Application, creds: Credentials, base: str,
          routes: Iterable[tuple[str, Mapping[str, Handler]]]) -> None:
    """Mount `base/<path>.json` for each (path, {method: handler}), every handler behind the account's auth."""
    for path, handlers in routes:
        resource = app.router.add_resource(f"{base}/{path}.json")
        for method, handler in handlers.items():
            resource.add_route(method, authenticated(creds, handler))

