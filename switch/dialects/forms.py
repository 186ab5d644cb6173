"""Reading REST requests the way every dialect here does: form fields, addresses, URLs and pages.

Shared by the Twilio, Conversations and Exotel dialects (which must not import each other).  Failures are the
core's neutral `InvalidArgument`; each dialect's error middleware renders it with its own status body and code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web
from multidict import MultiDict, MultiMapping

from switch.core.errors import InvalidArgument, Problem

MAX_ADDRESS = 512
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000

_PHONE = re.compile(r"\+?[0-9]{3,15}")
_SIP = re.compile(r"sips?:[^\s<>\"]+", re.IGNORECASE)
_CLIENT = re.compile(r"client:[A-Za-z0-9_.@+\-]{1,256}")
_INTEGER = re.compile(r"-?[0-9]{1,9}")
_PAGE_TOKEN = re.compile(r"PT([0-9]{1,12})")


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
    """Which slice of a list to return: `page` is the page number, `offset` the first record."""

    page: int
    page_size: int
    offset: int


def parse_page_request(params: MultiMapping[str]) -> PageRequest:
    """PageSize (default 50, at most 1000), Page and PageToken (`PT<offset>`, which wins over Page)."""
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
    match = _PAGE_TOKEN.fullmatch(token)
    if match is None:
        raise InvalidArgument(f"Invalid PageToken {token!r}")
    offset = int(match.group(1))
    if page is None:
        page = offset // page_size
    return PageRequest(page=page, page_size=page_size, offset=offset)
