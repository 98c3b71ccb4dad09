"""Local times without a year or an offset, as BSD syslog writes them."""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, timedelta, tzinfo

MONTHS = {
    name: i
    for i, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
_NS = 1_000_000_000
_EPOCH_DAY = date(1970, 1, 1).toordinal()


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
    days = date(year, month, day).toordinal() - _EPOCH_DAY  # ValueError for a bad date
    secs = days * 86_400 + hour * 3600 + minute * 60 + second
    if tz is not None and tz is not UTC:
        offset = tz.utcoffset(datetime(year, month, day, hour, minute, second)) or timedelta(0)
        secs -= int(offset.total_seconds())
    return secs * _NS + (int(frac.ljust(9, "0")[:9]) if frac else 0)


def infer_year(month: int, day: int, received_ns: int, tz: tzinfo | None = None) -> int:
    """The year of a date written without one, given when the message was received.

    The year of reception, unless that puts the date more than a day in the future (a
    December message received in January): then the year before. A 29 February goes back
    to the latest leap year.
    """
    # Cached by the minute of reception: a burst of messages asks the same question.
    return _infer_year(month, day, received_ns // (60 * _NS), tz)


@functools.lru_cache(maxsize=1024)
def _infer_year(month: int, day: int, received_min: int, tz: tzinfo | None) -> int:
    now = datetime.fromtimestamp(received_min * 60, tz or UTC)
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
