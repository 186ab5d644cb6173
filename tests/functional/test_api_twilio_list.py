"""Functional tests of the Twilio Calls API, driven by the official `twilio` client: listing calls, with its
filters, paging (through the client and by hand) and the list envelope (the setup is in twilio_api.py and
conftest.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from twilio.rest import Client

from switch.core.model import Call, Direction, new_sid
from switch.core.status import CallStatus
from tests.functional.fake_service import FakeCallService
from tests.functional.twilio_api import CALL_FIELDS, Http, create

LIST_FIELDS = {
    "calls", "uri", "first_page_uri", "next_page_uri", "previous_page_uri",
    "page", "page_size", "start", "end",
}  # fmt: skip


# --- list ------------------------------------------------------------------------------------------------


def test_list_filters(client: Client, service: FakeCallService) -> None:
    early = dt.datetime(2026, 1, 10, 12, 0, tzinfo=dt.UTC)
    late = dt.datetime(2026, 2, 20, 12, 0, tzinfo=dt.UTC)
    a = create(client, to="+14155550001").sid
    b = create(client, to="+14155550002").sid
    c = create(client, to="+14155550002").sid
    service.advance(a, CallStatus.RINGING, at=early)
    service.advance(b, CallStatus.RINGING, at=late)
    service.advance(b, CallStatus.BUSY, at=late)
    child = service.add(
        Call(
            sid=new_sid("CA"),
            account_sid=service.account_sid,
            to="sip:bob@127.0.0.1",
            from_="+14155550001",
            direction=Direction.OUTBOUND_DIAL,
            status=CallStatus.RINGING,
            parent_call_sid=a,
            start_time=early,
        )
    )

    def sids(**kwargs: Any) -> list[str | None]:
        return [call.sid for call in client.calls.list(**kwargs)]

    assert sids() == [child.sid, c, b, a]
    assert sids(to="+14155550002") == [c, b]
    assert sids(from_="+14155550001") == [child.sid]
    assert sids(status="busy") == [b]
    assert sids(status="queued") == [c]
    assert sids(parent_call_sid=a) == [child.sid]
    assert sids(start_time=dt.date(2026, 1, 10)) == [child.sid, a]
    assert sids(start_time_after=dt.date(2026, 2, 1)) == [b]
    assert sids(start_time_before=dt.date(2026, 2, 1)) == [child.sid, a]
    assert sids(start_time_after=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), to="+14155550001") == [a]
    assert sids(end_time=dt.date(2026, 2, 20)) == [b]
    assert sids(end_time_before=dt.date(2026, 2, 1)) == []
    assert sids(status="completed") == []


def test_paging_returns_every_call_once(client: Client, service: FakeCallService) -> None:
    sids = [create(client, to=f"+1415555{i:04d}").sid for i in range(7)]
    newest_first = sids[::-1]
    assert [c.sid for c in client.calls.list(page_size=2)] == newest_first
    assert [c.sid for c in client.calls.stream(page_size=3)] == newest_first
    assert [c.sid for c in client.calls.list(limit=3, page_size=2)] == newest_first[:3]
    assert [c.sid for c in client.calls.list(page_size=1000)] == newest_first

    # Filters survive into next_page_uri.
    for sid in sids[:5]:
        service.advance(sid, CallStatus.RINGING)
    assert [c.sid for c in client.calls.list(status="ringing", page_size=2)] == sids[:5][::-1]

    # Walk pages forward and back by hand.
    page = client.calls.page(page_size=3)
    assert [c.sid for c in page] == newest_first[:3]
    page2 = page.next_page()
    assert page2 is not None and [c.sid for c in page2] == newest_first[3:6]
    back = page2.previous_page()
    assert back is not None and [c.sid for c in back] == newest_first[:3]
    page3 = page2.next_page()
    assert page3 is not None and [c.sid for c in page3] == newest_first[6:]
    assert page3.next_page() is None


def test_list_envelope(http: Http, client: Client, service: FakeCallService) -> None:
    for _ in range(5):
        create(client)
    newest_first = sorted(service.calls.values(), key=lambda c: (c.date_created, c.sid), reverse=True)

    def token(prefix: str, n: int) -> str:
        """The cursor of the n-th call newest first: its SID and date_created in µs since the epoch."""
        call = newest_first[n]
        return f"{prefix}{call.sid}-{int(call.date_created.timestamp() * 1_000_000)}"

    path = f"/2010-04-01/Accounts/{service.account_sid}/Calls.json"
    body = http("GET", "/Calls.json", params={"PageSize": "2", "To": "+14155551212"}).json()
    assert set(body) == LIST_FIELDS
    assert (body["page"], body["page_size"], body["start"], body["end"]) == (0, 2, 0, 1)
    assert body["uri"] == body["first_page_uri"] == f"{path}?To=%2B14155551212&PageSize=2&Page=0"
    assert body["previous_page_uri"] is None
    assert body["next_page_uri"] == f"{path}?To=%2B14155551212&PageSize=2&Page=1&PageToken={token('PA', 1)}"
    assert all(set(c) == CALL_FIELDS for c in body["calls"])

    second = http("GET", "/Calls.json", params={"PageSize": "2", "Page": "1", "PageToken": token("PA", 1)}).json()
    assert [c["sid"] for c in second["calls"]] == [newest_first[2].sid, newest_first[3].sid]
    assert (second["page"], second["start"], second["end"]) == (1, 2, 3)
    assert second["uri"] == f"{path}?PageSize=2&Page=1&PageToken={token('PA', 1)}"
    assert second["previous_page_uri"] == f"{path}?PageSize=2&Page=0&PageToken={token('PB', 2)}"
    assert second["next_page_uri"] == f"{path}?PageSize=2&Page=2&PageToken={token('PA', 3)}"

    last = http("GET", "/Calls.json", params={"PageSize": "2", "Page": "2", "PageToken": token("PA", 3)}).json()
    assert (last["page"], last["start"], last["end"], len(last["calls"])) == (2, 4, 4, 1)
    assert last["next_page_uri"] is None
    assert last["previous_page_uri"] == f"{path}?PageSize=2&Page=1&PageToken={token('PB', 4)}"
    back = http("GET", "/Calls.json", params={"PageSize": "2", "Page": "1", "PageToken": token("PB", 4)}).json()
    assert [c["sid"] for c in back["calls"]] == [newest_first[2].sid, newest_first[3].sid]
    assert back["next_page_uri"] == second["next_page_uri"]
    assert back["previous_page_uri"] == second["previous_page_uri"]

    # Offset tokens from older next_page_uris still work.
    old = http("GET", "/Calls.json", params={"PageSize": "2", "Page": "2", "PageToken": "PT4"}).json()
    assert [c["sid"] for c in old["calls"]] == [newest_first[4].sid]
    assert (old["page"], old["start"], old["next_page_uri"]) == (2, 4, None)

    default = http("GET", "/Calls.json").json()
    assert default["page_size"] == 50 and len(default["calls"]) == 5 and default["next_page_uri"] is None
    assert http("GET", "/Calls.json", params={"PageSize": "5000"}).json()["page_size"] == 1000

    empty = http("GET", "/Calls.json", params={"To": "+10000000000"}).json()
    assert (empty["calls"], empty["start"], empty["end"], empty["next_page_uri"]) == ([], 0, 0, None)


@pytest.mark.parametrize(
    "params",
    [
        {"Status": "bogus"},
        {"StartTime>": "yesterday"},
        {"EndTime": "2026-13-01"},
        {"PageSize": "0"},
        {"PageSize": "two"},
        {"Page": "-1"},
        {"PageToken": "PAxyz"},
        {"PageToken": "PACA123"},
        {"PageToken": "PXCA123-5"},
        {"PageToken": "PACA123-9999999999999999999"},
    ],
)
def test_list_rejects_bad_parameters(http: Http, params: dict[str, str]) -> None:
    resp = http("GET", "/Calls.json", params=params)
    assert resp.status_code == 400
    assert resp.json()["code"] == 20001
