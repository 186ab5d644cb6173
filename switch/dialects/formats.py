"""Formats the Twilio-family dialects (Twilio, Conversations) share when they render call events."""

from __future__ import annotations

import datetime as dt

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def rfc2822(value: dt.datetime) -> str:
    """Twilio's callback date format: `Tue, 31 Aug 2010 20:36:28 +0000` (English names whatever the locale;
    written out here: email.utils takes ~3x as long, and every callback has one)."""
    t = value.astimezone(dt.UTC)
    return (f"{_DAYS[t.weekday()]}, {t.day:02d} {_MONTHS[t.month - 1]} {t.year:04d} "
            f"{t.hour:02d}:{t.minute:02d}:{t.second:02d} +0000")
