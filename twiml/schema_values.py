"""The building blocks of :mod:`twiml.schema`: an element's attribute table (:class:`ElementSpec`, :class:`Attr`)
and the generic converters that turn an attribute's text into a typed value or raise :class:`BadValue`.

Kept apart from the tables so that table modules (:mod:`twiml.schema`, :mod:`twiml.schema_callcenter`) can share
them without importing each other.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from twiml.errors import SCHEMA_VALIDATION

Convert = Callable[[str], object]


class BadValue(Exception):
    """An attribute value a converter refused; the message says what was expected."""


class Attr(NamedTuple):
    """One attribute: the dataclass field it fills, how its text is converted, Twilio's code for a bad value,
    and whether Twilio logs that at ERROR level (the document fails) rather than as a warning."""

    field: str
    convert: Convert
    code: int = SCHEMA_VALIDATION
    fatal: bool = False


@dataclass(frozen=True)
class ElementSpec:
    """The attributes an element may carry."""

    attributes: Mapping[str, Attr]
    ignored: frozenset[str] = field(default_factory=frozenset)
    required: frozenset[str] = field(default_factory=frozenset)
    error_code: int | None = None  # every attribute problem is an error with this code, not a warning


# --- converters --------------------------------------------------------------------------------------------

_INTEGER = re.compile(r"[+-]?[0-9]{1,12}")


def text(raw: str) -> str:
    """Free text, kept as written."""
    return raw


def name(raw: str) -> str:
    """A name that must not be blank (a voice, a language tag, a SID), stripped."""
    value = raw.strip()
    if not value:
        raise BadValue("expected a non-empty value")
    return value


def optional_text(raw: str) -> str | None:
    """Text stripped of surrounding whitespace; empty means not given."""
    return raw.strip() or None


def url(raw: str) -> str | None:
    """A relative or absolute URL, stripped; empty means not given (the current document for actions)."""
    return raw.strip() or None


def boolean(raw: str) -> bool:
    """``true`` or ``false``, in any case."""
    value = raw.strip().lower()
    if value == "true":
        return True
    if value == "false":
        return False
    raise BadValue("expected true or false")


def integer(minimum: int, maximum: int | None = None) -> Convert:
    """A converter for a whole number within ``minimum``..``maximum``."""
    expected = f"an integer >= {minimum}" if maximum is None else f"an integer from {minimum} to {maximum}"

    def convert(raw: str) -> int:
        value = raw.strip()
        if not _INTEGER.fullmatch(value):
            raise BadValue(f"expected {expected}")
        number = int(value)
        if number < minimum or (maximum is not None and number > maximum):
            raise BadValue(f"expected {expected}")
        return number

    return convert


def method(raw: str) -> str:
    """An HTTP method for a callback: ``GET`` or ``POST``, in any case."""
    value = raw.strip().upper()
    if value not in ("GET", "POST"):
        raise BadValue("expected GET or POST")
    return value


def choice(*allowed: str, aliases: Mapping[str, str] | None = None) -> Convert:
    """A converter for one of ``allowed`` (or an alias of one), matched case-insensitively."""
    table = dict(zip(allowed, allowed, strict=True))
    table.update(aliases or {})
    expected = "expected one of " + ", ".join((*allowed, *(aliases or {})))

    def convert(raw: str) -> str:
        value = raw.strip().lower()
        if value not in table:
            raise BadValue(expected)
        return table[value]

    return convert


def events(*allowed: str) -> Convert:
    """A converter for a space- or comma-separated list of ``allowed`` events, returned as a tuple in
    document order without repeats."""
    expected = "expected one or more of " + ", ".join(allowed)

    def convert(raw: str) -> tuple[str, ...]:
        names = [item.lower() for item in re.split(r"[\s,]+", raw.strip()) if item]
        if not names or any(item not in allowed for item in names):
            raise BadValue(expected)
        return tuple(dict.fromkeys(names))

    return convert
