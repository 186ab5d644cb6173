"""Calls for the store's tests (test_store*.py): numbered calls at known times, and their numbers back."""

from __future__ import annotations

import datetime as dt
from typing import Any

from switch.core.model import Call, Direction
from switch.core.status import CallStatus

ACCOUNT = "AC" + "a" * 32
T0 = dt.datetime(2024, 3, 10, 12, 0, 0, tzinfo=dt.UTC)


def make_call(n: int, **overrides: Any) -> Call:
    """Call number `n`, created `n` minutes after T0 (so a higher n is newer)."""
    fields: dict[str, Any] = {
        "sid": f"CA{n:032x}",
        "account_sid": ACCOUNT,
        "to": "+15550100",
        "from_": "+15550199",
        "direction": Direction.OUTBOUND_API,
        "status": CallStatus.COMPLETED,
        "date_created": T0 + dt.timedelta(minutes=n),
        "date_updated": T0 + dt.timedelta(minutes=n, seconds=1),
    }
    fields.update(overrides)
    return Call(**fields)


def sids(calls: list[Call]) -> list[int]:
    return [int(c.sid[2:], 16) for c in calls]
