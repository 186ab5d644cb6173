"""The Calls list over the real SQLite store, driven by the official `twilio` client: cursor paging while calls
are created and deleted between pages, and the time filters with the full datetimes the client sends.

The aiohttp application runs as in `test_api_twilio` (a background thread on 127.0.0.1); its service keeps calls
in a real `Store`, so the SQL of the list is what answers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from aiohttp import web
from twilio.rest import Client

from switch.core.model import Call
from switch.core.paging import Cursor
from switch.core.service import CallFilter
from switch.core.status import CallStatus
from switch.core.store import Store
from switch.dialects.errors import error_middleware
from switch.dialects.twilio.api import add_twilio_routes
from tests.functional.fake_service import FakeCallService
from tests.functional.test_api_twilio import Server, create

DAY = dt.datetime(2026, 1, 10, tzinfo=dt.UTC)


class StoredCalls(FakeCallService):
    """The fake service with its calls written to, listed from and deleted in a real `Store`."""

    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store

    def add(self, call: Call) -> Call:
        super().add(call)
        self.store.save_call(call)
        return call

    def advance(self, sid: str, status: CallStatus, at: dt.datetime | None = None) -> Call:
        call = super().advance(sid, status, at)
        self.store.save_call(call)
        return call

    def list_calls(self, flt: CallFilter, offset: int, limit: int, cursor: Cursor | None = None) -> list[Call]:
        return self.store.list_calls(self.account_sid, flt, offset, limit, cursor)

    def delete_call(self, sid: str) -> None:
        super().delete_call(sid)
        self.store.delete_call(sid)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[StoredCalls]:
    store = Store(tmp_path / "switch.db")
    yield StoredCalls(store)
    store.close()


@pytest.fixture
def client(service: StoredCalls) -> Iterator[Client]:
    app = web.Application(middlewares=[error_middleware])
    add_twilio_routes(app, service, "https://pbx.example.com/")
    with Server(app) as server:
        client = Client(service.account_sid, service.auth_token)
        client.api.base_url = server.base_url
        yield client


def end(service: StoredCalls, sid: str) -> None:
    service.advance(sid, CallStatus.FAILED)


def test_stream_sees_every_call_once_while_calls_come_and_go(client: Client, service: StoredCalls) -> None:
    made = [create(client, to=f"+1415555{i:04d}").sid for i in range(9)]
    newest_first = made[::-1]
    seen: list[str] = []
    for call in client.calls.stream(page_size=3):  # the client fetches each next page when it needs it
        seen.append(str(call.sid))
        if len(seen) == 3:  # the first page is read: two new calls, and the whole first page deleted
            create(client, to="+14155559998")
            create(client, to="+14155559999")
            for sid in seen:
                end(service, sid)
                assert client.calls(sid).delete() is True
        if len(seen) == 6:  # the second page's last call (the next cursor's own record) and a later one go
            for sid in (seen[-1], newest_first[7]):
                end(service, sid)
                client.calls(sid).delete()
    assert seen == newest_first[:7] + newest_first[8:]  # newest_first[7] was deleted before its page came


def test_pages_forward_and_back_by_hand(client: Client, service: StoredCalls) -> None:
    made = [create(client, to=f"+1415555{i:04d}").sid for i in range(7)]
    newest_first = made[::-1]
    first = client.calls.page(page_size=3)
    assert [c.sid for c in first] == newest_first[:3]
    new = create(client).sid  # newest of all: it belongs before page one, never on a later page
    second = first.next_page()
    assert second is not None and [c.sid for c in second] == newest_first[3:6]
    end(service, newest_first[1])
    client.calls(newest_first[1]).delete()
    back = second.previous_page()  # the three calls just before the second page's first, as they are now
    assert back is not None and [c.sid for c in back] == [new, newest_first[0], newest_first[2]]
    third = second.next_page()
    assert third is not None and [c.sid for c in third] == newest_first[6:]
    assert third.next_page() is None


def test_time_filters_take_the_full_datetime(client: Client, service: StoredCalls) -> None:
    morning = [create(client, to=f"+1415555{i:04d}").sid for i in range(4)]
    starts = [DAY.replace(hour=9), DAY.replace(hour=10), DAY.replace(hour=10, second=30), DAY + dt.timedelta(days=1)]
    for sid, start in zip(morning, starts, strict=True):
        service.advance(sid, CallStatus.RINGING, at=start)
        service.advance(sid, CallStatus.NO_ANSWER, at=start + dt.timedelta(minutes=1))
    a, b, c, d = morning

    def sids(**kwargs: Any) -> list[str]:
        return sorted(str(call.sid) for call in client.calls.list(**kwargs))

    moment = DAY.replace(hour=10, second=15)  # the client sends StartTime>=2026-01-10T10:00:15Z
    assert sids(start_time_after=moment) == sorted([c, d])
    assert sids(start_time_before=moment) == sorted([a, b])
    assert sids(start_time_after=DAY.replace(hour=10)) == sorted([b, c, d])  # "on or after"
    assert sids(start_time_before=DAY.replace(hour=10)) == [a]  # "before"
    assert sids(start_time_after=DAY.replace(hour=9, minute=30), start_time_before=moment) == [b]
    # Equality is "on this date": the UTC day of whatever the client sends.
    assert sids(start_time=moment) == sorted([a, b, c])
    assert sids(start_time=dt.date(2026, 1, 11)) == [d]
    assert sids(start_time=dt.date(2026, 1, 10), start_time_after=moment) == [c]
    # Dates as dates: before Jan 11 is all of Jan 10; on or after it, the rest.
    assert sids(start_time_before=dt.date(2026, 1, 11)) == sorted([a, b, c])
    assert sids(start_time_after=dt.date(2026, 1, 11)) == [d]
    assert sids(end_time_after=DAY.replace(hour=10, minute=1, second=30)) == sorted([c, d])
    assert sids(end_time_before=DAY.replace(hour=10, minute=1, second=30)) == sorted([a, b])


def test_time_filters_as_other_clients_spell_them(client: Client, service: StoredCalls) -> None:
    """The raw query strings of twilio-node (`toISOString()`), of curl users and of other zones."""
    a, b = (create(client, to=f"+1415555{i:04d}").sid for i in range(2))
    service.advance(a, CallStatus.RINGING, at=DAY.replace(hour=10))
    service.advance(b, CallStatus.RINGING, at=DAY.replace(hour=10, second=30))
    url = str(client.api.base_url)

    def listed(params: dict[str, str]) -> list[str]:
        with requests.Session() as session:
            session.trust_env = False  # never route 127.0.0.1 through a proxy from the environment
            resp = session.get(f"{url}/2010-04-01/Accounts/{service.account_sid}/Calls.json", params=params,
                               auth=(service.account_sid, service.auth_token), timeout=10)
        assert resp.status_code == 200, resp.text
        return [call["sid"] for call in resp.json()["calls"]]

    assert listed({"StartTime>": "2026-01-10T10:00:15.000Z"}) == [b]
    assert listed({"StartTime<": "2026-01-10T10:00:15.000Z"}) == [a]
    assert listed({"StartTime>": "2026-01-10T15:30:15+05:30"}) == [b]
    assert listed({"StartTime<": "2026-01-10T10:00:15"}) == [a]  # no zone: UTC
    assert listed({"StartTime": "2026-01-10"}) == [b, a]
    assert listed({"StartTime<": "2026-01-10"}) == []


def test_update_canceled_leaves_an_answered_call_alone(client: Client, service: StoredCalls) -> None:
    sid = create(client).sid
    service.advance(sid, CallStatus.IN_PROGRESS)
    call = client.calls(sid).update(status="canceled")
    assert call.status == "in-progress" and call.end_time is None
    assert client.calls(sid).fetch().status == "in-progress"
    assert client.calls(sid).update(status="completed").status == "completed"
