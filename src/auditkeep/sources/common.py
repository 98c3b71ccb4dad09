"""Helpers every source mapper shares: action segments, UTC timestamps, derived ids, IPs."""

from __future__ import annotations

import functools
import hashlib
import re
from datetime import date

from auditkeep.model.timefmt import RANGE_MESSAGE, in_range, parse_rfc3339
from auditkeep.model.validate import is_ip

__all__ = ["action_segment", "derived_id", "is_ip", "utc_rfc3339"]

_SEGMENT_BAD = re.compile(r"[^A-Za-z0-9_-]+")
# [0-9], not \d: other scripts' digits would pass int() and reach the leaf.
_TIME = re.compile(
    r"\s*([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?\s*"
    r"([Zz]|[+-][0-9]{2}:?[0-9]{2})?\s*"
)


def action_segment(text: str) -> str:
    """One dotted segment of an action name, within the model's pattern."""
    if text and _SEGMENT_BAD.search(text) is None:
        return text
    return _SEGMENT_BAD.sub("_", text).strip("_") or "unknown"


@functools.lru_cache(maxsize=4096)  # one-second resolution: a busy source repeats its times
def utc_rfc3339(text: str) -> str:
    """RFC 3339 from a source timestamp that its format documents as UTC: a time whose zone
    was lost on the way (``2024-01-01 10:00:00.38`` after some log pipelines) is read as
    UTC. ``ValueError`` if it is not a valid timestamp."""
    m = _TIME.fullmatch(text)
    if m is None:
        raise ValueError(f"not a timestamp: {text[:40]!r}")
    day, hh, mi, ss, frac, zone = m.groups()
    if not _valid_day(day) or int(hh) > 23 or int(mi) > 59 or int(ss) > 59:
        raise ValueError(f"not a valid date and time: {text[:40]!r}")
    if zone is None or zone in ("Z", "z"):
        zone = "Z"
    else:
        if len(zone) == 5:
            zone = f"{zone[:3]}:{zone[3:]}"
        if int(zone[1:3]) > 23 or int(zone[4:6]) > 59:
            raise ValueError(f"invalid timezone offset: {text[:40]!r}")
    clock = f"{hh}:{mi}:{ss}"
    out = f"{day}T{clock}.{frac[:9]}{zone}" if frac else f"{day}T{clock}{zone}"
    if not in_range(parse_rfc3339(out)):  # the one table of time bounds (model.timefmt)
        raise ValueError(f"{text[:40]!r} is {RANGE_MESSAGE}")
    return out


@functools.lru_cache(maxsize=1024)  # a batch's events share a handful of days
def _valid_day(day: str) -> bool:
    try:
        date.fromisoformat(day)
    except ValueError:
        return False
    return True


def derived_id(namespace: bytes, data: bytes) -> str:
    """A UUID (version 5 layout, SHA-1 based) from a record's own bytes: the same record
    always gets the same id, so a source's resend is idempotent in the ledger."""
    h = bytearray(hashlib.sha1(namespace + data).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x50
    h[8] = (h[8] & 0x3F) | 0x80
    x = h.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"
