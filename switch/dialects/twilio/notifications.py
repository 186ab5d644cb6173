"""Twilio's Notifications (the errors and warnings of calls) over `switch.core.notifications.Notifications`.

Routes (HTTP Basic, see `switch.dialects.auth`)::

    GET /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}/Notifications.json          list  -> 200 page
    GET /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}/Notifications/{Sid}.json    fetch -> 200
    GET /2010-04-01/Accounts/{AccountSid}/Notifications.json                          the account's: list
    GET /2010-04-01/Accounts/{AccountSid}/Notifications/{Sid}.json                    fetch

Lists are oldest first and filter on `Log` (0 errors, 1 warnings) and `MessageDate` / `MessageDate<` /
`MessageDate>` (YYYY-MM-DD, UTC), as the official client sends them.  A call the switch does not know and
that has no notifications is a 404.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from switch.core.errors import NotFound
from switch.core.notifications import ERROR, WARNING, Notification, Notifications
from switch.core.paging import PageKey, select_page
from switch.core.service import CallService
from switch.dialects.auth import authenticated
from switch.dialects.errors import API_ROOT, MORE_INFO, InvalidParameter
from switch.dialects.forms import cut_page, get_param, parse_page_request
from switch.dialects.twilio.api import API_VERSION, rfc2822, slice_envelope
from switch.dialects.twilio.params import parse_date

_LIST_FILTERS = ("Log", "MessageDate", "MessageDate<", "MessageDate>")


def notification_to_json(note: Notification, account_scoped: bool = False) -> dict[str, Any]:
    """A `Notification` as Twilio's call Notification resource (codes and levels are strings there); under the
    account's path when `account_scoped` (the account-level resource has the same fields)."""
    account = f"{API_ROOT}/Accounts/{note.account_sid}"
    parent = account if account_scoped else f"{account}/Calls/{note.call_sid}"
    return {
        "sid": note.sid,
        "account_sid": note.account_sid,
        "call_sid": note.call_sid,
        "api_version": API_VERSION,
        "date_created": rfc2822(note.date_created),
        "date_updated": rfc2822(note.date_created),
        "error_code": str(note.error_code),
        "log": str(note.log),
        "message_date": rfc2822(note.date_created),
        "message_text": note.message_text,
        "more_info": MORE_INFO.format(code=note.error_code),
        "request_method": note.request_method,
        "request_url": note.request_url,
        "request_variables": "",
        "response_body": "",
        "response_headers": "",
        "uri": f"{parent}/Notifications/{note.sid}.json",
    }


def note_key(note: Notification) -> PageKey:
    """A notification's place in its list (oldest first)."""
    return PageKey(note.date_created, note.sid)


def _log_level(params: MultiMapping[str]) -> int | None:
    value = get_param(params, "Log")
    if value is None:
        return None
    if value not in (str(ERROR), str(WARNING)):
        raise InvalidParameter(f"Log must be {ERROR} (errors) or {WARNING} (warnings), not {value!r}")
    return int(value)


def _on(moment: dt.datetime, day: dt.date | None, compare: str) -> bool:
    if day is None:
        return True
    date = moment.astimezone(dt.UTC).date()
    return date == day if compare == "==" else date <= day if compare == "<=" else date >= day


class TwilioNotifications:
    """The Notifications handlers, bound to the notifications store and the call service."""

    def __init__(self, service: CallService, notifications: Notifications) -> None:
        self.service = service
        self.notifications = notifications

    def _for_call(self, request: web.Request) -> list[Notification]:
        call_sid = request.match_info["CallSid"]
        notes = [n for n in self.notifications.for_call(call_sid) if n.account_sid == self.service.account_sid]
        if not notes:
            call = self.service.get_call(call_sid)
            if call is None or call.account_sid != self.service.account_sid:
                raise NotFound(request.path)
        return notes

    async def read(self, request: web.Request) -> web.Response:
        """GET .../Calls/{CallSid}/Notifications.json: one page, oldest first."""
        query = request.query
        req = parse_page_request(query)
        level = _log_level(query)
        on, before, after = (parse_date(query, name) for name in _LIST_FILTERS[1:])
        notes = [n for n in self._for_call(request)
                 if (level is None or n.log == level) and _on(n.date_created, on, "==")
                 and _on(n.date_created, before, "<=") and _on(n.date_created, after, ">=")]
        found = select_page(notes, note_key, False, req.cursor, req.offset, req.page_size + 1)
        filters = [(name, value) for name in _LIST_FILTERS if (value := query.get(name))]
        call_sid = request.match_info["CallSid"]
        path = f"{API_ROOT}/Accounts/{self.service.account_sid}/Calls/{call_sid}/Notifications.json"
        page = cut_page(found, req, note_key)
        return web.json_response(slice_envelope("notifications", page, notification_to_json, req, path, filters))

    async def fetch(self, request: web.Request) -> web.Response:
        """GET .../Calls/{CallSid}/Notifications/{Sid}.json."""
        sid = request.match_info["Sid"]
        for note in self._for_call(request):
            if note.sid == sid:
                return web.json_response(notification_to_json(note))
        raise NotFound(request.path)

    async def read_account(self, request: web.Request) -> web.Response:
        """GET .../Notifications.json: the account's notifications (every call's), one page, oldest first."""
        query = request.query
        req = parse_page_request(query)
        on, before, after = (parse_date(query, name) for name in _LIST_FILTERS[1:])
        notes = self.notifications.list_notifications(_log_level(query), on, before, after, req.offset,
                                                      req.page_size + 1, req.cursor)
        filters = [(name, value) for name in _LIST_FILTERS if (value := query.get(name))]
        path = f"{API_ROOT}/Accounts/{self.service.account_sid}/Notifications.json"
        page = cut_page(notes, req, note_key)
        return web.json_response(slice_envelope("notifications", page,
                                                lambda n: notification_to_json(n, account_scoped=True), req, path,
                                                filters))

    async def fetch_account(self, request: web.Request) -> web.Response:
        """GET .../Notifications/{Sid}.json."""
        note = self.notifications.get(request.match_info["Sid"])
        if note is None:
            raise NotFound(request.path)
        return web.json_response(notification_to_json(note, account_scoped=True))


def add_twilio_notification_routes(app: web.Application, service: CallService,
                                   notifications: Notifications) -> None:
    """Mount the Notifications lists and fetches (the account's, a call's) on `app` (which needs
    `error_middleware`)."""
    api = TwilioNotifications(service, notifications)
    base = f"{API_ROOT}/Accounts/{{AccountSid}}/Calls/{{CallSid:[A-Za-z0-9]+}}/Notifications"
    app.router.add_get(f"{base}.json", authenticated(service, api.read), name="twilio-call-notifications")
    app.router.add_get(f"{base}/{{Sid:[A-Za-z0-9]+}}.json", authenticated(service, api.fetch),
                       name="twilio-call-notification")
    account = f"{API_ROOT}/Accounts/{{AccountSid}}/Notifications"
    app.router.add_get(f"{account}.json", authenticated(service, api.read_account), name="twilio-notifications")
    app.router.add_get(f"{account}/{{Sid:[A-Za-z0-9]+}}.json", authenticated(service, api.fetch_account),
                       name="twilio-notification")
