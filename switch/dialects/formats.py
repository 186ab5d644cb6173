"""Formats the Twilio-family dialects (Twilio, Conversations) share when they render call events."""

from __future__ import annotations

import datetime as dt
import email.utils


def rfc2822(value: dt.datetime) -> str:
    """Twilio's callback date format: `Tue, 31 Aug 2010 20:36:28 +0000`."""
    return email.utils.format_datetime(value.astimezone(dt.UTC)).replace("-0000", "+0000")
