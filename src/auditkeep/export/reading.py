"""Reading the records to export page by page, so memory stays constant over any size.

Without filters the log is read by index (keyset paging on the log index), in log order, up
to the head it had when the export began. With filters the search projection is paged with
its keyset cursor, oldest event time first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

from auditkeep.export.formats import Formatter
from auditkeep.ledger.reader import LogReader, NotFound, Record
from auditkeep.store.base import Entry

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


def iter_chunks(reader: LogReader, tenant: str, filters: dict[str, Any], formatter: Formatter, page: int = PAGE) -> Iterator[tuple[int, bytes]]:
    """(events, bytes) chunks of an export: the format's head, then one chunk a page. An
    unfiltered JSON Lines export writes each stored event as it is (its canonical JSON),
    decoding only events with sealed personal fields to open them."""
    head = formatter.head()
    if head:
        yield 0, head
    if formatter.name == "jsonl" and not filters:
        try:
            tid = reader.tenant_id(tenant)
            size = reader.head(tenant).size
        except NotFound:
            return
        for start in range(0, size, page):
            entries = list(reader.store.entries(tid, start, min(size, start + page)))
            yield len(entries), _jsonl_entries(reader, tenant, entries)
        return
    for records in iter_pages(reader, tenant, filters, page):
        yield len(records), formatter.page(records)


def _jsonl_entries(reader: LogReader, tenant: str, entries: list[Entry]) -> bytes:
    out: list[bytes] = []
    prefix = b'{"index":'
    mid = b',"tenant":"' + tenant.encode() + b'","event":'  # a tenant name needs no escaping
    for e in entries:
        leaf = e.leaf
        if not leaf:
            continue  # payload expired by retention: no event to export
        if e.sealed is None and b'"sealed"' not in leaf:
            digest = hashlib.sha256(b"\x00" + leaf).hexdigest().encode()
            out.append(b"".join((prefix, str(e.index).encode(), mid, leaf, b',"leaf_hash":"', digest, b'"}\n')))
        else:
            out.append(Formatter.jsonl_one(reader.view(tenant, e)))
    return b"".join(out)
