"""The live tail's filter: :meth:`auditkeep.query.filters.Filters.matches` over records."""

from __future__ import annotations

from collections.abc import Callable

from auditkeep.ledger.ledger import Record
from auditkeep.query.filters import Filters

Matcher = Callable[[Record], bool]


def matcher(filters: Filters) -> Matcher:
    """A predicate over records: whether their event passes ``filters``."""

    def ok(rec: Record) -> bool:
        return filters.matches(rec.event)

    return ok
