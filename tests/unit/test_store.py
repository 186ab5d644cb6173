"""Unit tests of the SQLite store (`switch.core.store`)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from switch.core.model import Call, CallbackEvent, Direction, new_sid
from switch.core.paging import Cursor, PageKey
from switch.core.service import CallFilter
from switch.core.status import CallStatus
from switch.core.store import CallEvent, PendingWebhook, Store

ACCOUNT = "AC" + "a" * 32
OTHER_ACCOUNT = "AC" + "b" * 32
T0 = dt.datetime(2024, 3, 10, 12, 0, 0, tzinfo=dt.UTC)


def make_call(n: int, **overrides: Any) -> Call:
    """Call number `n`, created `n` minutes after T0 (so a higher n is newer)."""
    fields: dict[str, Any] = {
        "sid": f"CA{n:032x}",
        "account_sid": ACCOUNT,
        "to": "+15550100",
        "from_": "+15550199",
        "direction": Direction.OUTBOUND_API,
        "status": CallStatus.COMPLETED,
        "date_created": T0 + dt.timedelta(minutes=n),
        "date_updated": T0 + dt.timedelta(minutes=n, seconds=1),
    }
    fields.update(overrides)
    return Call(**fields)


def full_call() -> Call:
    """A Call with every field set to a non-default value."""
    return Call(
        sid=new_sid("CA"),
        account_sid=ACCOUNT,
        to="sip:bob@example.com",
        from_="+15550199",
        direction=Direction.OUTBOUND_DIAL,
        status=CallStatus.IN_PROGRESS,
        date_created=dt.datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC),
        date_updated=dt.datetime(2024, 1, 2, 3, 4, 6, tzinfo=dt.UTC),
        parent_call_sid=new_sid("CA"),
        start_time=dt.datetime(2024, 1, 2, 3, 4, 5, 700000, tzinfo=dt.UTC),
        answer_time=dt.datetime(2024, 1, 2, 3, 4, 9, 1, tzinfo=dt.UTC),
        end_time=dt.datetime(2024, 1, 2, 3, 5, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        duration=51,
        answered_by="human",
        forwarded_from="+15550111",
        caller_name="Alice O'Brien \"quoted\"",
        phone_number_sid=new_sid("PN"),
        url="https://app.example.com/voice?x=1",
        method="GET",
        fallback_url="https://app.example.com/fallback",
        fallback_method="GET",
        twiml="<Response><Say>héllo</Say></Response>",
        status_callback="https://app.example.com/status",
        status_callback_method="GET",
        status_callback_events=frozenset({CallbackEvent.INITIATED, CallbackEvent.RINGING,
                                          CallbackEvent.ANSWERED, CallbackEvent.COMPLETED}),
        sip_uri="sip:bob@example.com;transport=udp",
        sip_call_id="abc123@10.0.0.1",
        sip_params={"SipDomain": "acme.sip.localhost", "SipHeader_X-Customer-Id": "42"},
        client_parameters={"order": "42", "note": "VIP & late"},
        sip_response_code=200,
        sip_auth_username="user",
        sip_auth_password="pass",
        caller_id="+15550122",
        timeout=25,
        time_limit=600,
        send_digits="ww1234#",
        worker=3,
        end_reason="hangup",
        error="nothing really",
        record=True,
        recording_channels="dual",
        recording_status_callback="http://127.0.0.1:9/rec",
        recording_status_callback_method="GET",
        recording_status_callback_events=("in-progress", "completed", "absent"),
        recording_track="inbound",
        trim="do-not-trim",
        machine_detection="detect_message_end",
        machine_detection_timeout=45,
        machine_detection_speech_threshold=3000,
        machine_detection_speech_end_threshold=900,
        machine_detection_silence_timeout=4000,
        async_amd=True,
        async_amd_status_callback="https://example.com/amd",
        async_amd_status_callback_method="GET",
        machine_detection_duration=3140,
        media_quality={"streams": 1, "rx_packets": 250, "rx_lost": 2, "rx_jitter_max_us": 1500},
    )


def test_calls_table_from_before_media_quality(db_path: Path) -> None:
    """A database whose calls table predates a Call field gets the column at start-up; its old rows read as None."""
    old = Store(db_path)
    old.save_call(make_call(1))
    old.close()
    db = sqlite3.connect(db_path)
    db.execute("ALTER TABLE calls DROP COLUMN media_quality")
    db.commit()
    db.close()
    store = Store(db_path)
    try:
        first = store.get_call(make_call(1).sid)
        assert first is not None and first.media_quality is None
        store.save_call(make_call(2, media_quality={"rx_packets": 5}))
        second = store.get_call(make_call(2).sid)
        assert second is not None and second.media_quality == {"rx_packets": 5}
    finally:
        store.close()


def test_full_round_trip(store: Store) -> None:
    call = full_call()
    defaults = make_call(0)
    for f in dataclasses.fields(Call):  # the fixture really sets every field away from its default
        if f.name not in ("sid", "account_sid", "to", "from_"):
            assert getattr(call, f.name) != getattr(defaults, f.name), f.name
    store.save_call(call)
    got = store.get_call(call.sid)
    assert got == call
    assert got is not None
    assert type(got.status) is CallStatus and got.status is CallStatus.IN_PROGRESS
    assert type(got.direction) is Direction
    assert got.status_callback_events == call.status_callback_events
    assert all(type(e) is CallbackEvent for e in got.status_callback_events)
    assert got.date_created.tzinfo is not None
    assert got.end_time is not None and got.end_time.utcoffset() == dt.timedelta(hours=2)


def test_minimal_round_trip_keeps_defaults_and_nones(store: Store) -> None:
    call = make_call(1, status=CallStatus.QUEUED, direction=Direction.INBOUND)
    store.save_call(call)
    assert store.get_call(call.sid) == call


@pytest.mark.parametrize("events", [frozenset(), frozenset({CallbackEvent.RINGING})])
def test_callback_event_sets(store: Store, events: frozenset[CallbackEvent]) -> None:
    call = make_call(2, status_callback_events=events)
    store.save_call(call)
    got = store.get_call(call.sid)
    assert got is not None and got.status_callback_events == events


def test_naive_datetime_round_trip(store: Store) -> None:
    call = make_call(3, start_time=dt.datetime(2024, 5, 6, 7, 8, 9))
    store.save_call(call)
    assert store.get_call(call.sid) == call


def test_get_missing(store: Store) -> None:
    assert store.get_call("CA" + "0" * 32) is None


def test_save_replaces(store: Store) -> None:
    call = make_call(4, status=CallStatus.RINGING)
    store.save_call(call)
    call.status = CallStatus.IN_PROGRESS
    call.answer_time = T0
    store.save_call(call)
    assert store.get_call(call.sid) == call
    assert len(store.list_calls(ACCOUNT, CallFilter(), 0, 100)) == 1


def test_a_live_calls_later_saves_write_only_what_changed(store: Store, db_path: Path) -> None:
    """After the first whole row, a save UPDATEs the changed columns; the row read back is the call each time,
    from this connection and (once committed) from another; a deleted call's next save writes it whole again."""
    call = make_call(6, status=CallStatus.RINGING)
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    store.save_call(call)
    store.save_call(call)  # nothing changed: nothing written
    call.status, call.answer_time = CallStatus.IN_PROGRESS, T0
    store.save_call(call)
    call.status, call.end_time, call.duration = CallStatus.COMPLETED, T0 + dt.timedelta(seconds=3), 3
    store.save_call(call)
    store.save_call(call)  # a terminal row is written whole again (nothing is kept of an ended call)
    store._db.set_trace_callback(None)
    assert [" ".join(s.split()[:2]) for s in statements] == ["INSERT OR", "UPDATE calls", "UPDATE calls", "INSERT OR"]
    assert statements[1].startswith('UPDATE calls SET "status" = \'in-progress\', "answer_time" = ')
    assert store.get_call(call.sid) == call
    store.commit()
    con = sqlite3.connect(db_path)
    try:
        assert con.execute("SELECT status, duration FROM calls WHERE sid = ?", (call.sid,)).fetchall() == \
            [("completed", 3)]
    finally:
        con.close()
    again = make_call(7, status=CallStatus.RINGING)
    store.save_call(again)
    store.delete_call(again.sid)
    store.save_call(again)
    assert store.get_call(again.sid) == again


def test_delete_call(store: Store) -> None:
    call = make_call(5)
    store.save_call(call)
    store.add_event(call.sid, "status", "completed")
    store.delete_call(call.sid)
    assert store.get_call(call.sid) is None
    assert store.events(call.sid) == []


# -- list_calls -------------------------------------------------------------------------------


@pytest.fixture
def populated(store: Store) -> Store:
    parent = make_call(0, to="sip:ivr@example.com", status=CallStatus.IN_PROGRESS,
                       start_time=dt.datetime(2024, 3, 10, 23, 59, tzinfo=dt.UTC))
    calls = [
        parent,
        make_call(1, to="+15550101", status=CallStatus.BUSY,
                  start_time=dt.datetime(2024, 3, 9, 8, 0, tzinfo=dt.UTC)),
        make_call(2, to="+15550101", from_="+15550200", status=CallStatus.COMPLETED,
                  start_time=dt.datetime(2024, 3, 11, 0, 0, 1, tzinfo=dt.UTC),
                  end_time=dt.datetime(2024, 3, 11, 0, 5, tzinfo=dt.UTC)),
        make_call(3, parent_call_sid=parent.sid, direction=Direction.OUTBOUND_DIAL,
                  status=CallStatus.RINGING, start_time=dt.datetime(2024, 3, 10, 0, 0, tzinfo=dt.UTC)),
        make_call(4, parent_call_sid=parent.sid, direction=Direction.OUTBOUND_DIAL,
                  status=CallStatus.NO_ANSWER, start_time=dt.datetime(2024, 3, 12, 9, 0, tzinfo=dt.UTC),
                  end_time=dt.datetime(2024, 3, 12, 9, 1, tzinfo=dt.UTC)),
        make_call(5, status=CallStatus.QUEUED),  # never started: no start_time
        make_call(6, account_sid=OTHER_ACCOUNT, to="+15550101"),
    ]
    for call in reversed(calls):  # insertion order must not matter
        store.save_call(call)
    return store


def sids(calls: list[Call]) -> list[int]:
    return [int(c.sid[2:], 16) for c in calls]


def listed(store: Store, flt: CallFilter, offset: int = 0, limit: int = 50) -> list[int]:
    return sids(store.list_calls(ACCOUNT, flt, offset, limit))


def test_list_newest_first_and_account_scoped(populated: Store) -> None:
    assert listed(populated, CallFilter()) == [5, 4, 3, 2, 1, 0]
    assert sids(populated.list_calls(OTHER_ACCOUNT, CallFilter(), 0, 50)) == [6]
    assert populated.list_calls("AC" + "c" * 32, CallFilter(), 0, 50) == []


def test_list_paging(populated: Store) -> None:
    assert listed(populated, CallFilter(), 0, 2) == [5, 4]
    assert listed(populated, CallFilter(), 2, 2) == [3, 2]
    assert listed(populated, CallFilter(), 4, 2) == [1, 0]
    assert listed(populated, CallFilter(), 6, 2) == []
    assert listed(populated, CallFilter(), 5, 10) == [0]


def test_same_date_created_ordered_by_sid_desc(store: Store) -> None:
    for n in (7, 9, 8):
        store.save_call(make_call(n, date_created=T0))
    assert listed(store, CallFilter()) == [9, 8, 7]


def test_ordering_across_microsecond_precision(store: Store) -> None:
    """isoformat() drops '.000000'; ordering must still be by time."""
    store.save_call(make_call(1, date_created=T0))
    store.save_call(make_call(2, date_created=T0 + dt.timedelta(microseconds=500_000)))
    store.save_call(make_call(3, date_created=T0 + dt.timedelta(seconds=1)))
    assert listed(store, CallFilter()) == [3, 2, 1]


def test_filter_to_from(populated: Store) -> None:
    assert listed(populated, CallFilter(to="+15550101")) == [2, 1]
    assert listed(populated, CallFilter(from_="+15550200")) == [2]
    assert listed(populated, CallFilter(to="+15550101", from_="+15550199")) == [1]
    assert listed(populated, CallFilter(to="+19999999")) == []


def test_filter_status(populated: Store) -> None:
    assert listed(populated, CallFilter(status=CallStatus.BUSY)) == [1]
    assert listed(populated, CallFilter(status=CallStatus.IN_PROGRESS)) == [0]
    assert listed(populated, CallFilter(status=CallStatus.FAILED)) == []


def test_filter_parent(populated: Store) -> None:
    parent_sid = f"CA{0:032x}"
    assert listed(populated, CallFilter(parent_call_sid=parent_sid)) == [4, 3]
    assert listed(populated, CallFilter(parent_call_sid=parent_sid, status=CallStatus.RINGING)) == [3]


def at(day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0) -> dt.datetime:
    return dt.datetime(2024, 3, day, hour, minute, second, micro, tzinfo=dt.UTC)


def test_filter_start_time(populated: Store) -> None:
    # A day as the half-open range the edge makes of StartTime=2024-03-10.
    assert listed(populated, CallFilter(start_time_after=at(10), start_time_before=at(11))) == [3, 0]
    assert listed(populated, CallFilter(start_time_before=at(10))) == [1]  # call 3 starts at midnight itself
    assert listed(populated, CallFilter(start_time_after=at(10))) == [4, 3, 2, 0]
    # To the second and below: before and after a moment inside a day split that day.
    assert listed(populated, CallFilter(start_time_after=at(10, 23, 59))) == [4, 2, 0]
    assert listed(populated, CallFilter(start_time_before=at(10, 23, 59))) == [3, 1]
    assert listed(populated, CallFilter(start_time_after=at(11, 0, 0, 1))) == [4, 2]
    assert listed(populated, CallFilter(start_time_after=at(11, 0, 0, 1, 1))) == [4]
    assert listed(populated, CallFilter(start_time_after=at(1), start_time_before=at(2))) == []


def test_filter_end_time(populated: Store) -> None:
    assert listed(populated, CallFilter(end_time_after=at(12), end_time_before=at(13))) == [4]
    assert listed(populated, CallFilter(end_time_before=at(11, 0, 5))) == []
    assert listed(populated, CallFilter(end_time_before=at(11, 0, 5, 0, 1))) == [2]
    assert listed(populated, CallFilter(end_time_after=at(11, 0, 5))) == [4, 2]
    assert listed(populated, CallFilter(end_time_after=at(11, 0, 5, 0, 1))) == [4]


def test_filter_bounds_in_other_zones_and_naive(populated: Store) -> None:
    """A bound is a moment: another zone's wall time, or a naive one taken as UTC, compares as that moment."""
    ist = dt.timezone(dt.timedelta(hours=5, minutes=30))
    assert listed(populated, CallFilter(start_time_after=dt.datetime(2024, 3, 11, 5, 29, tzinfo=ist))) == [4, 2, 0]
    assert listed(populated, CallFilter(start_time_before=dt.datetime(2024, 3, 10, 23, 59))) == [3, 1]


def test_filter_with_paging(populated: Store) -> None:
    flt = CallFilter(start_time_after=at(10))
    assert listed(populated, flt, 1, 2) == [3, 2]


# -- keyset paging ------------------------------------------------------------------------------


def key(call: Call) -> PageKey:
    return PageKey(call.date_created, call.sid)


def walk(store: Store, size: int, between: Any = None, flt: CallFilter | None = None) -> list[list[int]]:
    """Every page of the list, following the last record's key; `between(n)` runs after page n."""
    pages: list[list[int]] = []
    cursor: Cursor | None = None
    while True:
        found = store.list_calls(ACCOUNT, flt or CallFilter(), 0, size + 1, cursor)
        pages.append(sids(found[:size]))
        if between is not None:
            between(len(pages))
        if len(found) <= size:
            return pages
        cursor = Cursor(key(found[size - 1]))


def test_cursor_pages_every_call_once(store: Store) -> None:
    for n in range(7):
        store.save_call(make_call(n))
    assert walk(store, 3) == [[6, 5, 4], [3, 2, 1], [0]]
    assert walk(store, 7) == [[6, 5, 4, 3, 2, 1, 0]]
    assert walk(store, 2, flt=CallFilter(to="+15550100")) == [[6, 5], [4, 3], [2, 1], [0]]


def test_cursor_ignores_calls_created_between_pages(store: Store) -> None:
    for n in range(6):
        store.save_call(make_call(n))
    # A new call (newest of all) after the first page neither repeats a call nor shifts the next page.
    assert walk(store, 2, lambda page: store.save_call(make_call(10 + page))) == [[5, 4], [3, 2], [1, 0]]
    assert sids(store.list_calls(ACCOUNT, CallFilter(), 0, 4)) == [13, 12, 11, 5]


def test_cursor_skips_nothing_when_calls_are_deleted_between_pages(store: Store) -> None:
    for n in range(8):
        store.save_call(make_call(n))
    gone = {1: [7, 6], 2: [4]}  # after page 1, delete the whole of it; after page 2, its last call (the cursor)

    def delete(page: int) -> None:
        for n in gone.get(page, []):
            store.delete_call(f"CA{n:032x}")

    assert walk(store, 2, delete) == [[7, 6], [5, 4], [3, 2], [1, 0]]


def test_cursor_backward_and_ties(store: Store) -> None:
    for n in (1, 2, 3):
        store.save_call(make_call(n, date_created=T0))  # one instant: the SID breaks the tie
    for n in (4, 5):
        store.save_call(make_call(n))
    calls = store.list_calls(ACCOUNT, CallFilter(), 0, 10)
    assert sids(calls) == [5, 4, 3, 2, 1]
    after_4 = store.list_calls(ACCOUNT, CallFilter(), 0, 2, Cursor(key(calls[1])))
    assert sids(after_4) == [3, 2]
    after_3 = store.list_calls(ACCOUNT, CallFilter(), 0, 10, Cursor(key(calls[2])))
    assert sids(after_3) == [2, 1]
    # Backward: the records before the key, nearest last, in list order.
    before_2 = store.list_calls(ACCOUNT, CallFilter(), 0, 2, Cursor(key(calls[3]), backward=True))
    assert sids(before_2) == [4, 3]
    assert sids(store.list_calls(ACCOUNT, CallFilter(), 0, 10, Cursor(key(calls[3]), backward=True))) == [5, 4, 3]
    assert store.list_calls(ACCOUNT, CallFilter(), 0, 10, Cursor(key(calls[0]), backward=True)) == []
    # The offset is ignored once there is a cursor.
    assert sids(store.list_calls(ACCOUNT, CallFilter(), 5, 2, Cursor(key(calls[1])))) == [3, 2]


def test_live_calls(populated: Store) -> None:
    live = populated.live_calls()
    assert sids(live) == [0, 3, 5]  # oldest first, any account
    assert all(not c.terminal for c in live)


# -- events -----------------------------------------------------------------------------------


def test_events_in_order(store: Store) -> None:
    sid, other = new_sid("CA"), new_sid("CA")
    before = dt.datetime.now(dt.UTC)
    store.add_event(sid, "sip", "INVITE sent")
    store.add_event(other, "status", "ringing")
    store.add_event(sid, "sip", "180 Ringing", 180)
    store.add_event(sid, "status", "in-progress")
    store.add_event(sid, "error", "media failed", None)
    after = dt.datetime.now(dt.UTC)
    events = store.events(sid)
    assert [(e.call_sid, e.kind, e.detail, e.sip_code) for e in events] == [
        (sid, "sip", "INVITE sent", None),
        (sid, "sip", "180 Ringing", 180),
        (sid, "status", "in-progress", None),
        (sid, "error", "media failed", None),
    ]
    assert all(isinstance(e, CallEvent) for e in events)
    assert all(before <= e.at <= after for e in events)
    assert [e.at for e in events] == sorted(e.at for e in events)
    assert [e.detail for e in store.events(other)] == ["ringing"]
    assert store.events(new_sid("CA")) == []


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


def test_ensure_account_is_idempotent(store: Store, db_path: Path) -> None:
    store.ensure_account(ACCOUNT, "t1")
    store.ensure_account(ACCOUNT, "t2")
    con = sqlite3.connect(db_path)
    try:
        rows = con.execute("SELECT sid, auth_token FROM accounts").fetchall()
    finally:
        con.close()
    assert rows == [(ACCOUNT, "t2")]


def test_persistence_across_reopen(db_path: Path) -> None:
    first = Store(db_path)
    call = full_call()
    first.save_call(call)
    first.save_call(make_call(1, status=CallStatus.RINGING))
    first.add_event(call.sid, "status", "in-progress")
    kept = first.add_webhook(call.sid, "http://x/s", "POST", [("A", "1")])
    done = first.add_webhook(call.sid, "http://x/s", "POST", [("A", "2")])
    first.webhook_done(done, True, 1, None)
    first.close()

    second = Store(db_path)  # re-running the schema must not drop anything
    try:
        assert second.get_call(call.sid) == call
        assert sids(second.list_calls(ACCOUNT, CallFilter(), 0, 10))[0] == 1
        assert {c.sid for c in second.live_calls()} == {call.sid, f"CA{1:032x}"}
        assert [e.detail for e in second.events(call.sid)] == ["in-progress"]
        assert [(p.id, p.params) for p in second.pending_webhooks()] == [(kept, [("A", "1")])]
        assert second.count_webhooks(call.sid, "http://x/s") == 2
        assert second.add_webhook(call.sid, "http://x/s", "POST", []) > done
    finally:
        second.close()


def test_concurrent_threads(store: Store) -> None:
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(30):
                call = make_call(t * 100 + i)
                store.save_call(call)
                store.add_event(call.sid, "status", "x")
                assert store.get_call(call.sid) == call
                store.list_calls(ACCOUNT, CallFilter(), 0, 20)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(10)
    assert errors == []
    assert len(store.list_calls(ACCOUNT, CallFilter(), 0, 1000)) == 120
