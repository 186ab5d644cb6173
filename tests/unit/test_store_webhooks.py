"""Unit tests of the SQLite store (`switch.core.store`): the webhooks table (pending, done, counted, the record
of what was sent) and a database from before its event column."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from switch.core.model import new_sid
from switch.core.store import PendingWebhook, Store

# -- webhooks ---------------------------------------------------------------------------------


def webhook_row(db_path: Path, hook_id: int) -> sqlite3.Row:
    con = sqlite3.connect(db_path)
    con.row_factory = sqlite3.Row
    try:
        row: sqlite3.Row | None = con.execute("SELECT * FROM webhooks WHERE id = ?", (hook_id,)).fetchone()
    finally:
        con.close()
    assert row is not None
    return row


def test_webhooks_pending_done_count(store: Store, db_path: Path) -> None:
    a, b = new_sid("CA"), new_sid("CA")
    params = [("CallSid", a), ("CallStatus", "ringing"), ("Multi", "1"), ("Multi", "2"), ("Empty", "")]
    h1 = store.add_webhook(a, "http://x/status", "POST", params)
    h2 = store.add_webhook(b, "http://x/status", "GET", [("CallSid", b)])
    h3 = store.add_webhook(a, "http://x/status", "POST", [("CallStatus", "completed")])
    h4 = store.add_webhook(a, "http://x/other", "POST", [])
    assert h1 < h2 < h3 < h4

    pending = list(store.pending_webhooks())
    assert pending == [
        PendingWebhook(h1, a, "http://x/status", "POST", params, 0),
        PendingWebhook(h2, b, "http://x/status", "GET", [("CallSid", b)], 0),
        PendingWebhook(h3, a, "http://x/status", "POST", [("CallStatus", "completed")], 0),
        PendingWebhook(h4, a, "http://x/other", "POST", [], 0),
    ]
    assert all(isinstance(p, tuple) for p in pending[0].params)

    assert store.count_webhooks(a, "http://x/status") == 2
    assert store.count_webhooks(a, "http://x/other") == 1
    assert store.count_webhooks(b, "http://x/status") == 1
    assert store.count_webhooks(b, "http://x/other") == 0

    store.webhook_done(h1, True, 2, None)
    store.webhook_done(h3, False, 4, "HTTP 500")
    assert [p.id for p in store.pending_webhooks()] == [h2, h4]
    assert store.count_webhooks(a, "http://x/status") == 2  # counts every state

    r1, r3 = webhook_row(db_path, h1), webhook_row(db_path, h3)
    assert (r1["state"], r1["attempts"], r1["last_error"]) == ("delivered", 2, None)
    assert r1["delivered"] is not None
    assert (r3["state"], r3["attempts"], r3["last_error"], r3["delivered"]) == ("failed", 4, "HTTP 500", None)


def test_the_record_of_what_was_sent_answers_per_call_url_and_event(store: Store) -> None:
    a, b = new_sid("CA"), new_sid("CA")
    store.add_webhook(a, "http://x/status", "POST", [], event="ringing")
    store.add_webhook(a, "http://x/other", "POST", [], event="completed")
    store.add_webhook(b, "http://x/status", "POST", [], event="completed")
    store.add_webhook(a, "http://x/status", "POST", [])  # a webhook that reports no event
    assert [store.webhook_sent(a, "http://x/status", e) for e in ("ringing", "completed")] == [True, False]
    assert store.webhook_sent(a, "http://x/other", "completed")
    assert store.webhook_sent(b, "http://x/status", "completed")
    assert not store.webhook_sent(b, "http://x/status", "ringing")
    assert store.count_webhooks(a, "http://x/status") == 2  # whatever they report


def test_a_database_from_before_the_event_column_gains_it(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(db_path)
    con.execute("CREATE TABLE webhooks (id INTEGER PRIMARY KEY AUTOINCREMENT, call_sid TEXT NOT NULL, "
                "url TEXT NOT NULL, method TEXT NOT NULL, params TEXT NOT NULL, state TEXT NOT NULL DEFAULT "
                "'pending', attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, created TEXT NOT NULL, "
                "delivered TEXT, body_format TEXT NOT NULL DEFAULT 'form', retries INTEGER)")
    con.execute("INSERT INTO webhooks (call_sid, url, method, params, created) VALUES ('CA1', 'http://x/s', 'POST', "
                "'[]', '2026-12-05T10:00:00+00:00')")
    con.commit()
    con.close()
    store = Store(db_path)
    try:
        assert [p.call_sid for p in store.pending_webhooks()] == ["CA1"]
        store.add_webhook("CA1", "http://x/s", "POST", [], event="completed")
        assert store.webhook_sent("CA1", "http://x/s", "completed") and store.count_webhooks("CA1", "http://x/s") == 2
    finally:
        store.close()
