"""Query parameters as typed values; a bad one is a 422 naming the parameter."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request

from auditkeep.model.errors import ValidationError
from auditkeep.query.filters import SEARCH_FIELDS, Filters

MAX_INDEX = 2**63 - 1


_DECIMAL = re.compile(r"-?[0-9]{1,40}")


def int_value(raw: str, name: str, minimum: int = 0, maximum: int = MAX_INDEX) -> int:
    """A decimal integer (ASCII digits only) within bounds that every store holds."""
    if not _DECIMAL.fullmatch(raw):
        raise ValidationError(f"expected an integer, got {raw[:40]!r}", name)
    value = int(raw)
    if not minimum <= value <= maximum:
        raise ValidationError(f"must be between {minimum} and {maximum}", name)
    return value


def int_param(request: Request, name: str, minimum: int = 0, maximum: int = MAX_INDEX) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    return int_value(raw, name, minimum, maximum)


def bool_param(request: Request, name: str) -> bool:
    raw = request.query_params.get(name, "false").lower()
    if raw in ("1", "true", "yes"):
        return True
    if raw in ("", "0", "false", "no"):
        return False
    raise ValidationError("expected true or false", name)


def filters(request: Request) -> tuple[Filters, dict[str, Any]]:
    """(the search filters parsed, the raw filters as given — for the audit event)."""
    q = request.query_params
    raw: dict[str, Any] = {name: q.get(name) for name in SEARCH_FIELDS if q.get(name)}
    meta = q.getlist("metadata")
    if meta:
        raw["metadata"] = meta
    return Filters.parse(raw), raw
