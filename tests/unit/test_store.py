"""Unit tests of the SQLite store (`switch.core.store`): a call's row (round trips, saves, deletion), call events,
accounts, reopening a database, and threads.  Listing calls is in test_store_list.py, the webhooks table in
test_store_webhooks.py, the group commit and changed-column writes in test_store_writes.py."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3
import threading
from pathlib import Path

import pytest

from switch.core.model import Call, CallbackEvent, Direction, new_sid
from switch.core.service import CallFilter
from switch.core.status import CallStatus
from switch.core.store import CallEvent, Store
from tests.unit.store_calls import (
    ACCOUNT,
    T0,
    make_call as make_call,  # re-exported: test_store_writes imports it from here
    sids,
)


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


# -- accounts, reopening, threads -------------------------------------------------------------


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
