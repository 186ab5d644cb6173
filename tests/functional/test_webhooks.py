"""Functional tests of the webhook dispatcher (`switch.core.webhooks`) against a recording aiohttp server."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from multidict import MultiDict
from twilio.request_validator import RequestValidator

from switch import __version__
from switch.core.model import new_sid
from switch.core.store import PendingWebhook, Store
from switch.core.webhooks import WebhookDispatcher, url_with_query
from tests.functional.catch_all import catch_all

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


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    ep = Endpoint()
    async with catch_all(ep.handle, shutdown_timeout=0.5) as base:
        ep.base = base
        yield ep
        ep.release.set()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "switch.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    s = Store(db_path)
    yield s
    s.close()


@pytest.fixture
async def dispatcher(store: Store) -> AsyncIterator[WebhookDispatcher]:
    d = WebhookDispatcher(store, TOKEN, timeout=2.0, retries=2, backoff=0.05)
    await d.start()
    yield d
    await d.close(timeout=0.5)


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


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- signing and encoding -------------------------------------------------------------------------


async def test_post_form_body_and_signature(endpoint: Endpoint, dispatcher: WebhookDispatcher, store: Store,
                                            db_path: Path) -> None:
    sid = new_sid("CA")
    params = [*status_params(sid, "completed"), ("CallerName", "Zoë & Co = 1+1"),
              ("StatusCallbackEvent", "completed"), ("Empty", "")]
    dispatcher.send(sid, endpoint.url("/status"), "post", params)
    assert await dispatcher.flush(5)

    [hit] = endpoint.hits
    assert hit.method == "POST"
    assert hit.form == params
    assert hit.query == []
    assert hit.url == endpoint.url("/status")
    assert hit.signature is not None
    assert RequestValidator(TOKEN).validate(hit.url, MultiDict(hit.form), hit.signature)
    assert RequestValidator(TOKEN).validate(hit.url, dict(hit.form), hit.signature)
    assert not RequestValidator("wrong").validate(hit.url, dict(hit.form), hit.signature)
    assert hit.user_agent == f"softswitch/{__version__}"
    assert hook_state(db_path, sid) == [("delivered", 1, None)]
    assert list(store.pending_webhooks()) == []


async def test_post_to_url_with_query_string(endpoint: Endpoint, dispatcher: WebhookDispatcher) -> None:
    sid = new_sid("CA")
    url = endpoint.url("/status?app=demo&n=1")
    dispatcher.send(sid, url, "POST", status_params(sid, "ringing"))
    assert await dispatcher.flush(5)
    [hit] = endpoint.hits
    assert hit.query == [("app", "demo"), ("n", "1")]
    assert hit.signature is not None
    assert RequestValidator(TOKEN).validate(hit.url, dict(hit.form), hit.signature)


async def test_get_params_in_query_and_full_url_signed(endpoint: Endpoint,
                                                      dispatcher: WebhookDispatcher) -> None:
    sid = new_sid("CA")
    params = status_params(sid, "in-progress")
    dispatcher.send(sid, endpoint.url("/status"), "get", params)
    assert await dispatcher.flush(5)

    [hit] = endpoint.hits
    assert hit.method == "GET"
    assert hit.query == params
    assert hit.form == []
    assert hit.signature is not None
    assert hit.url == url_with_query(endpoint.url("/status"), params)
    assert RequestValidator(TOKEN).validate(hit.url, {}, hit.signature)
    assert not RequestValidator(TOKEN).validate(endpoint.url("/status"), dict(params), hit.signature)


async def test_get_appends_to_existing_query(endpoint: Endpoint, dispatcher: WebhookDispatcher) -> None:
    sid = new_sid("CA")
    dispatcher.send(sid, endpoint.url("/status?app=demo"), "GET", [("CallSid", sid)])
    assert await dispatcher.flush(5)
    [hit] = endpoint.hits
    assert hit.query == [("app", "demo"), ("CallSid", sid)]
    assert hit.signature is not None
    assert RequestValidator(TOKEN).validate(hit.url, {}, hit.signature)


async def test_get_signature_valid_with_sip_uris_and_urls_in_params(endpoint: Endpoint,
                                                                   dispatcher: WebhookDispatcher) -> None:
    """Status callbacks of SIP calls carry `From=sip:alice@host`, `To=sip:...`, callback URLs...

    The receiver validates the signature over the URL it actually received, so the bytes on the wire
    must be the bytes that were signed.
    """
    sid = new_sid("CA")
    params = [("CallSid", sid), ("CallStatus", "ringing"), ("From", "sip:alice@example.com:5060"),
              ("To", "sip:+15550100@10.0.0.1;transport=udp"), ("Caller", "a/b?c"),
              ("CallbackSource", "call-progress-events"), ("Url", "https://app.example.com/voice")]
    dispatcher.send(sid, endpoint.url("/status"), "GET", params)
    assert await dispatcher.flush(5)
    [hit] = endpoint.hits
    assert hit.query == params
    assert hit.signature is not None
    assert RequestValidator(TOKEN).validate(hit.url, {}, hit.signature), (
        f"signature does not match the URL the endpoint received: {hit.url}"
    )


async def test_post_signature_valid_with_percent_encoded_callback_url(endpoint: Endpoint,
                                                                      dispatcher: WebhookDispatcher) -> None:
    """A StatusCallback URL that carries an encoded URL in its query must reach the endpoint byte for byte."""
    sid = new_sid("CA")
    url = endpoint.url("/status?next=https%3A%2F%2Fapp.example.com%2Fdone&who=sip%3Abob%40example.com")
    dispatcher.send(sid, url, "POST", status_params(sid, "completed"))
    assert await dispatcher.flush(5)
    [hit] = endpoint.hits
    assert hit.query == [("next", "https://app.example.com/done"), ("who", "sip:bob@example.com")]
    assert hit.signature is not None
    assert RequestValidator(TOKEN).validate(hit.url, dict(hit.form), hit.signature), (
        f"signed {url}, endpoint received {hit.url}"
    )


def test_url_with_query() -> None:
    assert url_with_query("http://h/p", []) == "http://h/p"
    assert url_with_query("http://h/p", [("a", "1"), ("b", "x y")]) == "http://h/p?a=1&b=x+y"
    assert url_with_query("http://h/p?z=0", [("a", "+1")]) == "http://h/p?z=0&a=%2B1"
    assert urllib.parse.parse_qsl(urllib.parse.urlsplit(
        url_with_query("http://h/p", [("To", "sip:a@b")])).query) == [("To", "sip:a@b")]


# -- ordering and isolation -------------------------------------------------------------------


async def test_send_persists_first_and_returns_at_once(endpoint: Endpoint, dispatcher: WebhookDispatcher,
                                                       store: Store) -> None:
    sid = new_sid("CA")
    dispatcher.send(sid, endpoint.url("/status"), "POST", status_params(sid, "initiated"))
    pending = list(store.pending_webhooks())
    assert [(p.call_sid, p.method, p.attempts) for p in pending] == [(sid, "POST", 0)]
    assert endpoint.hits == []  # nothing sent synchronously
    assert await dispatcher.flush(5)
    assert list(store.pending_webhooks()) == []


async def test_order_per_call_preserved_with_slow_start(endpoint: Endpoint,
                                                         dispatcher: WebhookDispatcher, db_path: Path) -> None:
    async def slow_first(hit: Hit, nth: int) -> int:
        if nth <= 3:
            await asyncio.sleep(0.1)
        return 200

    endpoint.behaviours["/status"] = slow_first
    sid = new_sid("CA")
    for i in range(20):
        dispatcher.send(sid, endpoint.url("/status"), "POST", status_params(sid, "ringing", seq=i))
    assert await dispatcher.flush(10)
    assert [dict(h.form)["SequenceNumber"] for h in endpoint.hits] == [str(i) for i in range(20)]
    assert endpoint.max_in_flight["/status"] == 1  # one at a time per call
    assert hook_state(db_path, sid) == [("delivered", 1, None)] * 20


async def test_calls_do_not_block_each_other(endpoint: Endpoint, dispatcher: WebhookDispatcher) -> None:
    b_arrived = asyncio.Event()

    async def wait_for_b(hit: Hit, nth: int) -> int:
        try:
            await asyncio.wait_for(b_arrived.wait(), 3)
        except TimeoutError:
            return 504  # B was held behind A
        return 200

    async def mark_b(hit: Hit, nth: int) -> int:
        b_arrived.set()
        return 200

    endpoint.behaviours["/a"] = wait_for_b
    endpoint.behaviours["/b"] = mark_b
    a, b = new_sid("CA"), new_sid("CA")
    dispatcher.send(a, endpoint.url("/a"), "POST", status_params(a, "ringing"))
    dispatcher.send(a, endpoint.url("/a2"), "POST", status_params(a, "completed"))
    dispatcher.send(b, endpoint.url("/b"), "POST", status_params(b, "ringing"))
    start = time.monotonic()
    assert await dispatcher.flush(5)
    assert b_arrived.is_set()
    assert time.monotonic() - start < 2
    assert [h.path for h in endpoint.hits] == ["/a", "/b", "/a2"]


# -- retries and failures -----------------------------------------------------------------------


async def test_500_then_success_is_retried(endpoint: Endpoint, dispatcher: WebhookDispatcher,
                                           db_path: Path) -> None:
    async def fail_once(hit: Hit, nth: int) -> int:
        return 500 if nth == 1 else 204

    endpoint.behaviours["/status"] = fail_once
    seen: list[int | None] = []
    dispatcher.observers.append(lambda hook, status, at: seen.append(status))
    sid = new_sid("CA")
    params = status_params(sid, "completed")
    dispatcher.send(sid, endpoint.url("/status"), "POST", params)
    assert await dispatcher.flush(5)

    hits = endpoint.on("/status")
    assert len(hits) == 2
    assert hits[1].at - hits[0].at >= 0.04  # backoff
    for hit in hits:
        assert hit.form == params
        assert hit.signature is not None
        assert RequestValidator(TOKEN).validate(hit.url, dict(hit.form), hit.signature)
    assert seen == [500, 204]
    assert hook_state(db_path, sid) == [("delivered", 2, None)]


async def test_retry_keeps_later_webhooks_of_the_call_behind(endpoint: Endpoint,
                                                              dispatcher: WebhookDispatcher) -> None:
    async def fail_first_attempt(hit: Hit, nth: int) -> int:
        return 503 if dict(hit.form)["SequenceNumber"] == "0" and nth == 1 else 200

    endpoint.behaviours["/status"] = fail_first_attempt
    sid = new_sid("CA")
    for i in range(3):
        dispatcher.send(sid, endpoint.url("/status"), "POST", status_params(sid, "ringing", seq=i))
    assert await dispatcher.flush(5)
    assert [dict(h.form)["SequenceNumber"] for h in endpoint.hits] == ["0", "0", "1", "2"]


async def test_always_failing_endpoint_ends_failed(endpoint: Endpoint, dispatcher: WebhookDispatcher,
                                                   store: Store, db_path: Path) -> None:
    async def always_503(hit: Hit, nth: int) -> int:
        return 503

    endpoint.behaviours["/status"] = always_503
    sid = new_sid("CA")
    dispatcher.send(sid, endpoint.url("/status"), "POST", status_params(sid, "completed"))
    assert await dispatcher.flush(5)
    hits = endpoint.on("/status")
    assert len(hits) == 3  # retries + 1
    assert hits[1].at - hits[0].at >= 0.04
    assert hits[2].at - hits[1].at >= 0.09  # exponential
    assert hook_state(db_path, sid) == [("failed", 3, "HTTP 503")]
    assert list(store.pending_webhooks()) == []


async def test_connection_refused_is_retried_then_failed(dispatcher: WebhookDispatcher, store: Store,
                                                          db_path: Path) -> None:
    seen: list[tuple[int, int | None]] = []
    dispatcher.observers.append(lambda hook, status, at: seen.append((hook.id, status)))
    sid = new_sid("CA")
    dispatcher.send(sid, f"http://127.0.0.1:{closed_port()}/status", "POST", status_params(sid, "completed"))
    assert await dispatcher.flush(5)
    [(state, attempts, error)] = hook_state(db_path, sid)
    assert (state, attempts) == ("failed", 3)
    assert error is not None and "Connect" in error
    assert [status for _, status in seen] == [None, None, None]
    assert list(store.pending_webhooks()) == []


async def test_timeout_is_retried_then_failed(endpoint: Endpoint, store: Store, db_path: Path) -> None:
    async def hang(hit: Hit, nth: int) -> int:
        await endpoint.release.wait()
        return 200

    endpoint.behaviours["/slow"] = hang
    d = WebhookDispatcher(store, TOKEN, timeout=0.2, retries=1, backoff=0.01)
    await d.start()
    try:
        sid = new_sid("CA")
        d.send(sid, endpoint.url("/slow"), "POST", status_params(sid, "completed"))
        assert await d.flush(5)
    finally:
        await d.close(1)
    assert len(endpoint.on("/slow")) == 2
    [(state, attempts, error)] = hook_state(db_path, sid)
    assert (state, attempts) == ("failed", 2)
    assert error is not None and "Timeout" in error


async def test_failed_webhook_does_not_stop_the_next_one(endpoint: Endpoint, dispatcher: WebhookDispatcher,
                                                         db_path: Path) -> None:
    async def always_500(hit: Hit, nth: int) -> int:
        return 500

    endpoint.behaviours["/bad"] = always_500
    sid = new_sid("CA")
    dispatcher.send(sid, endpoint.url("/bad"), "POST", status_params(sid, "ringing"))
    dispatcher.send(sid, endpoint.url("/good"), "POST", status_params(sid, "completed"))
    assert await dispatcher.flush(5)
    assert [h.path for h in endpoint.hits] == ["/bad"] * 3 + ["/good"]
    assert hook_state(db_path, sid) == [("failed", 3, "HTTP 500"), ("delivered", 1, None)]


# -- restart: resume and close ------------------------------------------------------------------


async def test_resume_delivers_pending_from_previous_run(endpoint: Endpoint, db_path: Path) -> None:
    a, b = new_sid("CA"), new_sid("CA")
    previous = Store(db_path)  # a previous run persisted these, then stopped before delivering
    previous.add_webhook(a, endpoint.url("/status"), "POST", status_params(a, "ringing", 0))
    previous.add_webhook(b, endpoint.url("/status"), "GET", status_params(b, "ringing", 0))
    previous.add_webhook(a, endpoint.url("/status"), "POST", status_params(a, "completed", 1))
    done = previous.add_webhook(a, endpoint.url("/status"), "POST", status_params(a, "initiated", 9))
    previous.webhook_done(done, True, 1, None)
    previous.close()

    store = Store(db_path)
    d = WebhookDispatcher(store, TOKEN, timeout=2, retries=2, backoff=0.05)
    await d.start()
    try:
        assert d.resume() == 3
        assert await d.flush(5)
    finally:
        await d.close(1)
        store.close()
    assert len(endpoint.hits) == 3
    by_call = {sid: [dict(h.form or h.query)["SequenceNumber"] for h in endpoint.hits
                     if dict(h.form or h.query)["CallSid"] == sid] for sid in (a, b)}
    assert by_call == {a: ["0", "1"], b: ["0"]}
    for hit in endpoint.hits:
        assert hit.signature is not None
        assert RequestValidator(TOKEN).validate(hit.url, dict(hit.form), hit.signature)
    assert hook_state(db_path, a) == [("delivered", 1, None), ("delivered", 1, None), ("delivered", 1, None)]
    assert hook_state(db_path, b) == [("delivered", 1, None)]


async def test_close_leaves_undelivered_pending_and_resume_sends_them(endpoint: Endpoint, db_path: Path) -> None:
    first_hit = asyncio.Event()

    async def hang(hit: Hit, nth: int) -> int:
        first_hit.set()
        await endpoint.release.wait()
        return 200

    endpoint.behaviours["/status"] = hang
    store = Store(db_path)
    d = WebhookDispatcher(store, TOKEN, timeout=5, retries=2, backoff=0.05)
    await d.start()
    sid = new_sid("CA")
    for i in range(3):
        d.send(sid, endpoint.url("/status"), "POST", status_params(sid, "ringing", seq=i))
    await asyncio.wait_for(first_hit.wait(), 5)
    start = time.monotonic()
    await d.close(timeout=0.1)  # must not raise, must not wait for the hanging endpoint
    assert time.monotonic() - start < 2
    pending = list(store.pending_webhooks())
    assert [dict(p.params)["SequenceNumber"] for p in pending] == ["0", "1", "2"]
    assert all(isinstance(p, PendingWebhook) and p.call_sid == sid for p in pending)
    assert hook_state(db_path, sid) == [("pending", 0, None)] * 3
    store.close()

    # the next run delivers them, in order
    endpoint.release.set()
    endpoint.hits.clear()
    store = Store(db_path)
    d = WebhookDispatcher(store, TOKEN, timeout=2, retries=2, backoff=0.05)
    await d.start()
    try:
        assert d.resume() == 3
        assert await d.flush(5)
    finally:
        await d.close(1)
        store.close()
    assert [dict(h.form)["SequenceNumber"] for h in endpoint.hits] == ["0", "1", "2"]
    assert hook_state(db_path, sid) == [("delivered", 1, None)] * 3


async def test_close_delivers_what_it_can(endpoint: Endpoint, store: Store, db_path: Path) -> None:
    d = WebhookDispatcher(store, TOKEN, timeout=2, retries=2, backoff=0.05)
    await d.start()
    sid = new_sid("CA")
    for i in range(3):
        d.send(sid, endpoint.url("/status"), "POST", status_params(sid, "ringing", seq=i))
    await d.close(timeout=5)
    assert hook_state(db_path, sid) == [("delivered", 1, None)] * 3
    assert list(store.pending_webhooks()) == []


async def test_flush_times_out_with_work_left(endpoint: Endpoint, dispatcher: WebhookDispatcher) -> None:
    async def hang(hit: Hit, nth: int) -> int:
        await endpoint.release.wait()
        return 200

    endpoint.behaviours["/status"] = hang
    sid = new_sid("CA")
    dispatcher.send(sid, endpoint.url("/status"), "POST", status_params(sid, "ringing"))
    assert not await dispatcher.flush(0.1)
    endpoint.release.set()
    assert await dispatcher.flush(5)


async def test_what_a_webhook_reports_is_on_disk_before_it_arrives(endpoint: Endpoint, dispatcher: WebhookDispatcher,
                                                                   store: Store, db_path: Path) -> None:
    """The store commits its writes in groups, up to COMMIT_DELAY later; a request leaving commits them first, so
    the endpoint (reading the file from its own connection) finds the call's event and the webhook's own row."""
    sid = new_sid("CA")
    seen: list[list[tuple[str, ...]]] = []

    def rows() -> list[tuple[str, ...]]:
        con = sqlite3.connect(db_path)
        try:
            return [*con.execute("SELECT kind, detail FROM call_events WHERE call_sid = ?", (sid,)),
                    *con.execute("SELECT state, event FROM webhooks WHERE call_sid = ?", (sid,))]
        finally:
            con.close()

    async def look(hit: Hit, nth: int) -> int:
        seen.append(rows())
        return 204

    endpoint.behaviours["/status"] = look
    store.add_event(sid, "status", "completed")
    assert rows() == []  # written, not committed yet
    dispatcher.send(sid, endpoint.url("/status"), "POST", status_params(sid, "completed"), event="completed")
    assert await dispatcher.flush(5)
    assert seen == [[("status", "completed"), ("pending", "completed")]]
    assert rows() == [("status", "completed"), ("delivered", "completed")]  # flush commits the outcome


async def test_count_and_sent_span_a_restart_and_every_url(endpoint: Endpoint, db_path: Path) -> None:
    """SequenceNumber's count and `sent` see the webhooks a previous run wrote, then this run's, per URL and
    event, as the store's own queries do."""
    a, b = new_sid("CA"), new_sid("CA")
    previous = Store(db_path)
    previous.add_webhook(a, endpoint.url("/status"), "POST", status_params(a, "initiated", 0), event="initiated")
    previous.close()
    store = Store(db_path)
    d = WebhookDispatcher(store, TOKEN, timeout=2, retries=0)
    await d.start()
    try:
        assert d.count(a, None, ("initiated", "ringing")) == 1
        assert d.sent(a, endpoint.url("/status"), "initiated")
        d.send(a, endpoint.url("/status"), "POST", status_params(a, "ringing", 1), event="ringing")
        d.send(a, endpoint.url("/other"), "POST", status_params(a, "ringing", 0), event="ringing")
        d.send(a, endpoint.url("/status"), "POST", [("CallSid", a)])  # reports no event
        d.send(b, endpoint.url("/status"), "POST", status_params(b, "ringing", 0), event="ringing")
        assert await d.flush(5)
        for sid in (a, b):
            for url in (None, endpoint.url("/status"), endpoint.url("/other")):
                for events in (None, ("initiated", "ringing"), ("completed",)):
                    assert d.count(sid, url, events) == store.count_webhooks(sid, url, events), (sid, url, events)
        assert [d.sent(a, endpoint.url("/other"), e) for e in ("ringing", "initiated")] == [True, False]
        assert d.count(a, None, ("initiated", "ringing")) == 3 and d.count(a, None) == 4
    finally:
        await d.close(1)
        store.close()
