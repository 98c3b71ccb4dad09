"""Reading the records to export page by page, so memory stays constant over any size.

Without filters the log is read by index (keyset paging on the log index), in log order, up
to the head it had when the export began. With filters the search projection is paged with
its keyset cursor, oldest event time first.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from auditkeep.ledger.reader import LogReader, NotFound, Record

PAGE = 2000


def planned_total(reader: LogReader, tenant: str, filters: dict[str, Any]) -> int | None:
    """How many records an export will hold when that is known in advance (no filters)."""
    if filters:
        return None
    try:
        return reader.head(tenant).size
    except NotFound:
        return 0


def iter_pages(reader: LogReader, tenant: str, filters: dict[str, Any], page: int = PAGE) -> Iterator[list[Record]]:
    """Pages of records (each at most ``page`` long) of ``tenant`` matching ``filters``
    (keyword arguments of :meth:`LogReader.search`)."""
    if not filters:
        try:
            size = reader.head(tenant).size
        except NotFound:
            return
        for start in range(0, size, page):
            yield reader.records(start, min(size, start + page), tenant)
        return
    cursor: str | None = None
    while True:
        got = reader.search(tenant, order="oldest", cursor=cursor, limit=page, **filters)
        if got.items:
            yield got.items
        cursor = got.next_cursor
        if cursor is None:
            return
