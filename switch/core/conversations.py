"""Conversations services: a local stand-in for Twilio Conversations + Frontline, as `<Conversation>` uses it.

A service (``IS...``) holds conversations (``CH...``); a conversation holds participants (``MB...``).  Two kinds
of participant matter to voice:

* the customer: a ``messaging_binding`` with ``address`` (a phone number or a SIP URI) and usually
  ``proxy_address`` (the number the customer calls, the "Frontline number");
* a worker: an ``identity``, dialed at the SIP URI in the participant's attributes (``{"sip_uri": ...}``) or,
  failing that, at the one the service's config maps the identity to.

Services come from the config file (``[[conversation_services]]``, which also gives their routing and worker
SIP URIs) and from ``POST /v1/Services``; conversations and participants from the REST API
(`switch.dialects.conversations.api`) and from inbound calls that autocreate a conversation.  Everything is kept in the
store, so conversations outlive restarts; a config service's settings are reset from the config at start-up.

Routing of a conversation autocreated for an inbound call:

* custom: a `ConversationRouting` call event asks the service's ``routing_url`` (the Conversations dialect
  renders and POSTs it through the one webhook dispatcher); the app answers by adding a worker participant
  through the REST API;
* pool: the next identity of ``pool``, round robin, that is not on a call is added at once.

`wait_for_worker` is how `<Conversation>` waits (``routingAssignmentTimeout``) for either to happen.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from switch.core.config import ConversationServiceConfig
from switch.core.errors import Conflict, InvalidArgument, NotFound, Problem
from switch.core.events import CallEvents, ConversationRouting
from switch.core.model import Call, new_sid, utcnow
from switch.core.store import Store

log = logging.getLogger("switch.core.conversations")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversation_services (
    sid TEXT PRIMARY KEY, account_sid TEXT NOT NULL, friendly_name TEXT, routing_url TEXT,
    pool TEXT NOT NULL, workers TEXT NOT NULL, date_created TEXT NOT NULL, date_updated TEXT NOT NULL,
    from_config INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS conversations (
    sid TEXT PRIMARY KEY, account_sid TEXT NOT NULL, service_sid TEXT NOT NULL, friendly_name TEXT,
    unique_name TEXT, attributes TEXT NOT NULL, state TEXT NOT NULL, messaging_service_sid TEXT,
    date_created TEXT NOT NULL, date_updated TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_service ON conversations (service_sid, date_created);
CREATE TABLE IF NOT EXISTS conversation_participants (
    sid TEXT PRIMARY KEY, account_sid TEXT NOT NULL, service_sid TEXT NOT NULL, conversation_sid TEXT NOT NULL,
    identity TEXT, address TEXT, address_key TEXT, proxy_address TEXT, projected_address TEXT,
    attributes TEXT NOT NULL, role_sid TEXT, date_created TEXT NOT NULL, date_updated TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS participants_conversation ON conversation_participants (conversation_sid);
CREATE INDEX IF NOT EXISTS participants_address ON conversation_participants (service_sid, address_key);
"""

STATES = ("active", "inactive", "closed")
_PHONE = re.compile(r"\+?[0-9]{3,15}")
_SIP = re.compile(r"sips?:[^\s<>\"]+", re.IGNORECASE)


def address_key(address: str) -> str:
    """What two spellings of one party share: a SIP URI's user part, a number without its leading '+'.

    An inbound call knows its caller only by the From user part, so a customer bound as
    ``sip:carol@10.0.0.5`` is found by a call from ``carol``.
    """
    value = address.strip()
    if value.lower().startswith(("sip:", "sips:")):
        value = value.split(":", 1)[1].split("@", 1)[0].split(";", 1)[0]
    return value.removeprefix("+")


def uri_key(uri: str) -> str:
    """``user@host[:port]`` of a SIP URI (parameters dropped), to tell whether a live call reaches it."""
    value = uri.strip()
    if value.lower().startswith(("sip:", "sips:")):
        value = value.split(":", 1)[1]
    return value.split(";", 1)[0].split("?", 1)[0]


def is_customer_address(value: str) -> bool:
    """A phone number (E.164-ish) or a SIP URI."""
    return len(value) <= 512 and bool(_PHONE.fullmatch(value) or _SIP.fullmatch(value))


@dataclass(frozen=True)
class Service:
    """One Conversations service (``IS...``) and how its conversations are routed."""

    sid: str
    account_sid: str
    friendly_name: str | None
    routing_url: str | None
    pool: tuple[str, ...]
    workers: dict[str, str]
    date_created: dt.datetime
    date_updated: dt.datetime
    from_config: bool = False


@dataclass(frozen=True)
class Conversation:
    """One conversation (``CH...``) of a service."""

    sid: str
    account_sid: str
    service_sid: str
    friendly_name: str | None
    unique_name: str | None
    attributes: str
    state: str
    messaging_service_sid: str | None
    date_created: dt.datetime
    date_updated: dt.datetime


@dataclass(frozen=True)
class Participant:
    """One participant (``MB...``): a worker (``identity``) or a customer (``address``)."""

    sid: str
    account_sid: str
    service_sid: str
    conversation_sid: str
    identity: str | None
    address: str | None
    proxy_address: str | None
    projected_address: str | None
    attributes: str
    role_sid: str | None
    date_created: dt.datetime
    date_updated: dt.datetime

    @property
    def is_worker(self) -> bool:
        return self.identity is not None

    @property
    def sip_uri(self) -> str | None:
        """``attributes.sip_uri`` when the attributes are a JSON object that has one."""
        try:
            attributes = json.loads(self.attributes)
        except ValueError:
            return None
        uri = attributes.get("sip_uri") if isinstance(attributes, dict) else None
        return uri if isinstance(uri, str) and uri.lower().startswith(("sip:", "sips:")) else None


@dataclass(frozen=True)
class NewParticipant:
    """A participant to add, as the REST API (or an autocreation) asked for it."""

    identity: str | None = None
    address: str | None = None
    proxy_address: str | None = None
    projected_address: str | None = None
    attributes: str = "{}"
    role_sid: str | None = None


def _time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def _service(row: sqlite3.Row) -> Service:
    return Service(sid=row["sid"], account_sid=row["account_sid"], friendly_name=row["friendly_name"],
                   routing_url=row["routing_url"], pool=tuple(json.loads(row["pool"])),
                   workers=dict(json.loads(row["workers"])), date_created=_time(row["date_created"]),
                   date_updated=_time(row["date_updated"]), from_config=bool(row["from_config"]))


def _conversation(row: sqlite3.Row) -> Conversation:
    return Conversation(sid=row["sid"], account_sid=row["account_sid"], service_sid=row["service_sid"],
                        friendly_name=row["friendly_name"], unique_name=row["unique_name"],
                        attributes=row["attributes"], state=row["state"],
                        messaging_service_sid=row["messaging_service_sid"],
                        date_created=_time(row["date_created"]), date_updated=_time(row["date_updated"]))


def _participant(row: sqlite3.Row) -> Participant:
    return Participant(sid=row["sid"], account_sid=row["account_sid"], service_sid=row["service_sid"],
                       conversation_sid=row["conversation_sid"], identity=row["identity"], address=row["address"],
                       proxy_address=row["proxy_address"], projected_address=row["projected_address"],
                       attributes=row["attributes"], role_sid=row["role_sid"],
                       date_created=_time(row["date_created"]), date_updated=_time(row["date_updated"]))


class Conversations:
    """Every Conversations service of the account, kept in the store; routing and the waits of `<Conversation>`.

    Use it from the control plane's event loop.  `live_calls` tells pool routing who is on a call.
    """

    def __init__(self, store: Store, account_sid: str, configs: list[ConversationServiceConfig],
                 events: CallEvents, live_calls: Callable[[], Iterable[Call]] = tuple,
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        self._store = store
        self._account_sid = account_sid
        self._events = events
        self._live_calls = live_calls
        self._clock = clock
        self._waiters: dict[str, list[asyncio.Event]] = {}  # conversation SID -> `wait_for_worker`s waiting
        self._next_in_pool: dict[str, int] = {}
        store.executescript(_SCHEMA)
        self._load_config(configs)

    @property
    def account_sid(self) -> str:
        return self._account_sid

    # -- services -----------------------------------------------------------------------------------
    def _load_config(self, configs: list[ConversationServiceConfig]) -> None:
        now = self._clock()
        wanted = {c.sid: c for c in configs}
        for config in configs:
            current = self.get_service(config.sid)
            created = now if current is None else current.date_created
            self._store.execute(
                "INSERT OR REPLACE INTO conversation_services (sid, account_sid, friendly_name, routing_url, pool, "
                "workers, date_created, date_updated, from_config) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)",
                (config.sid, self._account_sid, config.friendly_name, config.routing_url, json.dumps(config.pool),
                 json.dumps(config.workers), created.isoformat(), now.isoformat()))
        for service in self.list_services(0, 10_000):
            if service.from_config and service.sid not in wanted:
                # Its conversations stay in the store and come back with the service.
                log.info("conversation service %s left the config file: removed", service.sid)
                self._store.execute("DELETE FROM conversation_services WHERE sid = ?", (service.sid,))

    def get_service(self, sid: str) -> Service | None:
        row = self._store.execute("SELECT * FROM conversation_services WHERE sid = ? AND account_sid = ?",
                                  (sid, self._account_sid)).fetchone()
        return None if row is None else _service(row)

    def service(self, sid: str) -> Service:
        found = self.get_service(sid)
        if found is None:
            raise NotFound(f"/v1/Services/{sid}")
        return found

    def list_services(self, offset: int, limit: int) -> list[Service]:
        rows = self._store.execute(
            "SELECT * FROM conversation_services WHERE account_sid = ? ORDER BY date_created, sid LIMIT ? OFFSET ?",
            (self._account_sid, limit, offset)).fetchall()
        return [_service(r) for r in rows]

    def create_service(self, friendly_name: str) -> Service:
        """A service made through REST: no routing (workers are added through the API), no worker map."""
        now = self._clock()
        service = Service(new_sid("IS"), self._account_sid, friendly_name, None, (), {}, now, now)
        self._store.execute(
            "INSERT INTO conversation_services (sid, account_sid, friendly_name, routing_url, pool, workers, "
            "date_created, date_updated, from_config) VALUES (?, ?, ?, NULL, '[]', '{}', ?, ?, 0)",
            (service.sid, self._account_sid, friendly_name, now.isoformat(), now.isoformat()))
        return service

    def delete_service(self, sid: str) -> None:
        service = self.service(sid)
        if service.from_config:
            raise InvalidArgument(f"Service {sid} is set by the config file; remove it there")
        for conversation in self.list_conversations(sid, None, 0, 1_000_000):
            self.delete_conversation(sid, conversation.sid)
        self._store.execute("DELETE FROM conversation_services WHERE sid = ?", (sid,))

    # -- conversations ------------------------------------------------------------------------------
    def create_conversation(self, service_sid: str, *, friendly_name: str | None = None,
                            unique_name: str | None = None, attributes: str = "{}", state: str = "active",
                            messaging_service_sid: str | None = None) -> Conversation:
        self.service(service_sid)
        if state not in STATES:
            raise InvalidArgument(f"a conversation's state is one of {', '.join(STATES)}, not {state!r}")
        if unique_name is not None and self._by_unique_name(service_sid, unique_name) is not None:
            raise Conflict(f"Conversation with provided unique name already exists: {unique_name}",
                           Problem.UNIQUE_NAME_TAKEN)
        now = self._clock()
        conversation = Conversation(new_sid("CH"), self._account_sid, service_sid, friendly_name, unique_name,
                                    attributes, state, messaging_service_sid, now, now)
        self._store.execute(
            "INSERT INTO conversations (sid, account_sid, service_sid, friendly_name, unique_name, attributes, "
            "state, messaging_service_sid, date_created, date_updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (conversation.sid, self._account_sid, service_sid, friendly_name, unique_name, conversation.attributes,
             state, messaging_service_sid, now.isoformat(), now.isoformat()))
        return conversation

    def _by_unique_name(self, service_sid: str, unique_name: str) -> Conversation | None:
        row = self._store.execute("SELECT * FROM conversations WHERE service_sid = ? AND unique_name = ?",
                                  (service_sid, unique_name)).fetchone()
        return None if row is None else _conversation(row)

    def find_conversation(self, service_sid: str, sid_or_unique_name: str) -> Conversation | None:
        """By SID or, as Twilio allows, by unique name; None when the service or conversation is unknown."""
        row = self._store.execute(
            "SELECT * FROM conversations WHERE service_sid = ? AND account_sid = ? AND sid = ?",
            (service_sid, self._account_sid, sid_or_unique_name)).fetchone()
        if row is not None:
            return _conversation(row)
        return self._by_unique_name(service_sid, sid_or_unique_name)

    def conversation(self, service_sid: str, sid_or_unique_name: str) -> Conversation:
        self.service(service_sid)
        found = self.find_conversation(service_sid, sid_or_unique_name)
        if found is None:
            raise NotFound(f"/v1/Services/{service_sid}/Conversations/{sid_or_unique_name}")
        return found

    def list_conversations(self, service_sid: str, state: str | None, offset: int, limit: int) -> list[Conversation]:
        """Oldest first, as Twilio lists conversations."""
        where, args = ["service_sid = ?", "account_sid = ?"], [service_sid, self._account_sid]
        if state is not None:
            where.append("state = ?")
            args.append(state)
        rows = self._store.execute(
            f"SELECT * FROM conversations WHERE {' AND '.join(where)} ORDER BY date_created, rowid LIMIT ? OFFSET ?",
            [*args, limit, offset]).fetchall()
        return [_conversation(r) for r in rows]

    def delete_conversation(self, service_sid: str, sid_or_unique_name: str) -> None:
        conversation = self.conversation(service_sid, sid_or_unique_name)
        self._store.execute("DELETE FROM conversation_participants WHERE conversation_sid = ?", (conversation.sid,))
        self._store.execute("DELETE FROM conversations WHERE sid = ?", (conversation.sid,))

    # -- participants -------------------------------------------------------------------------------
    def add_participant(self, service_sid: str, conversation_sid: str, new: NewParticipant) -> Participant:
        """Add a worker (identity) or a customer (address); a new worker wakes `wait_for_worker`."""
        conversation = self.conversation(service_sid, conversation_sid)
        if new.identity is not None and (new.address is not None or new.proxy_address is not None):
            raise InvalidArgument("a participant is a worker (an identity) or a customer (an address), not both",
                                  Problem.IDENTITY_WITH_ADDRESS)
        if new.identity is None and new.address is None:
            raise InvalidArgument("a participant needs an identity (a worker) or an address (a customer)")
        if new.address is not None and not is_customer_address(new.address):
            raise InvalidArgument(f"a customer's address is a phone number or a SIP URI, not {new.address!r}")
        for other in self.participants(conversation.sid):
            same_worker = new.identity is not None and other.identity == new.identity
            same_customer = (new.address is not None and other.address is not None
                             and address_key(other.address) == address_key(new.address))
            if same_worker or same_customer:
                raise Conflict(f"Participant already exists: {other.sid}", Problem.PARTICIPANT_EXISTS)
        now = self._clock()
        participant = Participant(new_sid("MB"), self._account_sid, conversation.service_sid, conversation.sid,
                                  new.identity, new.address, new.proxy_address, new.projected_address,
                                  new.attributes, new.role_sid, now, now)
        self._store.execute(
            "INSERT INTO conversation_participants (sid, account_sid, service_sid, conversation_sid, identity, "
            "address, address_key, proxy_address, projected_address, attributes, role_sid, date_created, "
            "date_updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (participant.sid, self._account_sid, participant.service_sid, participant.conversation_sid,
             participant.identity, participant.address,
             None if participant.address is None else address_key(participant.address), participant.proxy_address,
             participant.projected_address, participant.attributes, participant.role_sid, now.isoformat(),
             now.isoformat()))
        log.info("conversation %s: participant %s added (%s)", conversation.sid, participant.sid,
                 participant.identity or participant.address)
        if participant.is_worker:
            for event in self._waiters.get(conversation.sid, ()):
                event.set()
        return participant

    def participants(self, conversation_sid: str, offset: int = 0, limit: int = 1_000_000) -> list[Participant]:
        rows = self._store.execute(
            "SELECT * FROM conversation_participants WHERE conversation_sid = ? AND account_sid = ? "
            "ORDER BY date_created, rowid LIMIT ? OFFSET ?", (conversation_sid, self._account_sid, limit, offset),
        ).fetchall()
        return [_participant(r) for r in rows]

    def participant(self, service_sid: str, conversation_sid: str, sid: str) -> Participant:
        conversation = self.conversation(service_sid, conversation_sid)
        row = self._store.execute(
            "SELECT * FROM conversation_participants WHERE conversation_sid = ? AND (sid = ? OR identity = ?)",
            (conversation.sid, sid, sid)).fetchone()
        if row is None:
            raise NotFound(f"/v1/Services/{service_sid}/Conversations/{conversation_sid}/Participants/{sid}")
        return _participant(row)

    def delete_participant(self, service_sid: str, conversation_sid: str, sid: str) -> None:
        participant = self.participant(service_sid, conversation_sid, sid)
        self._store.execute("DELETE FROM conversation_participants WHERE sid = ?", (participant.sid,))

    # -- what <Conversation> asks -------------------------------------------------------------------
    def find_for_customer(self, service_sid: str, caller: str, called: str) -> Conversation | None:
        """The newest open conversation whose customer is `caller` and whose proxy address is `called` (or
        that has no proxy address)."""
        rows = self._store.execute(
            "SELECT c.* , p.proxy_address AS proxy FROM conversation_participants p "
            "JOIN conversations c ON c.sid = p.conversation_sid "
            "WHERE p.service_sid = ? AND p.account_sid = ? AND p.address_key = ? AND c.state != 'closed' "
            "ORDER BY c.date_created DESC, c.rowid DESC", (service_sid, self._account_sid, address_key(caller)),
        ).fetchall()
        for row in rows:
            if row["proxy"] is None or address_key(row["proxy"]) == address_key(called):
                return _conversation(row)
        return None

    def customer(self, conversation_sid: str) -> Participant | None:
        return next((p for p in self.participants(conversation_sid) if not p.is_worker), None)

    def workers(self, conversation_sid: str) -> list[Participant]:
        return [p for p in self.participants(conversation_sid) if p.is_worker]

    @staticmethod
    def worker_uri(service: Service, worker: Participant) -> str | None:
        """Where a worker is dialed: its attributes' ``sip_uri``, else the service's config for its identity."""
        return worker.sip_uri or (service.workers.get(worker.identity) if worker.identity else None)

    async def wait_for_worker(self, conversation_sid: str, timeout: float) -> list[Participant]:
        """The conversation's workers, waiting up to `timeout` s for a first one to be added."""
        found = self.workers(conversation_sid)
        if found or timeout <= 0:
            return found
        event = asyncio.Event()
        waiters = self._waiters.setdefault(conversation_sid, [])
        waiters.append(event)
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            log.info("conversation %s: no worker added within %g s", conversation_sid, timeout)
        finally:
            waiters.remove(event)
            if not waiters:
                self._waiters.pop(conversation_sid, None)
        return self.workers(conversation_sid)

    def route(self, service: Service, conversation: Conversation, customer: Participant, call_sid: str) -> None:
        """Start assigning a worker to an autocreated conversation (custom or pool routing)."""
        if service.pool:
            identity = self._next_free(service)
            if identity is None:
                log.warning("%s: conversation %s: every worker of the pool of %s is on a call", call_sid,
                            conversation.sid, service.sid)
                return
            self.add_participant(service.sid, conversation.sid, NewParticipant(identity=identity))
            log.info("%s: conversation %s routed to %s (pool)", call_sid, conversation.sid, identity)
        elif service.routing_url:
            self._events.emit(ConversationRouting(call_sid, self._account_sid, service.sid, conversation.sid,
                                                  service.routing_url, customer.address or "",
                                                  customer.proxy_address))
        else:
            log.info("%s: service %s has no routing: conversation %s waits for a worker added by REST",
                     call_sid, service.sid, conversation.sid)

    def _busy(self, uri: str) -> bool:
        key = uri_key(uri)
        user = key.split("@", 1)[0]
        for call in self._live_calls():
            if uri_key(call.to) == key or (call.sip_uri and uri_key(call.sip_uri) == key) or call.from_ == user:
                return True
        return False

    def _next_free(self, service: Service) -> str | None:
        """Round robin over the pool, skipping workers on a call."""
        pool = service.pool
        start = self._next_in_pool.get(service.sid, 0)
        for i in range(len(pool)):
            index = (start + i) % len(pool)
            identity = pool[index]
            uri = service.workers.get(identity)
            if uri is not None and not self._busy(uri):
                self._next_in_pool[service.sid] = index + 1
                return identity
        return None

    def autocreate(self, service: Service, caller: str, called: str) -> tuple[Conversation, Participant]:
        """A new conversation with the caller as its customer (proxy address: the number called)."""
        conversation = self.create_conversation(service.sid, friendly_name=f"Call from {caller}")
        customer = self.add_participant(service.sid, conversation.sid,
                                        NewParticipant(address=caller, proxy_address=called or None))
        return conversation, customer
