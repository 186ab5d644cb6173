"""Every HTTP request the switch made about a call (Twilio's Call Events), and its SIP ladder when traced.

`CallRequests` keeps one row per request: TwiML fetches (the first document, redirects, action URLs, referUrl)
reported by the session's fetcher, and webhooks (status and recording callbacks, each attempt) reported by the
`WebhookDispatcher`.  A row has the URL, the method, the parameters sent, the response's status (None when no
response came), its Content-Type, the first `BODY_EXCERPT` characters of its body, the request's latency and the
error that ended it, if any.  The dialects render them (`switch.dialects.twilio.events`).  Both tables' rows go
when their call is deleted (`Store.delete_with_calls`).

`CallRequests.add_sip` keeps the SIP messages a call's legs sent and received, when `[server] sip_trace = true`
(the workers then report them as `SipMessage` events, and `SipLadder` files them under their calls).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sqlite3
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from switch.core.store import Store
from switch.workers.protocol import Event, SipMessage

log = logging.getLogger("switch.core.call_events")

BODY_EXCERPT = 1024  # characters of a response body kept
SIP_MESSAGE_MAX = 16 * 1024  # characters of one SIP message kept
_LEGS_REMEMBERED = 4096  # legs whose call the SIP ladder remembers after their end

_SCHEMA = """
CREATE TABLE IF NOT EXISTS call_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT, call_sid TEXT NOT NULL, at TEXT NOT NULL, kind TEXT NOT NULL,
    method TEXT NOT NULL, url TEXT NOT NULL, params TEXT NOT NULL, status INTEGER, content_type TEXT,
    body TEXT NOT NULL, duration_ms INTEGER NOT NULL, error TEXT
);
CREATE INDEX IF NOT EXISTS call_requests_sid ON call_requests (call_sid, id);
CREATE TABLE IF NOT EXISTS sip_trace (
    id INTEGER PRIMARY KEY AUTOINCREMENT, call_sid TEXT NOT NULL, leg TEXT NOT NULL, at TEXT NOT NULL,
    direction TEXT NOT NULL, peer TEXT NOT NULL, first_line TEXT NOT NULL, message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sip_trace_sid ON sip_trace (call_sid, id);
"""


@dataclass(frozen=True)
class HttpExchange:
    """One request the switch made about a call and what came back.

    `kind` is "twiml" (a document fetched: first, redirect, action) or "webhook" (a callback, one per attempt).
    `status` is None when no response came (`error` says why); `body` is an excerpt of the response body."""

    call_sid: str
    at: dt.datetime  # when the request left
    kind: str
    method: str
    url: str
    params: list[tuple[str, str]]
    status: int | None
    content_type: str | None
    body: str
    duration_ms: int
    error: str | None = None
    id: int = 0  # its place in the call's list (set by the store)


@dataclass(frozen=True)
class SipLine:
    """One SIP message of a call's leg: "sent" or "received", to or from `peer` (host:port, may be empty)."""

    call_sid: str
    leg: str
    at: dt.datetime
    direction: str
    peer: str
    first_line: str  # the request line or status line
    message: str
    id: int = 0


def first_line(message: str) -> str:
    """The request or status line of a SIP message."""
    return message.split("\r\n", 1)[0].split("\n", 1)[0].strip()


class CallRequests:
    """Records and lists the HTTP requests of calls; an observer of the webhook dispatcher and the fetcher."""

    def __init__(self, store: Store) -> None:
        self._store = store
        store.executescript(_SCHEMA)
        store.delete_with_calls("call_requests")
        store.delete_with_calls("sip_trace")

    def record(self, exchange: HttpExchange) -> None:
        """Keep `exchange` (its body cut to `BODY_EXCERPT` characters)."""
        self._store.append(
            "INSERT INTO call_requests (call_sid, at, kind, method, url, params, status, content_type, body, "
            "duration_ms, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (exchange.call_sid, exchange.at.isoformat(), exchange.kind, exchange.method, exchange.url,
             msgspec.json.encode(exchange.params).decode(), exchange.status, exchange.content_type,
             exchange.body[:BODY_EXCERPT], exchange.duration_ms, exchange.error))

    def for_call(self, call_sid: str) -> list[HttpExchange]:
        """The call's requests in the order they ended."""
        rows = self._store.execute("SELECT * FROM call_requests WHERE call_sid = ? ORDER BY id",
                                   (call_sid,)).fetchall()
        return [_exchange(r) for r in rows]

    def add_sip(self, line: SipLine) -> None:
        """Keep one traced SIP message of a call (cut to `SIP_MESSAGE_MAX` characters)."""
        self._store.append(
            "INSERT INTO sip_trace (call_sid, leg, at, direction, peer, first_line, message) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (line.call_sid, line.leg, line.at.isoformat(), line.direction, line.peer, line.first_line,
             line.message[:SIP_MESSAGE_MAX]))

    def sip_ladder(self, call_sid: str) -> list[SipLine]:
        """The call's traced SIP messages, in the order the worker saw them."""
        rows = self._store.execute("SELECT * FROM sip_trace WHERE call_sid = ? ORDER BY id", (call_sid,)).fetchall()
        return [SipLine(r["call_sid"], r["leg"], dt.datetime.fromisoformat(r["at"]), r["direction"], r["peer"],
                        r["first_line"], r["message"], r["id"]) for r in rows]


def _exchange(r: sqlite3.Row) -> HttpExchange:
    params = [(str(k), str(v)) for k, v in json.loads(r["params"])]
    return HttpExchange(r["call_sid"], dt.datetime.fromisoformat(r["at"]), r["kind"], r["method"], r["url"], params,
                        r["status"], r["content_type"], r["body"], r["duration_ms"], r["error"], r["id"])


class SipLadder:
    """Keeps the `SipMessage` events of traced workers against their calls (`[server] sip_trace`).

    `wrap` puts it in front of the call manager's event handler.  A leg's call is looked up while the leg is live
    and remembered, for the messages that follow its end (the 200 to a BYE)."""

    def __init__(self, requests: CallRequests, call_of_leg: Callable[[str], str | None]) -> None:
        self._requests = requests
        self._call_of_leg = call_of_leg
        self._known: OrderedDict[tuple[int, str], str] = OrderedDict()  # (worker, leg) -> CallSid

    def wrap(self, handler: Callable[[int, Event], None]) -> Callable[[int, Event], None]:
        """`handler`, with the SIP messages taken out of its events."""
        def on_event(worker: int, event: Event) -> None:
            if isinstance(event, SipMessage):
                self.add(worker, event)
            else:
                handler(worker, event)
        return on_event

    def add(self, worker: int, message: SipMessage) -> None:
        """Keep `message` against its leg's call (dropped when no call has the leg)."""
        key = (worker, message.leg)
        sid = self._known.get(key) or self._call_of_leg(message.leg)
        if sid is None:
            log.debug("worker %d: SIP message of unknown leg %s dropped", worker, message.leg)
            return
        if key not in self._known:
            self._known[key] = sid
            while len(self._known) > _LEGS_REMEMBERED:
                self._known.popitem(last=False)
        self._requests.add_sip(SipLine(sid, message.leg, dt.datetime.fromtimestamp(message.t, dt.UTC),
                                       message.direction, message.peer, first_line(message.text), message.text))
