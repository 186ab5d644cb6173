"""Twilio's Keys resource (API keys, 2010-04-01) over `switch.core.api_keys.ApiKeys`, as the official clients call
it (`client.new_keys.create` posts to Keys.json; `client.keys` lists, fetches, updates and deletes)::

    POST   /2010-04-01/Accounts/{AccountSid}/Keys.json          create (FriendlyName) -> 201, with `secret`
    GET    /2010-04-01/Accounts/{AccountSid}/Keys.json          list -> 200 page, oldest first
    GET    /2010-04-01/Accounts/{AccountSid}/Keys/{Sid}.json    fetch -> 200
    POST   /2010-04-01/Accounts/{AccountSid}/Keys/{Sid}.json    update FriendlyName -> 200
    DELETE /2010-04-01/Accounts/{AccountSid}/Keys/{Sid}.json    delete -> 204

The secret appears in the create's answer only (Twilio's NewKey); every other answer is a Key, without it.
Authenticated with the account SID and auth token: an API key cannot manage keys (`switch.dialects.auth`).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from switch.core.api_keys import ApiKey, ApiKeys
from switch.core.errors import NotFound
from switch.core.paging import PageKey
from switch.dialects.auth import API_KEYS, Credentials, authenticated
from switch.dialects.errors import API_ROOT
from switch.dialects.forms import cut_page, get_param, parse_page_request, read_form
from switch.dialects.twilio.api import rfc2822, slice_envelope


def key_to_json(key: ApiKey) -> dict[str, Any]:
    """A key as Twilio's Key resource: never its secret."""
    return {
        "sid": key.sid,
        "friendly_name": key.friendly_name,
        "date_created": rfc2822(key.date_created),
        "date_updated": rfc2822(key.date_updated),
    }


def new_key_to_json(key: ApiKey) -> dict[str, Any]:
    """A key just made, as Twilio's NewKey resource: with its secret, this once."""
    return {**key_to_json(key), "secret": key.secret}


def _uri(account_sid: str, sid: str) -> str:
    return f"{API_ROOT}/Accounts/{account_sid}/Keys/{sid}.json"


class TwilioKeys:
    """The Keys handlers, bound to one `ApiKeys`."""

    def __init__(self, keys: ApiKeys, public_base_url: str) -> None:
        self.keys = keys
        self.public_base_url = public_base_url.rstrip("/")

    def _key(self, request: web.Request) -> ApiKey:
        found = self.keys.get(request.match_info["Sid"])
        if found is None:
            raise NotFound(request.path)
        return found

    async def create(self, request: web.Request) -> web.Response:
        """POST .../Keys.json: 201 with the new key and its secret."""
        made = self.keys.create(get_param(await read_form(request), "FriendlyName"))
        location = self.public_base_url + _uri(made.account_sid, made.sid)
        return web.json_response(new_key_to_json(made), status=201, headers={"Location": location})

    async def read(self, request: web.Request) -> web.Response:
        """GET .../Keys.json: oldest first, no secrets."""
        req = parse_page_request(request.query)
        found = self.keys.list_keys(req.offset, req.page_size + 1, req.cursor)
        page = cut_page(found, req, lambda k: PageKey(k.date_created, k.sid))
        path = f"{API_ROOT}/Accounts/{self.keys.account_sid}/Keys.json"
        return web.json_response(slice_envelope("keys", page, key_to_json, req, path, []))

    async def fetch(self, request: web.Request) -> web.Response:
        """GET .../Keys/{Sid}.json."""
        return web.json_response(key_to_json(self._key(request)))

    async def update(self, request: web.Request) -> web.Response:
        """POST .../Keys/{Sid}.json: a new FriendlyName (empty clears it)."""
        current = self._key(request)
        params = await read_form(request)
        if "FriendlyName" not in params:
            return web.json_response(key_to_json(current))
        updated = self.keys.update(current.sid, get_param(params, "FriendlyName"))
        if updated is None:
            raise NotFound(request.path)
        return web.json_response(key_to_json(updated))

    async def delete(self, request: web.Request) -> web.Response:
        """DELETE .../Keys/{Sid}.json: 204; the key authenticates nothing from now on."""
        if not self.keys.delete(request.match_info["Sid"]):
            raise NotFound(request.path)
        return web.Response(status=204)


def add_twilio_key_routes(app: web.Application, creds: Credentials, keys: ApiKeys, public_base_url: str) -> None:
    """Mount Keys on `app` (which needs `switch.dialects.errors.error_middleware`), and let its keys authenticate
    every route of `app` that takes the auth token (`switch.dialects.auth.API_KEYS`)."""
    app[API_KEYS] = keys.secret_of
    api = TwilioKeys(keys, public_base_url)
    base = f"{API_ROOT}/Accounts/{{AccountSid}}/Keys"
    collection = app.router.add_resource(f"{base}.json", name="twilio-keys")
    collection.add_route("POST", authenticated(creds, api.create))
    collection.add_route("GET", authenticated(creds, api.read))
    instance = app.router.add_resource(f"{base}/{{Sid:[A-Za-z0-9]+}}.json", name="twilio-key")
    instance.add_route("GET", authenticated(creds, api.fetch))
    instance.add_route("POST", authenticated(creds, api.update))
    instance.add_route("DELETE", authenticated(creds, api.delete))
