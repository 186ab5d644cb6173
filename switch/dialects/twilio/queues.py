"""Twilio's 2010-04-01 Queues and their Members over a `QueueService`, close enough for the official client.

Routes under /2010-04-01/Accounts/{AccountSid} (HTTP Basic, see `switch.dialects.auth`)::

    GET    Queues.json                        list, oldest first
    POST   Queues.json                        create (FriendlyName required, MaxSize) -> 201
    GET    Queues/{QU}.json                   fetch (current_size and average_wait_time as of now)
    POST   Queues/{QU}.json                   update FriendlyName, MaxSize
    DELETE Queues/{QU}.json                   delete -> 204 (a queue with callers in it: 409)
    GET    Queues/{QU}/Members.json           the callers waiting, front first
    GET    Queues/{QU}/Members/{key}.json     fetch ({key}: a CallSid or `Front`)
    POST   Queues/{QU}/Members/{key}.json     dequeue: Url (required), Method -> the member's call runs that TwiML

A FriendlyName is 1 to 64 characters; MaxSize 1 to 5000, 1000 when not given (Twilio's default since 2021).
Invalid values are 400s with Twilio's generic 20001; a missing or bad dequeue Url is 21205, a bad Method 21209.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from multidict import MultiMapping

from switch.core.conference_model import MAX_QUEUE, Member, Queue, QueueService
from switch.core.paging import PageKey
from switch.dialects.auth import Credentials
from switch.dialects.errors import API_ROOT, InvalidParameter
from switch.dialects.forms import get_param, parse_url, read_form
from switch.dialects.twilio.api import rfc2822
from switch.dialects.twilio.conference_params import integer
from switch.dialects.twilio.conferences import memory_page
from switch.dialects.twilio.params import INVALID_URL, parse_method
from switch.dialects.twilio.sip_lists import created, mount

MAX_FRIENDLY_NAME = 64
FRONT = "Front"


def queue_uri(account_sid: str, sid: str) -> str:
    return f"{API_ROOT}/Accounts/{account_sid}/Queues/{sid}"


def queue_to_json(queue: Queue) -> dict[str, Any]:
    """A `Queue` as Twilio's Queue resource."""
    return {
        "date_updated": rfc2822(queue.date_updated),
        "current_size": queue.current_size,
        "friendly_name": queue.friendly_name,
        "uri": f"{queue_uri(queue.account_sid, queue.sid)}.json",
        "account_sid": queue.account_sid,
        "average_wait_time": queue.average_wait_time,
        "sid": queue.sid,
        "date_created": rfc2822(queue.date_created),
        "max_size": queue.max_size,
    }


def member_to_json(member: Member, account_sid: str) -> dict[str, Any]:
    """A `Member` as Twilio's Member resource (its `uri` names it by CallSid, even when fetched as `Front`)."""
    return {
        "call_sid": member.call_sid,
        "date_enqueued": rfc2822(member.date_enqueued),
        "position": member.position,
        "uri": f"{queue_uri(account_sid, member.queue_sid)}/Members/{member.call_sid}.json",
        "wait_time": member.wait_time,
        "queue_sid": member.queue_sid,
    }


def parse_friendly_name(params: MultiMapping[str], required: bool) -> str | None:
    """FriendlyName: 1 to 64 characters; required on create."""
    value = get_param(params, "FriendlyName")
    if value is None:
        if required:
            raise InvalidParameter("Missing required parameter FriendlyName in the post body")
        return None
    if len(value) > MAX_FRIENDLY_NAME:
        raise InvalidParameter(f"FriendlyName must be at most {MAX_FRIENDLY_NAME} characters, not {len(value)}")
    return value


def parse_max_size(params: MultiMapping[str]) -> int | None:
    """MaxSize: 1 to 5000; None when absent (the manager's default, 1000)."""
    if get_param(params, "MaxSize") is None:
        return None
    return integer(params, "MaxSize", 1, MAX_QUEUE, 0)


class TwilioQueues:
    """The Queues and Members handlers, bound to one `QueueService`."""

    def __init__(self, service: QueueService, account_sid: str, public_base_url: str) -> None:
        self.service = service
        self.account_sid = account_sid
        self.public_base_url = public_base_url.rstrip("/")
        self.root = f"{API_ROOT}/Accounts/{account_sid}/Queues"

    def _queue(self, request: web.Request) -> Queue:
        return self.service.queue(request.match_info["QueueSid"])

    def _member_json(self, member: Member) -> dict[str, Any]:
        return member_to_json(member, self.account_sid)

    async def read(self, request: web.Request) -> web.Response:
        return memory_page(request, "queues", self.service.list_queues(), lambda q: PageKey(q.date_created, q.sid),
                           False, queue_to_json, f"{self.root}.json", ())

    async def create(self, request: web.Request) -> web.Response:
        params = await read_form(request)
        name = parse_friendly_name(params, required=True)
        assert name is not None
        queue = self.service.create_queue(name, parse_max_size(params))
        return created(queue_to_json(queue), self.public_base_url)

    async def fetch(self, request: web.Request) -> web.Response:
        return web.json_response(queue_to_json(self._queue(request)))

    async def update(self, request: web.Request) -> web.Response:
        queue = self._queue(request)
        params = await read_form(request)
        name = parse_friendly_name(params, required=False)
        max_size = parse_max_size(params)
        if name is not None or max_size is not None:
            queue = self.service.update_queue(queue.sid, name, max_size)
        return web.json_response(queue_to_json(queue))

    async def delete(self, request: web.Request) -> web.Response:
        """DELETE: 204; a queue with callers waiting is a Conflict (409)."""
        self.service.delete_queue(self._queue(request).sid)
        return web.Response(status=204)

    async def read_members(self, request: web.Request) -> web.Response:
        """GET Members.json: front of the queue first (list key `queue_members`, as Twilio's)."""
        queue = self._queue(request)
        return memory_page(request, "queue_members", self.service.list_members(queue.sid),
                           lambda m: PageKey(m.date_enqueued, m.call_sid), False, self._member_json,
                           f"{self.root}/{queue.sid}/Members.json", ())

    async def fetch_member(self, request: web.Request) -> web.Response:
        queue = self._queue(request)
        return web.json_response(self._member_json(self.service.member(queue.sid, request.match_info["key"])))

    async def update_member(self, request: web.Request) -> web.Response:
        """POST: dequeue the member to `Url` (its call leaves the queue and runs that TwiML)."""
        queue = self._queue(request)
        key = request.match_info["key"]
        self.service.member(queue.sid, key)  # an unknown member is a 404 whatever the parameters
        params = await read_form(request)
        url = parse_url(params, "Url")
        if url is None:
            raise InvalidParameter("Url parameter is required", INVALID_URL)
        method = parse_method(params, "Method") or "POST"
        return web.json_response(self._member_json(await self.service.dequeue(queue.sid, key, url, method)))


def add_twilio_queue_routes(app: web.Application, creds: Credentials, service: QueueService,
                            public_base_url: str) -> None:
    """Mount Queues and Members on `app` (which needs `switch.dialects.errors.error_middleware`)."""
    api = TwilioQueues(service, creds.account_sid, public_base_url)
    queue = "Queues/{QueueSid}"
    routes = (
        ("Queues", {"GET": api.read, "POST": api.create}),
        (queue, {"GET": api.fetch, "POST": api.update, "DELETE": api.delete}),
        (f"{queue}/Members", {"GET": api.read_members}),
        (f"{queue}/Members/{{key}}", {"GET": api.fetch_member, "POST": api.update_member}),
    )
    mount(app, creds, f"{API_ROOT}/Accounts/{{AccountSid}}", routes)
