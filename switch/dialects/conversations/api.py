"""Twilio's Conversations API (v1, service-scoped) over `switch.core.conversations.Conversations`.

Routes (HTTP Basic with the account SID and auth token, see `switch.dialects.auth`)::

    POST   /v1/Services                                                   create a service  -> 201
    GET    /v1/Services                                                   list              -> 200 page
    GET    /v1/Services/{ServiceSid}                                      fetch             -> 200
    DELETE /v1/Services/{ServiceSid}                                      delete            -> 204
    POST   /v1/Services/{ServiceSid}/Conversations                        create            -> 201
    GET    /v1/Services/{ServiceSid}/Conversations                        list (State=)     -> 200 page
    GET    /v1/Services/{ServiceSid}/Conversations/{Sid}                  fetch (SID or UniqueName)
    DELETE /v1/Services/{ServiceSid}/Conversations/{Sid}                  delete            -> 204
    POST   /v1/Services/{ServiceSid}/Conversations/{Sid}/Participants     add               -> 201
    GET    /v1/Services/{ServiceSid}/Conversations/{Sid}/Participants     list              -> 200 page
    GET    /v1/Services/{ServiceSid}/Conversations/{Sid}/Participants/{Sid}  fetch (SID or Identity)
    DELETE /v1/Services/{ServiceSid}/Conversations/{Sid}/Participants/{Sid}  remove          -> 204

Documents have the shape of conversations.twilio.com's (snake_case fields, ISO 8601 dates, absolute `url`s,
list pages with a `meta` block), so the official client works against `base_url`.  Errors are Twilio's JSON
error body, rendered here: the `/v1` prefix is shared with the Exotel edge, whose middleware would otherwise
render them its own way.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import MultiMapping

from switch.core.conversations import (
    STATES,
    Conversation,
    Conversations,
    NewParticipant,
    Participant,
    Service,
    is_customer_address,
)
from switch.core.errors import InvalidArgument, Problem, RequestError
from switch.dialects.auth import Credentials, authenticated
from switch.dialects.errors import ApiError, InvalidParameter, error_response
from switch.dialects.forms import PageRequest, get_param, parse_page_request, read_form

ROOT = "/v1/Services"
MAX_FRIENDLY_NAME = 256
MAX_TEXT = 256
MAX_ATTRIBUTES = 16 * 1024


def iso8601(moment: dt.datetime) -> str:
    """The Conversations API's dates: ``2015-12-16T22:18:37Z``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ConversationsApi:
    """The handlers, bound to one `Conversations` and the URL clients reach the switch at."""

    def __init__(self, conversations: Conversations, public_base_url: str) -> None:
        self.conversations = conversations
        self.base = public_base_url.rstrip("/")

    # -- documents ----------------------------------------------------------------------------------
    def service_url(self, sid: str) -> str:
        return f"{self.base}{ROOT}/{sid}"

    def conversation_url(self, service_sid: str, sid: str) -> str:
        return f"{self.service_url(service_sid)}/Conversations/{sid}"

    def service_json(self, service: Service) -> dict[str, Any]:
        url = self.service_url(service.sid)
        links = ("conversations", "users", "roles", "bindings", "configuration", "participant_conversations",
                 "conversation_with_participants")
        names = ("Conversations", "Users", "Roles", "Bindings", "Configuration", "ParticipantConversations",
                 "ConversationWithParticipants")
        return {
            "account_sid": service.account_sid,
            "sid": service.sid,
            "friendly_name": service.friendly_name,
            "date_created": iso8601(service.date_created),
            "date_updated": iso8601(service.date_updated),
            "url": url,
            "links": {key: f"{url}/{name}" for key, name in zip(links, names, strict=True)},
        }

    def conversation_json(self, conversation: Conversation) -> dict[str, Any]:
        url = self.conversation_url(conversation.service_sid, conversation.sid)
        return {
            "account_sid": conversation.account_sid,
            "chat_service_sid": conversation.service_sid,
            "messaging_service_sid": conversation.messaging_service_sid,
            "sid": conversation.sid,
            "friendly_name": conversation.friendly_name,
            "unique_name": conversation.unique_name,
            "attributes": conversation.attributes,
            "state": conversation.state,
            "date_created": iso8601(conversation.date_created),
            "date_updated": iso8601(conversation.date_updated),
            "timers": {},
            "url": url,
            "links": {"participants": f"{url}/Participants", "messages": f"{url}/Messages",
                      "webhooks": f"{url}/Webhooks"},
            "bindings": None,
        }

    def participant_json(self, participant: Participant) -> dict[str, Any]:
        binding: dict[str, Any] | None = None
        if participant.address is not None:
            kind = "sip" if participant.address.lower().startswith(("sip:", "sips:")) else "sms"
            binding = {"type": kind, "address": participant.address, "proxy_address": participant.proxy_address}
        elif participant.projected_address is not None:
            binding = {"type": "group", "projected_address": participant.projected_address}
        url = self.conversation_url(participant.service_sid, participant.conversation_sid)
        return {
            "account_sid": participant.account_sid,
            "chat_service_sid": participant.service_sid,
            "conversation_sid": participant.conversation_sid,
            "sid": participant.sid,
            "identity": participant.identity,
            "attributes": participant.attributes,
            "messaging_binding": binding,
            "role_sid": participant.role_sid,
            "date_created": iso8601(participant.date_created),
            "date_updated": iso8601(participant.date_updated),
            "url": f"{url}/Participants/{participant.sid}",
            "last_read_message_index": None,
            "last_read_timestamp": None,
        }

    def page(self, key: str, path: str, items: list[dict[str, Any]], has_next: bool, req: PageRequest,
             filters: list[tuple[str, str]]) -> dict[str, Any]:
        """A list page with the `meta` block the client reads (`key`, absolute next/previous URLs)."""

        def page_url(page: int, offset: int) -> str:
            query = [*filters, ("PageSize", str(req.page_size)), ("Page", str(page))]
            if offset:
                query.append(("PageToken", f"PT{offset}"))
            return f"{self.base}{path}?{urlencode(query)}"

        size = req.page_size
        return {
            key: items,
            "meta": {
                "page": req.page,
                "page_size": size,
                "first_page_url": page_url(0, 0),
                "previous_page_url": page_url(max(req.page - 1, 0), max(req.offset - size, 0))
                if req.offset > 0 else None,
                "url": page_url(req.page, req.offset),
                "next_page_url": page_url(req.page + 1, req.offset + len(items)) if has_next else None,
                "key": key,
            },
        }

    # -- services -----------------------------------------------------------------------------------
    async def create_service(self, request: web.Request) -> web.Response:
        params = await read_form(request)
        name = get_param(params, "FriendlyName")
        if name is None:
            raise InvalidParameter("Missing required parameter FriendlyName in the post body")
        if len(name) > MAX_FRIENDLY_NAME:
            raise InvalidParameter(f"FriendlyName longer than {MAX_FRIENDLY_NAME} characters")
        return web.json_response(self.service_json(self.conversations.create_service(name)), status=201)

    async def list_services(self, request: web.Request) -> web.Response:
        req = parse_page_request(request.query)
        found = self.conversations.list_services(req.offset, req.page_size + 1)
        items = [self.service_json(s) for s in found[: req.page_size]]
        return web.json_response(self.page("services", ROOT, items, len(found) > req.page_size, req, []))

    async def fetch_service(self, request: web.Request) -> web.Response:
        return web.json_response(self.service_json(self.conversations.service(request.match_info["ServiceSid"])))

    async def delete_service(self, request: web.Request) -> web.Response:
        self.conversations.delete_service(request.match_info["ServiceSid"])
        return web.Response(status=204)

    # -- conversations ------------------------------------------------------------------------------
    async def create_conversation(self, request: web.Request) -> web.Response:
        params = await read_form(request)
        state = _state(params) or "active"
        friendly_name = get_param(params, "FriendlyName")
        unique_name = get_param(params, "UniqueName")
        for name, value in (("FriendlyName", friendly_name), ("UniqueName", unique_name)):
            if value is not None and len(value) > MAX_FRIENDLY_NAME:
                raise InvalidParameter(f"{name} longer than {MAX_FRIENDLY_NAME} characters")
        self.conversations.service(request.match_info["ServiceSid"])
        attributes = check_attributes(get_param(params, "Attributes", strip=False) or "{}")
        conversation = self.conversations.create_conversation(
            request.match_info["ServiceSid"], friendly_name=friendly_name, unique_name=unique_name,
            attributes=attributes, state=state,
            messaging_service_sid=get_param(params, "MessagingServiceSid"))
        return web.json_response(self.conversation_json(conversation), status=201)

    async def list_conversations(self, request: web.Request) -> web.Response:
        service_sid = request.match_info["ServiceSid"]
        self.conversations.service(service_sid)
        req = parse_page_request(request.query)
        state = _state(request.query)
        found = self.conversations.list_conversations(service_sid, state, req.offset, req.page_size + 1)
        items = [self.conversation_json(c) for c in found[: req.page_size]]
        filters = [("State", state)] if state else []
        return web.json_response(self.page("conversations", f"{ROOT}/{service_sid}/Conversations", items,
                                           len(found) > req.page_size, req, filters))

    async def fetch_conversation(self, request: web.Request) -> web.Response:
        conversation = self.conversations.conversation(request.match_info["ServiceSid"], request.match_info["Sid"])
        return web.json_response(self.conversation_json(conversation))

    async def delete_conversation(self, request: web.Request) -> web.Response:
        self.conversations.delete_conversation(request.match_info["ServiceSid"], request.match_info["Sid"])
        return web.Response(status=204)

    # -- participants -------------------------------------------------------------------------------
    async def create_participant(self, request: web.Request) -> web.Response:
        params = await read_form(request)
        new = NewParticipant(
            identity=get_param(params, "Identity"),
            address=get_param(params, "MessagingBinding.Address"),
            proxy_address=get_param(params, "MessagingBinding.ProxyAddress"),
            projected_address=get_param(params, "MessagingBinding.ProjectedAddress"),
            attributes=get_param(params, "Attributes", strip=False) or "{}",
            role_sid=get_param(params, "RoleSid"),
        )
        self.conversations.conversation(request.match_info["ServiceSid"], request.match_info["Sid"])
        participant = self.conversations.add_participant(request.match_info["ServiceSid"],
                                                         request.match_info["Sid"], check_participant(new))
        return web.json_response(self.participant_json(participant), status=201)

    async def list_participants(self, request: web.Request) -> web.Response:
        service_sid = request.match_info["ServiceSid"]
        conversation = self.conversations.conversation(service_sid, request.match_info["Sid"])
        req = parse_page_request(request.query)
        found = self.conversations.participants(conversation.sid, req.offset, req.page_size + 1)
        items = [self.participant_json(p) for p in found[: req.page_size]]
        path = f"{ROOT}/{service_sid}/Conversations/{conversation.sid}/Participants"
        return web.json_response(self.page("participants", path, items, len(found) > req.page_size, req, []))

    async def fetch_participant(self, request: web.Request) -> web.Response:
        info = request.match_info
        participant = self.conversations.participant(info["ServiceSid"], info["Sid"], info["ParticipantSid"])
        return web.json_response(self.participant_json(participant))

    async def delete_participant(self, request: web.Request) -> web.Response:
        info = request.match_info
        self.conversations.delete_participant(info["ServiceSid"], info["Sid"], info["ParticipantSid"])
        return web.Response(status=204)


def check_attributes(value: str) -> str:
    """``Attributes``: JSON text."""
    if len(value) > MAX_ATTRIBUTES:
        raise InvalidParameter(f"Attributes longer than {MAX_ATTRIBUTES} characters")
    try:
        json.loads(value)
    except ValueError as exc:
        raise InvalidParameter(f"Attributes must be valid JSON: {exc}") from exc
    return value


def check_participant(new: NewParticipant) -> NewParticipant:
    """A participant as the REST API takes it: a worker (Identity) or a customer (MessagingBinding.Address)."""
    if new.identity is not None and (new.address is not None or new.proxy_address is not None):
        raise InvalidArgument("Identity parameter not acceptable for this Participant: give Identity or "
                              "MessagingBinding.Address, not both", Problem.IDENTITY_WITH_ADDRESS)
    if new.identity is None and new.address is None:
        raise InvalidParameter("Either Identity or MessagingBinding.Address is required")
    for name, value in (("Identity", new.identity), ("MessagingBinding.ProxyAddress", new.proxy_address),
                        ("MessagingBinding.ProjectedAddress", new.projected_address), ("RoleSid", new.role_sid)):
        if value is not None and len(value) > MAX_TEXT:
            raise InvalidParameter(f"{name} longer than {MAX_TEXT} characters")
    if new.address is not None and not is_customer_address(new.address):
        raise InvalidParameter(f"MessagingBinding.Address must be a phone number or a SIP URI, not {new.address!r}")
    check_attributes(new.attributes)
    return new


def _state(params: MultiMapping[str]) -> str | None:
    state = get_param(params, "State")
    if state is not None and state not in STATES:
        raise InvalidParameter(f"State must be one of {', '.join(STATES)}, not {state!r}")
    return state


def _twilio_errors(handler: Handler) -> Handler:
    """Render neutral errors and `ApiError`s (401s included) as Twilio's error document, before any other
    middleware sees them."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except (RequestError, ApiError) as exc:
            return error_response(exc)

    return guarded


def add_conversation_routes(app: web.Application, creds: Credentials, conversations: Conversations,
                            public_base_url: str) -> None:
    """Mount the Conversations API on `app`; `public_base_url` makes the documents' URLs absolute."""
    api = ConversationsApi(conversations, public_base_url)
    service = f"{ROOT}/{{ServiceSid:IS[0-9a-fA-F]{{32}}}}"
    conversation = f"{service}/Conversations/{{Sid:[^/]+}}"
    routes: list[tuple[str, str, Handler]] = [
        ("POST", ROOT, api.create_service),
        ("GET", ROOT, api.list_services),
        ("GET", service, api.fetch_service),
        ("DELETE", service, api.delete_service),
        ("POST", f"{service}/Conversations", api.create_conversation),
        ("GET", f"{service}/Conversations", api.list_conversations),
        ("GET", conversation, api.fetch_conversation),
        ("DELETE", conversation, api.delete_conversation),
        ("POST", f"{conversation}/Participants", api.create_participant),
        ("GET", f"{conversation}/Participants", api.list_participants),
        ("GET", f"{conversation}/Participants/{{ParticipantSid:[^/]+}}", api.fetch_participant),
        ("DELETE", f"{conversation}/Participants/{{ParticipantSid:[^/]+}}", api.delete_participant),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, _twilio_errors(authenticated(creds, handler)))
