"""Time arguments as people and programs give them — one parser for every face.

The CLI, the HTTP API, the SDK and the embedded ``auditkeep.open(...)`` all accept the same
forms: an RFC 3339 time with a timezone, ``now``, a duration ago (``30s``, ``15m``, ``2h``,
``7d``, ``1w``), nanoseconds since the epoch, or an aware :class:`datetime`. The result always
lies within the time bounds of :mod:`auditkeep.model.timefmt`, else a :class:`ValidationError`
names the argument.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from auditkeep.model.errors import ValidationError
from auditkeep.model.timefmt import RANGE_MESSAGE, in_range, parse_rfc3339

TimeArg = int | str | datetime | None

_RELATIVE = re.compile(r"^([0-9]+)\s*(s|m|h|d|w)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_NS = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FORMS = "an RFC 3339 time (2024-05-01T12:00:00Z), 'now' or a duration ago like 15m, 2h, 7d"


def parse_time_arg(value: int | str | datetime, field: str, now_ns: int | None = None) -> int:
    """Nanoseconds since the epoch for a time argument; ``ValidationError`` naming ``field``."""
    if isinstance(value, bool):
        raise ValidationError(f"expected {FORMS}", field)
    if isinstance(value, int):
        ns = value
    elif isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValidationError("a datetime needs a timezone", field)
        delta = value - _EPOCH
        ns = (delta.days * 86_400 + delta.seconds) * _NS + delta.microseconds * 1000
    elif isinstance(value, str):
        ns = _parse_text(value, field, now_ns)
    else:
        raise ValidationError(f"expected {FORMS}", field)
    if not in_range(ns):
        raise ValidationError(RANGE_MESSAGE, field)
    return ns


def _parse_text(value: str, field: str, now_ns: int | None) -> int:
    text = value.strip()
    if "\x00" in text:
        raise ValidationError("contains a NUL character", field)
    now = time.time_ns() if now_ns is None else now_ns
    if text == "now":
        return now
    m = _RELATIVE.match(text)
    if m:
        digits = m.group(1)
        if len(digits) > 15:  # more than 30 million years ago: past every bound
            raise ValidationError(RANGE_MESSAGE, field)
        return now - int(digits) * _UNITS[m.group(2)] * _NS
    try:
        return parse_rfc3339(text)
    except ValueError:
        raise ValidationError(f"expected {FORMS}", field) from None


def optional_time_arg(value: TimeArg, field: str, now_ns: int | None = None) -> int | None:
    """:func:`parse_time_arg`, with ``None`` (and an empty string) meaning unset."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return parse_time_arg(value, field, now_ns)
