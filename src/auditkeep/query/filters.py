"""Search filters as people type them (CLI options, HTTP query parameters)."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

from auditkeep.model.errors import ValidationError
from auditkeep.model.timefmt import parse_rfc3339

_RELATIVE = re.compile(r"^(\d+)\s*(s|m|h|d|w)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
SEARCH_FIELDS = (
    "since",
    "until",
    "received_since",
    "received_until",
    "actor",
    "action",
    "resource_type",
    "resource_id",
    "outcome",
    "category",
    "text",
)


def parse_time(value: str, field: str, now_ns: int | None = None) -> int:
    """An RFC 3339 time, ``now``, or a duration ago such as ``15m``, ``2h``, ``7d``."""
    text = value.strip()
    now = time.time_ns() if now_ns is None else now_ns
    if text == "now":
        return now
    m = _RELATIVE.match(text)
    if m:
        return now - int(m.group(1)) * _UNITS[m.group(2)] * 1_000_000_000
    try:
        return parse_rfc3339(text)
    except ValueError:
        raise ValidationError(
            "expected an RFC 3339 time (2024-05-01T12:00:00Z), 'now' or a duration ago like 15m, 2h, 7d", field
        ) from None


def parse_metadata(pairs: Sequence[str]) -> list[tuple[str, str]]:
    """``path=value`` pairs (the path is below ``metadata``; a leading ``metadata.`` is allowed)."""
    out: list[tuple[str, str]] = []
    for pair in pairs:
        path, sep, value = pair.partition("=")
        path = path.strip()
        if path.startswith("metadata."):
            path = path[len("metadata.") :]
        if not sep or not path or any(not p for p in path.split(".")):
            raise ValidationError(f"expected path=value, got {pair!r}", "metadata")
        out.append((path, value))
    return out


def search_kwargs(values: dict[str, Any], now_ns: int | None = None) -> dict[str, Any]:
    """Keyword arguments for :meth:`Ledger.search` from raw string values (None = unset)."""
    out: dict[str, Any] = {}
    for name in SEARCH_FIELDS:
        value = values.get(name)
        if value is None or value == "":
            continue
        if name in ("since", "until", "received_since", "received_until"):
            out[name] = parse_time(str(value), name, now_ns)
        else:
            out[name] = str(value)
    meta = values.get("metadata")
    if meta:
        out["metadata"] = parse_metadata(meta)
    return out
