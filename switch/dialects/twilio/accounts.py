"""Twilio's Account resource for the switch's one account (`client.api.account.fetch()`, `.update(...)`).

Routes (HTTP Basic, see `switch.dialects.auth`)::

    GET  /2010-04-01/Accounts.json                 list: the one account (FriendlyName, Status filter) -> 200
    GET  /2010-04-01/Accounts/{AccountSid}.json    fetch  -> 200
    POST /2010-04-01/Accounts/{AccountSid}.json    update FriendlyName (Status: only active) -> 200

Creating subaccounts (`POST .../Accounts.json`) is not supported: it is a 405.  The account is `Full`, its own
owner, and `active`; its `auth_token` is shown, as Twilio shows it to the account's own credentials.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from switch.core.accounts import Account, Accounts
from switch.dialects.auth import Credentials, authenticated
from switch.dialects.errors import API_ROOT
from switch.dialects.forms import get_param, parse_page_request, read_form
from switch.dialects.twilio.api import page_envelope, rfc2822

# The subresources the switch serves, by their key in `subresource_uris`.
SUBRESOURCES = {
    "calls": "Calls",
    "recordings": "Recordings",
    "notifications": "Notifications",
    "incoming_phone_numbers": "IncomingPhoneNumbers",
    "applications": "Applications",
}


def account_to_json(account: Account) -> dict[str, Any]:
    """The account as Twilio's Account resource."""
    base = f"{API_ROOT}/Accounts/{account.sid}"
    return {
        "sid": account.sid,
        "owner_account_sid": account.sid,
        "friendly_name": account.friendly_name,
        "status": account.status,
        "type": "Full",
        "auth_token": account.auth_token,
        "date_created": rfc2822(account.date_created),
        "date_updated": rfc2822(account.date_updated),
        "uri": f"{base}.json",
        "subresource_uris": {key: f"{base}/{name}.json" for key, name in SUBRESOURCES.items()},
    }


class TwilioAccounts:
    """The Account handlers."""

    def __init__(self, accounts: Accounts) -> None:
        self.accounts = accounts

    async def read(self, request: web.Request) -> web.Response:
        """GET .../Accounts.json: the one account, unless FriendlyName or Status filter it out."""
        query = request.query
        req = parse_page_request(query)
        account = self.accounts.get()
        name, status = get_param(query, "FriendlyName"), get_param(query, "Status")
        matches = (name is None or name == account.friendly_name) and (status is None or status == account.status)
        items = [account_to_json(account)] if matches and req.offset == 0 else []
        filters = [(k, v) for k, v in (("FriendlyName", name), ("Status", status)) if v is not None]
        return web.json_response(page_envelope("accounts", items, False, req, f"{API_ROOT}/Accounts.json", filters))

    async def fetch(self, request: web.Request) -> web.Response:
        """GET .../Accounts/{AccountSid}.json (another account's SID is a 404, by `authenticated`)."""
        return web.json_response(account_to_json(self.accounts.get()))

    async def update(self, request: web.Request) -> web.Response:
        """POST .../Accounts/{AccountSid}.json: FriendlyName; Status may only be `active`."""
        params = await read_form(request)
        account = self.accounts.update(get_param(params, "FriendlyName"), get_param(params, "Status"))
        return web.json_response(account_to_json(account))


def add_twilio_account_routes(app: web.Application, creds: Credentials, accounts: Accounts) -> None:
    """Mount the Account resource on `app` (which needs `switch.dialects.errors.error_middleware`)."""
    api = TwilioAccounts(accounts)
    app.router.add_get(f"{API_ROOT}/Accounts.json", authenticated(creds, api.read), name="twilio-accounts")
    instance = app.router.add_resource(f"{API_ROOT}/Accounts/{{AccountSid}}.json", name="twilio-account")
    instance.add_route("GET", authenticated(creds, api.fetch))
    instance.add_route("POST", authenticated(creds, api.update))
