"""switch.dialects.formats.rfc2822 writes the date as email.utils does, whatever the zone it is given."""

from __future__ import annotations

import datetime as dt
import email.utils
import random

from switch.dialects.formats import rfc2822


def test_rfc2822_is_email_utils_in_utc_with_plus_zero() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        moment = dt.datetime(1990, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=rng.randint(0, 2**31),
                                                                        microseconds=rng.randint(0, 999_999))
        zone = dt.timezone(dt.timedelta(minutes=rng.randint(-12 * 60, 14 * 60)))
        expected = email.utils.format_datetime(moment).replace("-0000", "+0000")
        assert rfc2822(moment.astimezone(zone)) == expected
    assert rfc2822(dt.datetime(2010, 8, 31, 20, 36, 28, tzinfo=dt.UTC)) == "Tue, 31 Aug 2010 20:36:28 +0000"
