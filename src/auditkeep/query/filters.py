"""Search filters as people type them (CLI options, HTTP query parameters)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from auditkeep.model.errors import ValidationError
from auditkeep.model.event import parse_submitter_filter
from auditkeep.model.timeargs import parse_time_arg

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
    "submitter",
)


def parse_time(value: str, field: str, now_ns: int | None = None) -> int:
    """An RFC 3339 time, ``now``, or a duration ago such as ``15m``, ``2h``, ``7d`` (the one
    parser of :mod:`auditkeep.model.timeargs`, within the stores' time bounds)."""
    return parse_time_arg(value, field, now_ns)


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
        elif name == "submitter":
            try:
                parse_submitter_filter(str(value))
            except ValueError as exc:
                raise ValidationError(str(exc), name) from None
            out[name] = str(value)
        else:
            out[name] = str(value)
    meta = values.get("metadata")
    if meta:
        out["metadata"] = parse_metadata(meta)
    return out
