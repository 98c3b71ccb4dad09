"""The live tail's filter: :meth:`auditkeep.query.filters.Filters.matches` over records."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from auditkeep.ledger.ledger import Record
from auditkeep.query.filters import Filters

Matcher = Callable[[Record], bool]


def matcher(kwargs: Mapping[str, Any]) -> Matcher:
    """A predicate over records from :func:`auditkeep.query.filters.search_kwargs` output."""
    filters = Filters.from_kwargs(kwargs)

    def ok(rec: Record) -> bool:
        return filters.matches(rec.event)

    return ok
