"""Durations in rule files and the time of an event."""

from __future__ import annotations

import re
from typing import Any

from auditkeep.model.timefmt import parse_rfc3339

NS = 1_000_000_000
_UNITS = {"ms": 1_000_000, "s": NS, "m": 60 * NS, "h": 3600 * NS, "d": 86_400 * NS, "w": 7 * 86_400 * NS}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")


def parse_duration(value: Any) -> int:
    """Nanoseconds from ``"90s"``, ``"5m"``, ``"1h"``, ``"7d"``, ``"2w"`` or a number of
    seconds; ``ValueError`` otherwise (and for zero or negative durations)."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 5m, got a boolean")
    if isinstance(value, (int, float)):
        ns = int(value * NS)
    elif isinstance(value, str):
        m = _DURATION.match(value)
        if m is None:
            raise ValueError(f"expected a duration such as 30s, 5m, 1h or 7d, got {value!r}")
        ns = int(float(m.group(1)) * _UNITS[m.group(2)])
    else:
        raise ValueError(f"expected a duration such as 5m, got {type(value).__name__}")
    if ns <= 0:
        raise ValueError("a duration must be positive")
    return ns


def format_duration(ns: int) -> str:
    """The shortest exact rendering of ``ns`` in the units above (``300s`` -> ``5m``)."""
    for unit in ("w", "d", "h", "m", "s", "ms"):
        size = _UNITS[unit]
        if ns % size == 0:
            return f"{ns // size}{unit}"
    return f"{ns / NS:g}s"


_SECONDS: dict[str, int] = {}


def _fast_utc(text: str) -> int | None:
    """``YYYY-MM-DDTHH:MM:SS[.fff…]Z`` (what the ledger stores) with the whole-second part
    looked up in a small cache: events arrive in time order, so most share their second
    with a recent one. Anything else takes the full parser."""
    n = len(text)
    if n < 20 or text[-1] != "Z" or text[10] != "T":
        return None
    if n == 20:
        frac = 0
    elif text[19] == "." and 22 <= n <= 30 and text[20:-1].isdigit():
        frac = int(text[20:-1].ljust(9, "0"))
    else:
        return None
    head = text[:19]
    base = _SECONDS.get(head)
    if base is None:
        try:
            base = parse_rfc3339(head + "Z")
        except ValueError:
            return None
        if len(_SECONDS) >= 4096:
            _SECONDS.clear()
        _SECONDS[head] = base
    return base + frac


def event_time_ns(event: dict[str, Any]) -> int | None:
    """The event's own time (``time``, else ``received_at``) in ns, or ``None``."""
    for key in ("time", "received_at"):
        text = event.get(key)
        if isinstance(text, str):
            fast = _fast_utc(text)
            if fast is not None:
                return fast
            try:
                return parse_rfc3339(text)
            except ValueError:
                continue
    return None
