"""Reading REST requests the way every dialect here does: form fields, addresses, URLs and pages.

Shared by the Twilio, Conversations and Exotel dialects (which must not import each other).  Failures are the
core's neutral `InvalidArgument`; each dialect's error middleware renders it with its own status body and code.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import urlsplit

from aiohttp import web
from multidict import MultiDict, MultiMapping

from switch.core.errors import InvalidArgument, Problem
from switch.core.paging import Cursor, PageKey

MAX_ADDRESS = 512
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000

_PHONE = re.compile(r"\+?[0-9]{3,15}")
_SIP = re.compile(r"sips?:[^\s<>\"]+", re.IGNORECASE)
_CLIENT = re.compile(r"client:[A-Za-z0-9_.@+\-]{1,256}")
_INTEGER = re.compile(r"-?[0-9]{1,9}")
_OFFSET_TOKEN = re.compile(r"PT([0-9]{1,12})")
_CURSOR_TOKEN = re.compile(r"P([AB])([A-Z]{2}[0-9A-Za-z]{1,64})-([0-9]{1,19})")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
T = TypeVar("T")


async def read_form(request: web.Request) -> MultiMapping[str]:
    """The form body's text fields (files, which no dialect here takes, are dropped)."""
    body = await request.post()
    return MultiDict((k, v) for k, v in body.items() if isinstance(v, str))


def get_param(params: MultiMapping[str], name: str, strip: bool = True) -> str | None:
    """A parameter's value; None when it is missing or empty (after stripping, unless `strip` is off)."""
    value = params.get(name)
    if value is None:
        return None
    if strip:
        value = value.strip()
    return value or None


def is_address(value: str) -> bool:
    """A phone number (E.164-ish), a `sip:`/`sips:` URI or a `client:` identity."""
    return len(value) <= MAX_ADDRESS and any(p.fullmatch(value) for p in (_PHONE, _SIP, _CLIENT))


def parse_url(params: MultiMapping[str], name: str) -> str | None:
    """An absolute http(s) URL parameter, None when absent."""
    value = get_param(params, name)
    if value is None:
        return None
    try:
        parts = urlsplit(value)
        valid = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. a malformed IPv6 host or port
        valid = False
    if not valid:
        raise InvalidArgument(f"{name} must be an absolute http(s) URL, not {value!r}", Problem.INVALID_URL)
    return value


def parse_int(params: MultiMapping[str], name: str) -> int | None:
    """An integer parameter, None when absent."""
    value = get_param(params, name)
    if value is None:
        return None
    if not _INTEGER.fullmatch(value):
        raise InvalidArgument(f"{name} must be an integer, not {value!r}")
    return int(value)


@dataclass(frozen=True)
class PageRequest:
    """Which slice of a list to return.

    `page` is the page number (for the envelope only).  A `cursor` (from a `PA`/`PB` PageToken) says where the
    page is; without one, `offset` is the first record (`Page` alone, or a `PT<offset>` token from older URIs).
    With a cursor, `offset` is `page * page_size`, the envelope's `start`.  `token` is the PageToken as given.
    """

    page: int
    page_size: int
    offset: int
    cursor: Cursor | None = None
    token: str | None = None


def page_token(cursor: Cursor) -> str:
    """A cursor as a PageToken: `PA` (the records after) or `PB` (before), the key's SID, `-`, and its
    date_created in microseconds since the epoch: `PACA0123...-1767225600123456`."""
    moment = cursor.key.date_created
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    micros = (moment - _EPOCH) // dt.timedelta(microseconds=1)
    return f"P{'B' if cursor.backward else 'A'}{cursor.key.sid}-{micros}"


def _parse_token(token: str) -> tuple[int | None, Cursor | None]:
    """(offset, cursor) of a PageToken; InvalidArgument for anything else."""
    offset = _OFFSET_TOKEN.fullmatch(token)
    if offset is not None:
        return int(offset.group(1)), None
    match = _CURSOR_TOKEN.fullmatch(token)
    if match is None:
        raise InvalidArgument(f"Invalid PageToken {token!r}")
    try:
        moment = _EPOCH + dt.timedelta(microseconds=int(match.group(3)))
    except OverflowError:
        raise InvalidArgument(f"Invalid PageToken {token!r}") from None
    return None, Cursor(PageKey(moment, match.group(2)), backward=match.group(1) == "B")


def parse_page_request(params: MultiMapping[str]) -> PageRequest:
    """PageSize (default 50, at most 1000), Page and PageToken (a cursor, or `PT<offset>`; it wins over Page)."""
    page_size = parse_int(params, "PageSize")
    if page_size is None:
        page_size = DEFAULT_PAGE_SIZE
    if page_size < 1:
        raise InvalidArgument(f"PageSize must be at least 1, not {page_size}")
    page_size = min(page_size, MAX_PAGE_SIZE)
    page = parse_int(params, "Page")
    if page is not None and page < 0:
        raise InvalidArgument(f"Page must not be negative, not {page}")
    token = get_param(params, "PageToken")
    if token is None:
        page = page or 0
        return PageRequest(page=page, page_size=page_size, offset=page * page_size)
    offset, cursor = _parse_token(token)
    if offset is None:
        page = page or 0
        return PageRequest(page, page_size, page * page_size, cursor, token)
    if page is None:
        page = offset // page_size
    return PageRequest(page=page, page_size=page_size, offset=offset, token=token)


@dataclass(frozen=True)
class PageSlice(Generic[T]):
    """One page cut from what a list returned for a `PageRequest` (`page_size + 1` records at most).

    `first`/`last` are the keys of the page's first and last records (None when it is empty): the cursors of the
    previous and next pages."""

    items: list[T]
    has_next: bool
    has_previous: bool
    first: PageKey | None
    last: PageKey | None


def cut_page(found: list[T], req: PageRequest, key: Callable[[T], PageKey]) -> PageSlice[T]:
    """The page in `found`, which the list returned for `req` with a limit of `page_size + 1` (list order).

    The extra record says whether there is more on the far side: after the page, or before it for a backward
    cursor (where the page that sent us back is the next one)."""
    size = req.page_size
    more = len(found) > size
    if req.cursor is not None and req.cursor.backward:
        items = found[-size:]
        has_next, has_previous = True, more
    else:
        items = found[:size]
        has_next, has_previous = more, req.page > 0 or (req.cursor is None and req.offset > 0)
    keys = [key(item) for item in items[:1] + items[-1:]]
    return PageSlice(items, has_next, has_previous, keys[0] if keys else None, keys[-1] if keys else None)
