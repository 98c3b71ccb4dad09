"""The storage contract the ledger writes through and everything else reads through.

Two implementations keep the same contract: embedded SQLite and PostgreSQL. The append path
is a transaction object (:class:`AppendTxn`) so that the database serialises appends to one
tenant's log (a row lock or ``BEGIN IMMEDIATE``) while the ledger does the hashing inside it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, runtime_checkable

import msgspec

from auditkeep.errors import StoreError as StoreError  # re-exported: their old home
from auditkeep.errors import StoreUnavailable as StoreUnavailable

TileKey = tuple[int, int]


@dataclass
class Head:
    """A tenant's log head: what the tree looks like after the last committed append."""

    tenant_id: int
    tenant: str
    size: int
    root: bytes
    received_ns: int  # received_at of the last entry; appends never go below it
    checkpoint_size: int  # size of the latest signed checkpoint (0 if none)
    checkpoint_ns: int  # when it was signed


# A struct the cyclic collector does not track (it holds bytes, ints and a str): the append
# path holds a batch of them, and tracked objects alive across a batch are what makes the
# collector run (dataclass instances were one of the four per event).
class Entry(msgspec.Struct, gc=False):
    """One stored leaf: the exact bytes committed, plus what is kept beside them."""

    index: int
    id: bytes  # 16-byte UUID
    received_ns: int
    leaf: bytes  # canonical (RFC 8785) bytes; the leaf hash is SHA-256(0x00 || leaf)
    subject: str | None = None  # data subject of the sealed fields
    sealed: bytes | None = None  # JSON {path: value} of sealed fields; None once erased


@dataclass
class CheckpointRow:
    tenant_id: int
    size: int
    root: bytes
    note: str
    signed_ns: int


# Meta key: "1" while every entry's subject is its actor id (set on a log created empty; a
# writer whose subject_field is another, or a restore, sets "0" before it appends). The
# search rows then index the subject's entries (by actor), so an erasure need not scan.
SUBJECTS_ARE_ACTORS = "subjects_are_actors"

# Separates the public words of ProjectedRow.text from the personal plaintext's. Full-text
# tokenizers read it as a word break; the SQLite store splits there and keeps the personal
# words in an index of their own, so an erasure rewrites that small index, not the whole one.
PERSONAL_TEXT = "\x1f"


def split_text(text: str) -> tuple[str, str]:
    """(public words, personal words) of a projected text."""
    public, _, personal = text.partition(PERSONAL_TEXT)
    return public, personal


class ProjectedRow(NamedTuple):
    """The query projection of one entry (fed by a cursor consumer, not the append).

    A tuple whose first ``EV_FIELDS`` fields are the SQLite search row's columns in order, so
    the store hands ``row[:EV_FIELDS]`` to ``executemany`` as it is: the projection builds one
    of these for every event, and a second tuple per row cost ~0.5 µs an event."""

    key: int  # the entry's global key (tenant_id << 40 | index)
    tenant_id: int
    time_ns: int
    received_ns: int
    actor: str
    action: str
    resource_type: str | None
    resource_id: str | None
    outcome: str
    category: str | None
    text: str  # what full-text search sees: the public words [PERSONAL_TEXT, the personal ones]
    position: int  # the entry's index in its log (``index`` is tuple's method)
    # The event's metadata as committed in the leaf (sealed fields already taken out): its
    # JSON text as ``msgspec.Raw`` from the projector (or decoded JSON), for stores that index
    # metadata paths in the projection (PostgreSQL takes the text as jsonb; SQLite reads the
    # leaf instead); None when there is none.
    metadata: Any = None


EV_FIELDS = 10  # key .. category: the columns of a search row


@dataclass
class Query:
    """Filters of a search. Strings are matched exactly unless noted."""

    tenant_id: int
    since_ns: int | None = None  # on event time, inclusive
    until_ns: int | None = None  # on event time, exclusive
    received_since_ns: int | None = None
    received_until_ns: int | None = None
    actor: str | None = None
    action: str | None = None  # exact, or a prefix when it ends with ".*"
    resource_type: str | None = None
    resource_id: str | None = None
    outcome: str | None = None
    category: str | None = None
    text: str | None = None  # full-text query
    metadata: Sequence[tuple[str, str]] = ()  # (path below metadata, value) equalities
    submitter: tuple[str, str | None] | None = None  # the leaf's submitter: (kind, id or any)
    sealed_paths: frozenset[str] = field(default_factory=frozenset)  # paths kept beside the leaf
    newest_first: bool = True
    after: tuple[int, int] | None = None  # keyset cursor: (time_ns, key) of the last row seen
    limit: int = 100


@dataclass
class Doc:
    """A row of a small document collection (API keys, quarantine, alerts, ...): the features
    around the log keep their state here instead of each adding tables to every store."""

    collection: str
    id: str
    tenant: str | None
    created_ns: int
    status: str | None
    data: bytes


KEY_SHIFT = 40
MAX_INDEX = (1 << KEY_SHIFT) - 1


def entry_key(tenant_id: int, index: int) -> int:
    """One integer key per entry across tenants, ordered by (tenant, index)."""
    return (tenant_id << KEY_SHIFT) | index


def key_runs(keys: Sequence[int]) -> list[tuple[int, int]]:
    """[start, end) of each run of consecutive integers in ``keys`` (ascending; entry keys or
    log indexes): expiry deletes by ranges, far fewer statements than keys, and retention and
    erasure records name ranges."""
    if keys and keys[-1] - keys[0] + 1 == len(keys):  # one run (ascending and distinct): no loop
        return [(keys[0], keys[-1] + 1)]
    runs: list[tuple[int, int]] = []
    for k in keys:
        if runs and runs[-1][1] == k:
            runs[-1] = (runs[-1][0], k + 1)
        else:
            runs.append((k, k + 1))
    return runs


class AppendTxn(Protocol):
    """One append transaction, holding the append lock of the tenants it was opened for."""

    def head(self, tenant_id: int) -> Head: ...

    def existing(self, tenant_id: int, ids: Sequence[bytes]) -> dict[bytes, Entry]:
        """Entries already stored under these ids (for idempotent retries)."""
        ...

    def read_tiles(self, tenant_id: int, keys: Sequence[TileKey]) -> dict[TileKey, bytes]: ...

    def salts(self, tenant_id: int, subjects: Sequence[str]) -> dict[str, bytes]:
        """Per-subject salts, created (and stored) for subjects that have none."""
        ...

    def erasures(self) -> int:
        """How many subject erasures the store has seen: a writer that cached salts under
        another count forgets them (an erased subject's salt is gone)."""
        ...

    def write(
        self,
        tenant_id: int,
        entries: Sequence[Entry],
        tiles: Mapping[TileKey, bytes],
        head: Head,
        checkpoint: CheckpointRow | None = None,
    ) -> None: ...


@runtime_checkable
class StageReads(Protocol):
    """Committed state read without any append lock, for a writer that sequences a group
    while the previous one commits (ledger/staged.py). What is read here may be stale by
    the commit: the writer checks the head and the erasure count again under the lock."""

    def committed_head(self, tenant_id: int) -> Head | None: ...
    def committed_existing(self, tenant_id: int, ids: Sequence[bytes]) -> dict[bytes, Entry]: ...
    def committed_erasures(self) -> int: ...
    def create_salts(self, tenant_id: int, subjects: Sequence[str]) -> dict[str, bytes]:
        """Salts of ``subjects``, those missing created and committed at once, without the
        log's lock (an existing salt is never replaced, by this or by an append)."""
        ...
    def read_tiles(self, tenant_id: int, keys: Sequence[TileKey]) -> dict[TileKey, bytes]: ...


class Lease(Protocol):
    """An exclusive lease held until released (or until its holder dies)."""

    def release(self) -> None: ...


class LogReads(Protocol):
    """The read side of a store, narrow (as tessera's storage drivers are): a log's heads,
    entries by index range, id or key, its tiles, checkpoints, subjects' salts and the
    settings kept with the data. Tiles, proofs, verification and the views of entries read
    through this alone."""

    def heads(self) -> list[Head]: ...
    def meta(self, key: str) -> str | None: ...
    def entries(self, tenant_id: int, start: int, end: int) -> Iterator[Entry]: ...
    def entry_by_id(self, tenant_id: int, event_id: bytes) -> Entry | None: ...
    def entries_by_key(self, keys: Sequence[int]) -> dict[int, Entry]: ...
    def read_tiles(self, tenant_id: int, keys: Sequence[TileKey]) -> dict[TileKey, bytes]: ...
    def tiles_range(self, tenant_id: int, level: int, start: int, end: int) -> dict[int, bytes]: ...
    def checkpoints(self, tenant_id: int) -> Iterator[CheckpointRow]: ...
    def checkpoint_at(self, tenant_id: int, size: int) -> CheckpointRow | None: ...
    def latest_checkpoint(self, tenant_id: int) -> CheckpointRow | None: ...
    def checkpoints_newest(self, tenant_id: int, below: int | None, limit: int) -> list[CheckpointRow]:
        """Up to ``limit`` checkpoints, largest first, of fewer than ``below`` entries (all when
        None): a page of the newest, by key, without reading the older ones."""
        ...
    def checkpoint_from(self, tenant_id: int, size: int) -> CheckpointRow | None:
        """The smallest signed checkpoint of at least ``size`` entries (one indexed lookup)."""
        ...
    def subject_salts(self, tenant_id: int, subjects: Sequence[str]) -> dict[str, bytes]:
        """The salts of those ``subjects`` that still have one (never creates any)."""
        ...
    def reader_opener(self) -> ReaderOpener | None:
        """A picklable function that opens this log read-only in another process, for a
        reader that splits a long range across worker processes (verify); None when the
        store cannot be opened that way, and the reader reads in this process."""
        ...


# Opens a store's log read-only in a worker process (see LogReads.reader_opener).
ReaderOpener = Callable[[], LogReads]


class Store(LogReads, Protocol):
    """Everything the ledger, its consumers and the faces need from storage: the reads of
    :class:`LogReads`, and appends, consumers' cursors, the search projection, retention,
    documents, leases and settings."""

    dialect: str
    read_only: bool  # opened so that it never writes (readers: verify, search, show, proof)

    @property
    def projection_writable(self) -> bool:
        """Whether a search may bring the projection up to date first (false when read-only,
        unless the store keeps a temporary projection of its own outside the data)."""
        ...

    def tenant(self, name: str, create: bool = False) -> Head | None: ...

    # the append path
    def append_txn(self, tenant_ids: Sequence[int]) -> AbstractContextManager[AppendTxn]: ...

    # consumers
    def cursor(self, name: str, tenant_id: int) -> tuple[int, bytes | None]: ...
    def set_cursor(self, name: str, tenant_id: int, position: int, state: bytes | None = None) -> None: ...

    # projections and search
    def projection_position(self, tenant_id: int) -> int: ...
    def project(self, tenant_id: int, rows: Sequence[ProjectedRow], position: int) -> None: ...
    def reset_projection(self) -> None: ...
    def search(self, q: Query) -> list[tuple[int, int]]:
        """(time_ns, key) of matching entries, in the requested order, at most ``q.limit``."""
        ...

    def time_span(self, q: Query) -> tuple[int, int] | None:
        """Earliest and latest event time of the matches (cursor and limit ignored), or None."""
        ...

    def count_by_time(self, q: Query, origin_ns: int, step_ns: int) -> list[tuple[int, str, int]]:
        """``(bucket, outcome, count)`` of the matches (cursor and limit ignored) per time bucket
        ``[origin + bucket*step, origin + (bucket+1)*step)`` and outcome, empty ones left out;
        matches before ``origin_ns`` are not counted."""
        ...

    # retention and erasure: payloads go, leaf hashes and tiles stay (so do every proof)
    def expire(self, tenant_id: int, indexes: Sequence[int], texts: Mapping[int, str]) -> int:
        """Delete the payload (leaf bytes, subject, personal plaintext) of entries, keeping each
        row's index, id and received_at, and their rows of the search projection (``texts``:
        the full-text body each was projected with, for an index that needs it to forget a
        row). Idempotent; returns how many entries still had a payload."""
        ...

    def subject_entries(self, tenant_id: int, subject: str, by_actor: bool = False) -> list[Entry]:
        """Entries of ``subject`` that still hold personal plaintext, in index order.
        ``by_actor``: every entry's subject is its actor id (meta ``SUBJECTS_ARE_ACTORS``),
        so a store may find them through its search rows by actor instead of a scan."""
        ...

    def erase_subject(
        self, tenant_id: int, subject: str, old_texts: Mapping[int, str], rows: Sequence[ProjectedRow],
        scanned_below: int | None = None,
    ) -> list[int]:
        """Destroy the subject's salt and personal plaintext, leaving no copy in the store's
        files; projection rows (keyed as in ``old_texts``, indexed with that text) are replaced
        by ``rows``. With ``scanned_below``, the keys of ``old_texts`` are all the subject's
        entries below that index that held plaintext (as :meth:`subject_entries` found them),
        so a store may look only at the entries from that index on for others. Returns the
        indexes whose plaintext was destroyed."""
        ...

    # small document collections
    def doc_put(self, doc: Doc) -> None:
        """Insert or replace by (collection, id)."""
        ...

    def doc_insert(self, doc: Doc) -> bool:
        """Insert unless (collection, id) exists; True when inserted."""
        ...

    def doc_swap(self, doc: Doc, expected: bytes) -> bool:
        """Replace (collection, id) only while its data is still ``expected``, in one SQL
        statement (a compare-and-swap: of concurrent read-modify-writes, one wins and the others
        read again); True when replaced."""
        ...

    def doc_put_many(self, docs: Sequence[Doc]) -> None:
        """Insert or replace several documents in one durable transaction."""
        ...

    def doc_delete_many(self, collection: str, doc_ids: Sequence[str]) -> int:
        """Delete several documents in one durable transaction; returns how many existed."""
        ...

    def doc_get(self, collection: str, doc_id: str) -> Doc | None: ...

    def doc_list(
        self,
        collection: str,
        tenant: str | None = None,
        status: str | None = None,
        before_ns: int | None = None,
        limit: int = 100,
    ) -> list[Doc]:
        """Newest first; ``before_ns`` pages backwards by ``created_ns``."""
        ...

    def doc_delete(self, collection: str, doc_id: str) -> bool: ...

    def doc_count(self, collection: str, tenant: str | None = None, status: str | None = None) -> int: ...

    # one holder among every process on this store (e.g. the alert runner)
    def lease(self, name: str) -> Lease | None:
        """Take the lease ``name`` if nobody holds it; None when another holder has it. It is
        released by ``release()`` or when the holding process (or its connection) ends."""
        ...

    # settings kept with the data (read: LogReads.meta)
    def set_meta(self, key: str, value: str) -> None: ...

    def close(self) -> None: ...


Row = tuple[int, bytes, int, bytes, str | None, bytes | None]  # key, id, received_ns, leaf, subject, sealed


def row_chunks(store: LogReads, tenant_id: int, start: int, end: int, chunk: int = 8192) -> Iterator[list[Row]]:
    """Chunks of raw rows of entries ``start`` to ``end`` (exclusive) in index order: the
    store's ``entry_rows`` (plain tuples, no object per row) where it has one, else built
    from ``entries``. For the hot loops that read a whole range (verify, evidence, export)."""
    rows = getattr(store, "entry_rows", None)
    if rows is not None:
        yield from rows(tenant_id, start, end, chunk)
        return
    batch: list[Row] = []
    for e in store.entries(tenant_id, start, end):
        batch.append((entry_key(tenant_id, e.index), e.id, e.received_ns, e.leaf, e.subject, e.sealed))
        if len(batch) >= chunk:
            yield batch
            batch = []
    if batch:
        yield batch
