"""Functional tests of the webhook dispatcher (`switch.core.webhooks`) against a recording aiohttp server: a
restart (resuming what a previous run left pending, closing with work in flight), flushing, and what is on disk
when a webhook arrives (the endpoint is in webhook_endpoint.py, the fixtures in conftest.py)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from twilio.request_validator import RequestValidator

from switch.core.model import new_sid
from switch.core.store import PendingWebhook, Store
from switch.core.webhooks import WebhookDispatcher
from tests.functional.webhook_endpoint import TOKEN, Endpoint, Hit, hook_state, status_params

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
