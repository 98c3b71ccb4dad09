"""RFC 3339 timestamps with nanosecond precision.

Python's datetime stops at microseconds, and audit sources (Kubernetes, auditd) send finer
times, so timestamps are carried as integer nanoseconds since the Unix epoch and as a
normalised UTC string: ``YYYY-MM-DDTHH:MM:SS[.fraction]Z`` with trailing zeros trimmed.
"""

from __future__ import annotations

import re
import time
from datetime import date

# [0-9], not \d: \d also matches other scripts' digits, which int() would accept.
RFC3339_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)
_FAST = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?Z")
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_NS = 1_000_000_000
_DAY_NS = 86_400 * _NS


_day_cache: dict[str, int] = {}


def parse_rfc3339(text: str) -> int:
    """Nanoseconds since the epoch for an RFC 3339 timestamp; ``ValueError`` if invalid.

    A timezone (``Z`` or an offset) is required: a time without one is ambiguous.
    """
    # Fast path for the UTC form most sources send: the day's start comes from a cache
    # (events arrive in time order, so the day is nearly always one seen a moment ago), the
    # time of day from three integers.
    n = len(text)
    if n >= 20 and text[-1] == "Z" and (n == 20 or text[19] == ".") and _FAST.fullmatch(text):
        day = _day_cache.get(text[:10])
        if day is None:
            day = _parse_slow(text[:10] + "T00:00:00Z")
            if len(_day_cache) > 4096:
                _day_cache.clear()
            _day_cache[text[:10]] = day
        h, mi, s = int(text[11:13]), int(text[14:16]), int(text[17:19])
        if h > 23 or mi > 59 or s > 59:
            raise ValueError("invalid time of day (leap seconds are not accepted)")
        ns = day + ((h * 60 + mi) * 60 + s) * _NS
        if n > 20:
            ns += int(text[20:-1].ljust(9, "0"))
        return ns
    return _parse_slow(text)


def _parse_slow(text: str) -> int:
    m = _RE.fullmatch(text)
    if m is None:
        raise ValueError("not an RFC 3339 timestamp with a timezone (e.g. 2024-05-01T12:00:00Z)")
    y, mo, d, hh, mm, ss, frac, z, sign, oh, om = m.groups()
    try:
        ordinal = date(int(y), int(mo), int(d)).toordinal()
    except ValueError as exc:
        raise ValueError(f"invalid date: {exc}") from None
    h, mi, s = int(hh), int(mm), int(ss)
    if h > 23 or mi > 59 or s > 59:
        raise ValueError("invalid time of day (leap seconds are not accepted)")
    ns = (ordinal - _EPOCH_ORDINAL) * _DAY_NS + ((h * 60 + mi) * 60 + s) * _NS
    if frac:
        ns += int(frac.ljust(9, "0"))
    if z is None:
        ohi, omi = int(oh), int(om)
        if ohi > 23 or omi > 59:
            raise ValueError("invalid timezone offset")
        offset = (ohi * 60 + omi) * 60 * _NS
        ns = ns - offset if sign == "+" else ns + offset
    return ns


def format_rfc3339(ns: int) -> str:
    """The normalised UTC form of ``ns`` nanoseconds since the epoch."""
    days, rem = divmod(ns, _DAY_NS)
    d = date.fromordinal(days + _EPOCH_ORDINAL)
    secs, frac = divmod(rem, _NS)
    h, secs = divmod(secs, 3600)
    m, s = divmod(secs, 60)
    base = f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{h:02d}:{m:02d}:{s:02d}"
    if frac:
        return f"{base}.{frac:09d}".rstrip("0") + "Z"
    return base + "Z"


def normalize_rfc3339(text: str) -> tuple[str, int]:
    """(normalised string, nanoseconds) for an RFC 3339 timestamp."""
    ns = parse_rfc3339(text)
    # The common case is already normalised; skip re-formatting it.
    if text.endswith("Z") and text[10] == "T" and not (len(text) > 20 and text[-2] == "0"):
        return text, ns
    return format_rfc3339(ns), ns


def now_ns() -> int:
    return time.time_ns()


# The one table of time bounds. Both stores keep times as signed 64-bit nanoseconds since
# the epoch (1677-09-21 to 2262-04-11), so the model refuses event times outside these whole
# years, query parameters are checked against them, and the projection clamps to them an
# out-of-range time already in a log (see docs/api.md, "Times").
MIN_TEXT = "1678-01-01T00:00:00Z"
MAX_TEXT = "2261-12-31T23:59:59.999999999Z"
MIN_NS = parse_rfc3339(MIN_TEXT)
MAX_NS = parse_rfc3339(MAX_TEXT)
RANGE_MESSAGE = f"out of range: times from {MIN_TEXT} to {MAX_TEXT} are accepted"
assert MIN_NS > -(2**63) and MAX_NS < 2**63


def in_range(ns: int) -> bool:
    """Whether ``ns`` lies within the time bounds every store holds."""
    return MIN_NS <= ns <= MAX_NS


def clamp(ns: int) -> int:
    """``ns`` moved into the time bounds (for a time committed before the bounds held)."""
    return MIN_NS if ns < MIN_NS else MAX_NS if ns > MAX_NS else ns
