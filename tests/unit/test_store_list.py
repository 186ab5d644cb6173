"""Unit tests of the SQLite store (`switch.core.store`): listing calls (order, filters, offset paging), keyset
paging with cursors while calls come and go, and the live calls."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from switch.core.model import Call, Direction
from switch.core.paging import Cursor, PageKey
from switch.core.service import CallFilter
from switch.core.status import CallStatus
from switch.core.store import Store
from tests.unit.store_calls import ACCOUNT, T0, make_call, sids

OTHER_ACCOUNT = "AC" + "b" * 32


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
