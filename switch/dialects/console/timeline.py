"""A call's timeline: everything the switch stored about it, in time order, each entry in one lane.

Sources: the call events (`Store.events`: status changes, SIP facts, TwiML redirects, recordings, errors), the
HTTP requests it made (`CallRequests`: TwiML fetches, callback attempts; else the `webhooks` rows), its traced
SIP messages when `sip_trace` is on, and its notifications (TwiML and webhook failures).  An event kind this
module does not know keeps its own name as its lane, so new kinds show up without a change here; more sources are
functions of a CallSid passed to `timeline`.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from switch.core.call_events import CallRequests
from switch.core.notifications import ERROR, Notifications
from switch.core.store import Store

# The lanes, in the order the page draws them (the demo's: REST, SIP, callbacks, TwiML, media), then the others.
LANES = ("status", "REST", "SIP", "callback", "TwiML", "media", "error")
# Call event kinds (`Store.add_event`) -> lane; any other kind is its own lane.
KIND_LANES = {
    "status": "status", "sip": "SIP", "twiml": "TwiML", "recording": "media", "media": "media", "error": "error",
    "rest": "REST", "callback": "callback", "webhook": "callback",
}


@dataclass(frozen=True)
class Entry:
    """One moment of a call's life, as the console draws it."""

    at: dt.datetime
    lane: str
    text: str
    kind: str  # where it came from: the call event's kind, "webhook" or "notification"
    code: int | None = None  # a SIP code, an HTTP status or an error code
    url: str | None = None

    def to_json(self, start: dt.datetime) -> dict[str, Any]:
        """The entry for the page, with its milliseconds since `start`."""
        return {"at": self.at.isoformat(), "ms": round((self.at - start).total_seconds() * 1000), "lane": self.lane,
                "kind": self.kind, "text": self.text, "code": self.code, "url": self.url}


Source = Callable[[str], Iterable[Entry]]


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def call_events(store: Store) -> Source:
    """The call's stored events (`call_events`)."""
    def entries(sid: str) -> Iterable[Entry]:
        for event in store.events(sid):
            yield Entry(_aware(event.at), KIND_LANES.get(event.kind, event.kind), event.detail, event.kind,
                        event.sip_code)
    return entries


def _webhook_rows(store: Store, sid: str) -> list[sqlite3.Row]:
    return list(store.execute("SELECT * FROM webhooks WHERE call_sid = ? ORDER BY id", (sid,)).fetchall())


def _event_name(row: sqlite3.Row) -> str:
    has = "event" in row.keys()  # noqa: SIM118 - `in` on a Row looks at its values, not its column names
    return str(row["event"]) if has and row["event"] else "callback"


def webhooks(store: Store) -> Source:
    """The callbacks the call queued: one entry each, when it was queued, with how it went (the request log's
    entries say more; this is what a switch with `call_events = false` still has)."""
    def entries(sid: str) -> Iterable[Entry]:
        for row in _webhook_rows(store, sid):
            how = str(row["state"])
            if row["attempts"]:
                how += f" after {row['attempts']} attempt{'s' if row['attempts'] != 1 else ''}"
            if row["last_error"]:
                how += f": {row['last_error']}"
            yield Entry(_aware(dt.datetime.fromisoformat(row["created"])), "callback",
                        f"{_event_name(row)}: {row['method']} {row['url']} ({how})", "webhook", url=row["url"])
    return entries


def _params_key(params: object) -> object:
    """A webhook's form parameters as a comparable value (a JSON document's members never match a form)."""
    return tuple(tuple(pair) for pair in params) if isinstance(params, list) else None


def requests(log: CallRequests, store: Store) -> Source:
    """The HTTP requests the call made (`CallRequests`): TwiML fetches and each callback attempt, when it left,
    with the answer's status and the latency; a callback named by the event it reported (from `webhooks`)."""
    def entries(sid: str) -> Iterable[Entry]:
        names = {(row["url"], _params_key(json.loads(row["params"]))): _event_name(row)
                 for row in _webhook_rows(store, sid)}
        for x in log.for_call(sid):
            answer = f"{x.status}" if x.status is not None else "no answer"
            if x.content_type and x.kind == "twiml":
                answer += f" {x.content_type.split(';')[0]}"
            text = f"{x.method} {x.url} -> {answer} in {x.duration_ms} ms" + (f" ({x.error})" if x.error else "")
            if x.kind == "webhook":
                name = names.get((x.url, _params_key(x.params)), "callback")
                yield Entry(_aware(x.at), "callback", f"{name}: {text}", "request", x.status, x.url)
            else:
                yield Entry(_aware(x.at), KIND_LANES.get(x.kind, x.kind), text, "request", x.status, x.url)
    return entries


def callbacks(store: Store, log: CallRequests | None) -> Source:
    """The request log's entries when it has the call's callbacks, else the `webhooks` rows."""
    queued = webhooks(store)
    logged = requests(log, store) if log is not None else None

    def entries(sid: str) -> Iterable[Entry]:
        found = list(logged(sid)) if logged is not None else []
        if any(e.lane == "callback" for e in found):
            return found
        return [*found, *queued(sid)]
    return entries


def sip_trace(log: CallRequests) -> Source:
    """The call's traced SIP messages (`[server] sip_trace`): one SIP entry each, with its first line."""
    def entries(sid: str) -> Iterable[Entry]:
        for line in log.sip_ladder(sid):
            arrow = "->" if line.direction == "sent" else "<-"
            yield Entry(_aware(line.at), "SIP", f"{arrow} {line.first_line}", "sip_trace")
    return entries


def notifications(notes: Notifications) -> Source:
    """The call's notifications (errors and warnings with Twilio's codes)."""
    def entries(sid: str) -> Iterable[Entry]:
        for note in notes.for_call(sid):
            level = "error" if note.log == ERROR else "warning"
            where = f" ({note.request_method or ''} {note.request_url})" if note.request_url else ""
            yield Entry(_aware(note.date_created), "error", f"{level} {note.error_code}: {note.message_text}{where}",
                        "notification", note.error_code, note.request_url)
    return entries


def timeline(sid: str, sources: Sequence[Source]) -> list[Entry]:
    """Every source's entries for the call, in time order (ties keep source order, then each source's own)."""
    keyed = [(entry.at, i, j, entry) for i, source in enumerate(sources) for j, entry in enumerate(source(sid))]
    keyed.sort(key=lambda k: (k[0], k[1], k[2]))
    return [k[3] for k in keyed]


def lanes_of(entries: Iterable[Entry]) -> list[str]:
    """The lanes the entries use: the known ones in their order, then the others in order of first use."""
    used: list[str] = []
    for entry in entries:
        if entry.lane not in used:
            used.append(entry.lane)
    return [lane for lane in LANES if lane in used] + [lane for lane in used if lane not in LANES]
