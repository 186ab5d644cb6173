"""What the functional tests of the webhook dispatcher (test_webhooks*.py) share besides their fixtures (in
conftest.py): a recording aiohttp endpoint on 127.0.0.1 with pluggable per-path behaviour, and small helpers."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

TOKEN = "0123456789abcdef0123456789abcdef"
Params = list[tuple[str, str]]


@dataclass
class Hit:
    """One request the endpoint received."""

    method: str
    path: str
    url: str  # the full URL as the endpoint saw it on the wire
    query: Params
    form: Params
    signature: str | None
    user_agent: str | None
    at: float


Behaviour = Callable[[Hit, int], Awaitable[int]]  # (hit, nth hit on this path) -> HTTP status


@dataclass
class Endpoint:
    """An aiohttp app on 127.0.0.1 that records every request; per-path behaviour is pluggable."""

    base: str = ""
    hits: list[Hit] = field(default_factory=list)
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    in_flight: dict[str, int] = field(default_factory=dict)
    max_in_flight: dict[str, int] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return self.base + path

    def on(self, path: str) -> list[Hit]:
        return [h for h in self.hits if h.path == path]

    async def handle(self, request: web.Request) -> web.Response:
        form = [(k, str(v)) for k, v in (await request.post()).items()] if request.method == "POST" else []
        hit = Hit(request.method, request.path, self.base + request.raw_path, list(request.query.items()),
                  form, request.headers.get("X-Twilio-Signature"), request.headers.get("User-Agent"),
                  time.monotonic())
        self.hits.append(hit)
        nth = len(self.on(request.path))
        self.in_flight[request.path] = self.in_flight.get(request.path, 0) + 1
        self.max_in_flight[request.path] = max(self.max_in_flight.get(request.path, 0),
                                               self.in_flight[request.path])
        try:
            behaviour = self.behaviours.get(request.path)
            status = 200 if behaviour is None else await behaviour(hit, nth)
        finally:
            self.in_flight[request.path] -= 1
        return web.Response(status=status, text="ok")


def hook_state(db_path: Path, call_sid: str) -> list[tuple[str, int, str | None]]:
    """(state, attempts, last_error) of every webhook of a call, in id order, read from the DB file."""
    con = sqlite3.connect(db_path)
    try:
        rows = con.execute("SELECT state, attempts, last_error FROM webhooks WHERE call_sid = ? ORDER BY id",
                           (call_sid,)).fetchall()
    finally:
        con.close()
    return [(str(r[0]), int(r[1]), r[2]) for r in rows]


def status_params(call_sid: str, status: str, seq: int = 0) -> Params:
    return [("AccountSid", "AC" + "1" * 32), ("CallSid", call_sid), ("CallStatus", status),
            ("From", "+15550199"), ("To", "+15550100"), ("Direction", "outbound-api"),
            ("SequenceNumber", str(seq))]
