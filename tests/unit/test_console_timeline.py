"""The console's call timeline (switch.dialects.console.timeline): its order, its lanes and what each source says,
on a real store."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from switch.core.notifications import WARNING, Notifications
from switch.core.store import Store
from switch.dialects.console.timeline import (
    Entry,
    call_events,
    callbacks,
    lanes_of,
    notifications,
    timeline,
    webhooks,
)

pytestmark = pytest.mark.unit

SID = "CA" + "a" * 32
T0 = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "softswitch.db")
    yield opened
    opened.close()


def _at(ms: int, lane: str, text: str) -> Entry:
    return Entry(T0 + dt.timedelta(milliseconds=ms), lane, text, "test")


def test_entries_come_in_time_order_and_ties_keep_source_then_source_order() -> None:
    first = [_at(10, "SIP", "a"), _at(10, "SIP", "b"), _at(30, "SIP", "e")]
    second = [_at(5, "TwiML", "0"), _at(10, "TwiML", "c"), _at(20, "TwiML", "d")]
    texts = [e.text for e in timeline(SID, [lambda sid: first, lambda sid: second])]
    assert texts == ["0", "a", "b", "c", "d", "e"]


def test_known_lanes_keep_their_order_and_others_follow_in_order_of_use() -> None:
    entries = [_at(0, "media", ""), _at(1, "amd", ""), _at(2, "SIP", ""), _at(3, "status", ""), _at(4, "amd", ""),
               _at(5, "stream", "")]
    assert lanes_of(entries) == ["status", "SIP", "media", "amd", "stream"]


def test_an_entry_is_drawn_with_its_milliseconds_since_the_start() -> None:
    entry = Entry(T0 + dt.timedelta(milliseconds=1234), "SIP", "INVITE", "sip", 180, None)
    assert entry.to_json(T0) == {"at": "2026-12-06T12:00:01.234000+00:00", "ms": 1234, "lane": "SIP",
                                 "kind": "sip", "text": "INVITE", "code": 180, "url": None}


def test_call_events_take_their_kinds_lane_and_unknown_kinds_their_own(store: Store) -> None:
    store.add_event(SID, "status", "ringing")
    store.add_event(SID, "sip", "INVITE received", 100)
    store.add_event(SID, "amd", "human after 2200 ms")
    entries = list(call_events(store)(SID))
    assert [(e.lane, e.text, e.code) for e in entries] == [
        ("status", "ringing", None), ("SIP", "INVITE received", 100), ("amd", "human after 2200 ms", None)]
    assert all(e.at.tzinfo is not None for e in entries)


def test_queued_webhooks_say_how_they_went(store: Store) -> None:
    first = store.add_webhook(SID, "http://app/status", "POST", [("CallStatus", "ringing")], event="ringing")
    second = store.add_webhook(SID, "http://app/status", "POST", [("CallStatus", "completed")])
    store.webhook_done(first, True, 1, None)
    store.webhook_done(second, False, 3, "HTTP 500")
    texts = [e.text for e in webhooks(store)(SID)]
    assert texts[0].startswith("ringing: POST http://app/status (") and "after 1 attempt)" in texts[0]
    assert texts[1].startswith("callback: POST http://app/status (") and texts[1].endswith(
        "after 3 attempts: HTTP 500)")
    # without a request log, the callbacks are the queued rows
    assert [e.text for e in callbacks(store, None)(SID)] == texts


def test_notifications_are_errors_or_warnings_with_their_code_and_url(store: Store) -> None:
    notes = Notifications(store, "AC" + "1" * 32)
    notes.add(SID, 11200, "HTTP retrieval failure", url="http://app/voice", method="POST")
    notes.add(SID, 12200, "Schema validation warning", level=WARNING)
    entries = list(notifications(notes)(SID))
    assert [(e.lane, e.text, e.code) for e in entries] == [
        ("error", "error 11200: HTTP retrieval failure (POST http://app/voice)", 11200),
        ("error", "warning 12200: Schema validation warning", 12200)]
