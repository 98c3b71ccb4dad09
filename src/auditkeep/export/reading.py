"""Reading the records to export page by page, so memory stays constant over any size.

Without filters the log is read by index (keyset paging on the log index), in log order, up
to the head it had when the export began. With filters the search projection is paged with
its keyset cursor, oldest event time first.
"""

from __future__ import annotations

import hashlib
from binascii import hexlify
from collections.abc import Iterator

from auditkeep.export.formats import Formatter
from auditkeep.ledger.reader import LogReader, NotFound, Record
from auditkeep.query.filters import Filters
from auditkeep.store.base import KEY_SHIFT, Entry, Row, row_chunks

PAGE = 2000
_sha256 = hashlib.sha256


def planned_total(reader: LogReader, tenant: str, filters: Filters) -> int | None:
    """How many records an export will hold when that is known in advance (no filters)."""
    if filters:
        return None
    try:
        return reader.head(tenant).size
    except NotFound:
        return 0


def iter_pages(reader: LogReader, tenant: str, filters: Filters, page: int = PAGE) -> Iterator[list[Record]]:
    """Pages of records (each at most ``page`` long) of ``tenant`` matching ``filters``."""
    if not filters:
        try:
            size = reader.head(tenant).size
        except NotFound:
            return
        for start in range(0, size, page):
            yield reader.records(start, min(size, start + page), tenant, checked=False)
        return
    cursor: str | None = None
    while True:
        got = reader.search(tenant, order="oldest", cursor=cursor, limit=page, filters=filters)
        if got.items:
            yield got.items
        cursor = got.next_cursor
        if cursor is None:
            return


def iter_chunks(reader: LogReader, tenant: str, filters: Filters, formatter: Formatter, page: int = PAGE) -> Iterator[tuple[int, bytes]]:
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
        for rows in row_chunks(reader.store, tid, 0, size, page):
            yield len(rows), _jsonl_rows(reader, tenant, rows)
        return
    for records in iter_pages(reader, tenant, filters, page):
        yield len(records), formatter.page(records)


_LINE = b'{"index":%d,"tenant":"%s","event":%s,"leaf_hash":"%s"}\n'
_MASK = (1 << KEY_SHIFT) - 1


def _jsonl_rows(reader: LogReader, tenant: str, rows: list[Row]) -> bytes:
    """One page of raw store rows as JSON Lines: a stored event without personal fields is
    its canonical JSON as stored, put into the line by one bytes format (no decoding, no
    object per row); one with sealed fields is decoded to open them."""
    name = tenant.encode()  # a tenant name needs no escaping
    out: list[bytes] = []
    for key, event_id, received_ns, leaf, subject, sealed in rows:
        if not leaf:
            continue  # payload expired by retention: no event to export
        if sealed is None and b'"sealed"' not in leaf:
            out.append(_LINE % (key & _MASK, name, leaf, hexlify(_sha256(b"\x00" + leaf).digest())))
        else:
            entry = Entry(key & _MASK, event_id, received_ns, leaf, subject, sealed)
            out.append(Formatter.jsonl_one(reader.view(tenant, entry)))
    return b"".join(out)
