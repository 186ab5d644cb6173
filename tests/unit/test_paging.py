"""Keyset paging without a database: PageTokens to cursors and back, and `select_page` (the in-memory lists')."""

from __future__ import annotations

import datetime as dt

import pytest
from multidict import MultiDict

from switch.core.errors import InvalidArgument
from switch.core.paging import Cursor, PageKey, select_page
from switch.dialects.forms import PageRequest, cut_page, page_token, parse_page_request

T0 = dt.datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)


def request(**params: str) -> PageRequest:
    return parse_page_request(MultiDict(params))


def test_tokens_round_trip_to_the_microsecond() -> None:
    key = PageKey(T0, "CA" + "f" * 32)
    token = page_token(Cursor(key))
    assert token == f"PACA{'f' * 32}-{int(T0.timestamp()) * 1_000_000 + 123456}"
    assert request(PageToken=token, Page="3", PageSize="10") == PageRequest(3, 10, 30, Cursor(key), token)
    back = page_token(Cursor(key, backward=True))
    assert back.startswith("PB") and request(PageToken=back).cursor == Cursor(key, backward=True)
    naive = page_token(Cursor(PageKey(T0.replace(tzinfo=None), "CA1")))  # naive times are UTC
    assert request(PageToken=naive).cursor == Cursor(PageKey(T0, "CA1"))


def test_offset_tokens_and_pages_still_page_by_offset() -> None:
    assert request(PageToken="PT40", PageSize="20") == PageRequest(2, 20, 40, None, "PT40")
    assert request(Page="2", PageSize="20") == PageRequest(2, 20, 40)


@pytest.mark.parametrize("token", ["PAxyz", "PACA1", "PACA1-", "PCCA1-5", "PAca1-5", "PACA1-99999999999999999999",
                                   "PACA1-9999999999999999999"])
def test_bad_tokens(token: str) -> None:
    with pytest.raises(InvalidArgument):
        request(PageToken=token)


KEYS = [PageKey(T0, "NO3"), PageKey(T0, "NO1"), PageKey(T0 + dt.timedelta(seconds=1), "NO0"),
        PageKey(T0 - dt.timedelta(seconds=1), "NO9"), PageKey(T0, "NO2")]
OLDEST_FIRST = ["NO9", "NO1", "NO2", "NO3", "NO0"]


def page(cursor: Cursor | None, limit: int, descending: bool = False, offset: int = 0) -> list[str]:
    return [k.sid for k in select_page(KEYS, lambda k: k, descending, cursor, offset, limit)]


def test_select_page_orders_by_time_then_sid() -> None:
    assert page(None, 10) == OLDEST_FIRST
    assert page(None, 10, descending=True) == OLDEST_FIRST[::-1]
    assert page(None, 2, offset=1) == ["NO1", "NO2"]


def test_select_page_follows_the_cursor_either_way() -> None:
    at_no1 = PageKey(T0, "NO1")
    assert page(Cursor(at_no1), 2) == ["NO2", "NO3"]
    assert page(Cursor(at_no1, backward=True), 2) == ["NO9"]
    assert page(Cursor(at_no1), 2, descending=True) == ["NO9"]
    assert page(Cursor(at_no1, backward=True), 2, descending=True) == ["NO3", "NO2"]
    gone = PageKey(T0, "NO25")  # a deleted record's key still places the page
    assert page(Cursor(gone), 10) == ["NO3", "NO0"]
    assert page(Cursor(gone), 10, offset=3) == ["NO3", "NO0"]  # the offset is ignored with a cursor


def test_cut_page_reads_the_extra_record() -> None:
    keys = [PageKey(T0, f"NO{n}") for n in range(4)]
    forward = cut_page(keys[:3], PageRequest(1, 2, 2, Cursor(keys[0]), "x"), lambda k: k)
    assert (forward.items, forward.has_next, forward.has_previous) == (keys[:2], True, True)
    assert (forward.first, forward.last) == (keys[0], keys[1])
    backward = cut_page(keys[:3], PageRequest(0, 2, 0, Cursor(keys[3], backward=True), "x"), lambda k: k)
    assert (backward.items, backward.has_next, backward.has_previous) == (keys[1:3], True, True)
    empty = cut_page([], PageRequest(0, 2, 0), lambda k: k)
    assert (empty.items, empty.has_next, empty.has_previous, empty.first) == ([], False, False, None)
