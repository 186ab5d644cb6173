"""Keyset paging: a list pages by where its last record sits, not by how many records came before it.

Every paged list here is ordered by `(date_created, sid)` (newest first or oldest first): both are fixed for a
record's life and the pair is unique, so it is a total order that inserts and deletes cannot shift.  A page
request carries a `Cursor`, the key of the record next to the page: "the records after this key" for the next
page, "the records before it" for the previous one.  A record created between two requests lands at its own
place in the order (before the first page of a newest-first list, so it never repeats one already listed); a
record deleted between them leaves a gap nobody counts (an offset would move every later record up by one and
skip one of them).  The cursor works even when its own record is gone, since it carries the key, not the SID
alone.

SQL lists use `keyset_sql`; lists kept in memory use `select_page`.  Both return the records in list order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, order=True)
class PageKey:
    """Where a record sits in a list: when it was created, then its SID (which breaks ties)."""

    date_created: dt.datetime
    sid: str


@dataclass(frozen=True)
class Cursor:
    """A page boundary: the records after `key` in list order, or before it when `backward` (a previous page)."""

    key: PageKey
    backward: bool = False


def within_days(moment: dt.datetime, on: dt.date | None, before: dt.date | None, after: dt.date | None) -> bool:
    """Whether `moment`'s UTC day is `on`, on or before `before`, and on or after `after` (None: any day), as
    the `DateCreated`, `DateCreated<` and `DateCreated>` filters of lists held in memory compare."""
    day = (moment.astimezone(dt.UTC) if moment.tzinfo else moment).date()
    return (on is None or day == on) and (before is None or day <= before) and (after is None or day >= after)


def stored_time(moment: dt.datetime) -> str:
    """A datetime as the store writes it (ISO 8601 in UTC, "+00:00"), so that text comparisons order by time.

    A naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).isoformat()


def keyset_sql(cursor: Cursor | None, descending: bool, created: str = "date_created",
               sid: str = "sid") -> tuple[str | None, list[Any], str]:
    """The condition (None without a cursor), its arguments and the ORDER BY clause of one page.

    `descending` is the list's order (newest first).  A backward cursor scans the other way from the key, so
    the rows come out reversed: pass them through `in_list_order`.  `created`/`sid` name the columns.
    """
    scan_descending = descending != (cursor is not None and cursor.backward)
    direction = " DESC" if scan_descending else ""
    order = f"{created}{direction}, {sid}{direction}"
    if cursor is None:
        return None, [], order
    op = "<" if scan_descending else ">"
    return f"({created}, {sid}) {op} (?, ?)", [stored_time(cursor.key.date_created), cursor.key.sid], order


def in_list_order(rows: list[T], cursor: Cursor | None) -> list[T]:
    """Rows of a `keyset_sql` query in list order (a backward scan reversed)."""
    return rows[::-1] if cursor is not None and cursor.backward else rows


def select_page(records: Iterable[T], key: Callable[[T], PageKey], descending: bool, cursor: Cursor | None,
                offset: int, limit: int) -> list[T]:
    """One page of a list kept in memory, as `keyset_sql` would select it from a table (list order).

    Without a cursor, `offset` records are skipped; with one, the `limit` records nearest to it on its side.
    """
    ordered = sorted(records, key=key, reverse=descending)
    if cursor is None:
        return ordered[offset: offset + limit]
    if descending != cursor.backward:  # the page follows the key in descending key order
        after = [r for r in ordered if key(r) < cursor.key]
    else:
        after = [r for r in ordered if key(r) > cursor.key]
    return after[-limit:] if cursor.backward else after[:limit]
