"""Local times without a year or an offset, as BSD syslog writes them."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta, tzinfo

MONTHS = {
    name: i
    for i, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
_NS = 1_000_000_000


def local_to_ns(
    year: int,
    month: int,
    day: int,
    hour: int,
    minute: int,
    second: int,
    frac: str = "",
    tz: tzinfo | None = None,
) -> int:
    """Nanoseconds since the epoch of a wall-clock time in ``tz`` (UTC when None).

    ``ValueError`` for an impossible date or time.
    """
    if hour > 23 or minute > 59 or second > 60:
        raise ValueError("invalid time of day")
    second = min(second, 59)  # a leap second is read as :59
    naive = datetime(year, month, day, hour, minute, second)
    offset = (tz or UTC).utcoffset(naive) or timedelta(0)
    secs = calendar.timegm(naive.timetuple()) - int(offset.total_seconds())
    return secs * _NS + (int(frac.ljust(9, "0")[:9]) if frac else 0)


def infer_year(month: int, day: int, received_ns: int, tz: tzinfo | None = None) -> int:
    """The year of a date written without one, given when the message was received.

    The year of reception, unless that puts the date more than a day in the future (a
    December message received in January): then the year before. A 29 February goes back
    to the latest leap year.
    """
    now = datetime.fromtimestamp(received_ns / _NS, tz or UTC)
    latest = now + timedelta(days=1)  # allow the sender's clock to run a little ahead
    year = now.year
    for _ in range(8):
        try:
            candidate = datetime(year, month, day, tzinfo=now.tzinfo)
        except ValueError:  # 29 February outside a leap year
            year -= 1
            continue
        if candidate <= latest:
            return year
        year -= 1
    raise ValueError(f"no year fits month {month} day {day}")
