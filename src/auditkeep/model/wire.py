"""The values the log hands out, in the shape they travel: a receipt for an append, a stored
record, a page of search results, and the two proofs. The SDK decodes the server's answers
into these same types, so code written against ``auditkeep.open()`` also works against a
``Client`` — and importing them loads neither the ledger nor a database driver."""

from __future__ import annotations

import msgspec

from auditkeep.model.event import Event

__all__ = ["ConsistencyProof", "InclusionProof", "Page", "Receipt", "Record"]


class Receipt(msgspec.Struct, frozen=True, gc=False):
    """Proof of acceptance: the event is durable at ``index`` of ``tenant``'s log."""

    id: str
    tenant: str
    index: int
    leaf_hash: str
    received_at: str


class InclusionProof(msgspec.Struct):
    tenant: str
    index: int
    tree_size: int
    leaf_hash: str
    hashes: list[str]
    checkpoint: str


class ConsistencyProof(msgspec.Struct):
    tenant: str
    from_: int = msgspec.field(name="from")
    to: int = 0
    hashes: list[str] = []
    checkpoint: str = ""


class Record(msgspec.Struct):
    """A stored event as a reader sees it: personal fields opened (or ``[erased]``)."""

    index: int
    tenant: str
    event: Event
    leaf_hash: str


class Page(msgspec.Struct):
    """A page of search results. ``unindexed`` counts the newest entries of the log that
    the search projection had not reached and that the search therefore did not see (only
    a read-only reader answers from a projection it cannot bring up to date)."""

    items: list[Record]
    next_cursor: str | None = None
    unindexed: int = 0
