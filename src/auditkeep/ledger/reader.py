"""Reading a log — events, searches, checkpoints, proofs, verification — without writing
to the store or signing anything.

:class:`LogReader` needs no private key: the log id and the verifier keys are in the store
(or, for ``verify``, given by whoever checks). ``auditkeep verify``, ``search``, ``show``,
``proof`` and ``checkpoint`` open one over a read-only store, so a copy of the data
directory without ``signing.key`` is enough to check it. The writer, :class:`Ledger`, is a
reader that also appends and signs.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Unpack

from auditkeep.crypto.atrest import EncryptionSettings, KeyUnavailable
from auditkeep.errors import DataDirError
from auditkeep.errors import Expired as Expired
from auditkeep.errors import NotFound as NotFound  # re-exported: its old home
from auditkeep.ledger.atrest import META_KEY as ENCRYPTED
from auditkeep.ledger.atrest import EncryptedStore
from auditkeep.ledger.config import LedgerConfig
from auditkeep.ledger.keyring import LogKey, load_keys, origin_for
from auditkeep.ledger.projector import Projector
from auditkeep.ledger.trust import Trust
from auditkeep.ledger.verify_report import TenantReport, VerifyReport
from auditkeep.ledger.view import ERASED as ERASED  # re-exported: its old home
from auditkeep.ledger.view import NO_KEY, open_event
from auditkeep.log.checkpoint import Checkpoint, verify_checkpoint
from auditkeep.log.hashing import HASH_SIZE, leaf_hash
from auditkeep.log.note import NoteVerifier
from auditkeep.log.proofs import consistency_proof, inclusion_proof
from auditkeep.log.tiles import TILE_WIDTH
from auditkeep.model.errors import ValidationError
from auditkeep.model.event import parse_submitter_filter
from auditkeep.model.ids import id_bytes
from auditkeep.model.timefmt import format_rfc3339
from auditkeep.model.validate import check_tenant as check_tenant  # re-exported: its old home
from auditkeep.model.wire import ConsistencyProof as ConsistencyProof  # re-exported: old homes
from auditkeep.model.wire import InclusionProof as InclusionProof
from auditkeep.model.wire import Page as Page
from auditkeep.model.wire import Record as Record
from auditkeep.query.filters import FilterArgs, Filters
from auditkeep.store.base import Entry, Head, Query, Store


class LogReader:
    """Reads per-tenant logs from a store; never writes to it (beyond a temporary search
    projection the store may keep elsewhere) and never signs.

    ``LogReader.open(path)`` opens a data directory read-only (the directory and its files
    may be read-only too; ``signing.key`` is not needed).
    """

    def __init__(self, store: Store, config: LedgerConfig | None = None, *, log_id: str | None = None) -> None:
        self.store = store
        self.config = config or LedgerConfig()
        stored = log_id or store.meta("log_id")
        if stored is None:
            raise DataDirError("no auditkeep log in this store; run `auditkeep init` first")
        self.log_id: str = stored
        self._tenants: dict[str, int] = {}
        self._tenant_lock = threading.Lock()
        self._projector = Projector(store, self._sizes)
        self._closed = False
        # An encrypted store opened without its master key (``at_rest`` gave the store as it
        # is): the tree can be verified, but no search can be answered (its index holds keyed
        # tokens) and no event read.
        self._no_key = store.meta(ENCRYPTED) is not None and not isinstance(store, EncryptedStore)

    @classmethod
    def open(
        cls, path: str | Path = "auditkeep-data", config: LedgerConfig | None = None, *,
        encryption: EncryptionSettings | None = None,
    ) -> LogReader:
        """A reader of the embedded store in a data directory, opened read-only (an encrypted
        one with its master key as ``encryption`` says, by default ``<path>/master.key``;
        without it only the tree can be verified)."""
        from auditkeep.ledger.atrest import at_rest
        from auditkeep.store.factory import open_store

        store = open_store(Path(path), read_only=True)
        try:
            store = at_rest(store, encryption, Path(path), read_only=True)
            return cls(store, config)
        except BaseException:
            store.close()
            raise

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.store.close()

    def __enter__(self) -> LogReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # keys ------------------------------------------------------------------------------------

    def stored_keys(self) -> list[LogKey]:
        """The verifier keys the store records for this log, oldest first."""
        return load_keys(self.store)

    def pubkey(self, tenant: str | None = None) -> str:
        """The current verifier key: log-wide (``auditkeep.local/<log id>``), or named after
        ``tenant``'s checkpoint origin, as that tenant's checkpoints are signed."""
        keys = self.stored_keys()
        if not keys:
            raise NotFound("this store records no verifier key yet")
        verifier = keys[-1].verifier()
        if tenant is None:
            return verifier.vkey()
        check_tenant(tenant)
        return NoteVerifier(self.origin(tenant), verifier.public_key).vkey()

    def key_history(self, tenant: str | None = None) -> list[str]:
        """Every verifier key of the log, oldest first, as a key file: each key after a
        ``#`` line saying when it was added and, for a rotated-in key, the size each tenant's
        log had when it started signing (entries from that index on are signed by it)."""
        keys = self.stored_keys()
        if not keys:
            raise NotFound("this store records no verifier key yet")
        if tenant is not None:
            check_tenant(tenant)
        lines: list[str] = []
        for n, k in enumerate(keys):
            when = format_rfc3339(k.added_ns) if k.added_ns else "when the log was created"
            state = "current" if n == len(keys) - 1 else "retired"
            sizes = {tenant: k.first_size(tenant)} if tenant is not None else k.first_sizes
            since = ", ".join(f"{t} from size {size}" for t, size in sorted(sizes.items()))
            signs = f"; signs {since}" if n and since else ("; signs from size 0" if not n else "")
            lines.append(f"# key {n + 1} of {len(keys)} ({state}), added {when}{signs}")
            v = k.verifier()
            lines.append(v.vkey() if tenant is None else NoteVerifier(self.origin(tenant), v.public_key).vkey())
        return lines

    def stored_trust(self, trusted: Sequence[str] = (), *, require_signed: bool = False) -> Trust:
        """Trust in the keys recorded in the store (what verify relies on without ``--key``)."""
        return Trust.from_store([k.verifier() for k in self.stored_keys()], trusted, require_signed=require_signed)

    # tenants ---------------------------------------------------------------------------------

    def tenant_id(self, tenant: str, create: bool = False) -> int:
        tid = self._tenants.get(tenant)
        if tid is not None:
            return tid
        check_tenant(tenant)
        with self._tenant_lock:
            head = self.store.tenant(tenant, create=create)
            if head is None:
                raise NotFound(f"no log for tenant {tenant!r}")
            self._tenants[tenant] = head.tenant_id
            return head.tenant_id

    def head(self, tenant: str) -> Head:
        head = self.store.tenant(tenant)
        if head is None:
            raise NotFound(f"no log for tenant {tenant!r}")
        return head

    def tenants(self) -> list[Head]:
        return self.store.heads()

    def origin(self, tenant: str) -> str:
        return origin_for(self.log_id, tenant)

    def _sizes(self) -> list[tuple[int, int]]:
        return [(h.tenant_id, h.size) for h in self.store.heads()]

    # events ----------------------------------------------------------------------------------

    def _view(self, tenant: str, e: Entry, checked: bool = True) -> Record:
        if not e.leaf:
            raise Expired(tenant, e.index, self._tile_hash(tenant, e.index).hex())
        return Record(e.index, tenant, open_event(e, checked), leaf_hash(e.leaf).hex())

    def _tile_hash(self, tenant: str, index: int) -> bytes:
        tid = self.tenant_id(tenant)
        tile = self.store.read_tiles(tid, [(0, index // 256)]).get((0, index // 256), b"")
        return tile[32 * (index % 256) : 32 * (index % 256) + 32]

    def view(self, tenant: str, entry: Entry) -> Record:
        """An entry read straight from the store (``store.entries``) as readers see it."""
        return self._view(tenant, entry)

    def get(self, event_id: str, tenant: str = "default") -> Record:
        tid = self.tenant_id(tenant)
        try:
            raw = id_bytes(event_id)
        except ValueError:
            raise NotFound(f"not an event id: {event_id!r}") from None
        e = self.store.entry_by_id(tid, raw)
        if e is None:
            raise NotFound(f"no event {event_id} in tenant {tenant!r}")
        return self._view(tenant, e)

    def record_at(self, index: int, tenant: str = "default") -> Record:
        """The event at ``index`` as a reader sees it."""
        return self._view(tenant, self.entry(index, tenant))

    def entry(self, index: int, tenant: str = "default") -> Entry:
        tid = self.tenant_id(tenant)
        got = list(self.store.entries(tid, index, index + 1))
        if not got:
            raise NotFound(f"no entry at index {index} in tenant {tenant!r}")
        return got[0]

    def records(self, start: int, end: int, tenant: str = "default", *, checked: bool = True) -> list[Record]:
        """Entries ``start`` to ``end`` (exclusive) of a tenant's log, as readers see them (for
        followers such as the live tail that read by log index, not through the projection).
        ``checked=False`` (exports, forwarding: records only formatted) gives
        :class:`StoredEvent` events, decoded without the model's string patterns."""
        tid = self.tenant_id(tenant)
        return [self._view(tenant, e, checked) for e in self.store.entries(tid, start, end) if e.leaf]

    # tiles (C2SP tlog-tiles) -------------------------------------------------------------------

    def tile(self, tenant: str, level: int, index: int, width: int) -> bytes:
        """The hash tile ``level/index`` of ``width`` hashes. A stored tile may be wider than
        asked (it grew since); its prefix is the tile asked for."""
        data = self.store.read_tiles(self.tenant_id(tenant), [(level, index)]).get((level, index))
        if data is None or len(data) < width * HASH_SIZE:
            raise NotFound(f"no tile {level}/{index} of width {width} in this log")
        return data[: width * HASH_SIZE]

    def tile_entries(self, tenant: str, index: int, width: int) -> list[Entry]:
        """The ``width`` entries of entry bundle ``index`` (their leaves are the bundle)."""
        start = index * TILE_WIDTH
        entries = list(self.store.entries(self.tenant_id(tenant), start, start + width))
        if len(entries) != width:
            raise NotFound(f"no entry bundle {index} of width {width} in this log")
        return entries

    # search ----------------------------------------------------------------------------------

    def sync_projection(self, tenant: str, progress: Callable[[int], None] | None = None) -> int:
        """Bring the search projection up to the committed head (a writer does this in the
        background; a read-only reader only into a temporary projection of its own)."""
        head = self.head(tenant)
        return self._projector.sync(head.tenant_id, head.size, progress)

    def projection_lag(self, tenant: str) -> int:
        head = self.head(tenant)
        return head.size - self.store.projection_position(head.tenant_id)

    def search(
        self,
        tenant: str = "default",
        *,
        order: str = "newest",
        cursor: str | None = None,
        limit: int = 100,
        filters: Filters | None = None,
        **by: Unpack[FilterArgs],
    ) -> Page:
        """Search one tenant's events, by ``filters`` parsed once by a face (CLI, HTTP) or by
        filter keywords (:class:`~auditkeep.query.filters.FilterArgs`). Filters combine with
        AND; ``action`` ending in ``*`` is a prefix (``user.*``); ``metadata`` holds
        equalities on paths below ``metadata``; ``submitter`` is ``KIND`` or ``KIND:ID`` (who
        appended, as recorded in the leaf). Results are ordered by event time (then log
        index); ``cursor`` continues a page.

        The projection is brought up to the log's head first when the store allows it;
        otherwise (a read-only store with a projection of its own) the page says how many
        of the newest entries the search did not see (``unindexed``)."""
        built = self._query(tenant, Filters.of(filters, by, "search"), order, cursor, limit)
        if built is None:
            return Page([], None)
        q, unindexed = built
        hits = self.store.search(q)
        entries = self.store.entries_by_key([k for _, k in hits])
        items = [self._view(tenant, entries[k]) for _, k in hits if k in entries and entries[k].leaf]
        next_cursor = encode_cursor(hits[-1]) if len(hits) == limit else None
        return Page(items, next_cursor, unindexed)

    def _query(
        self, tenant: str, f: Filters, order: str = "newest", cursor: str | None = None, limit: int = 100
    ) -> tuple[Query, int] | None:
        """The store query of a search's filters (validated), with how many of the newest
        entries the projection has not seen; None when the tenant does not exist."""
        if self._no_key:
            raise KeyUnavailable(NO_KEY)
        if order not in ("newest", "oldest"):
            raise ValidationError("must be 'newest' or 'oldest'", "order")
        if not 1 <= limit <= 10_000:
            raise ValidationError("must be between 1 and 10000", "limit")
        # NUL ends a string in SQLite's JSON paths and FTS queries and cannot be in PostgreSQL text.
        if f.text is not None and "\x00" in f.text:
            raise ValidationError("contains a NUL character", "text")
        if any("\x00" in path for path, _ in f.metadata):
            raise ValidationError("a metadata path contains a NUL character", "metadata")
        wanted_submitter = None
        if f.submitter is not None:
            try:
                wanted_submitter = parse_submitter_filter(f.submitter)
            except ValueError as exc:
                raise ValidationError(str(exc), "submitter") from None
        after = decode_cursor(cursor) if cursor else None
        try:
            tid = self.tenant_id(tenant)
        except NotFound:
            return None
        unindexed = 0
        if self.store.projection_writable:
            self.sync_projection(tenant)
        else:
            unindexed = max(0, self.projection_lag(tenant))
        q = Query(
            tenant_id=tid,
            since_ns=f.since,
            until_ns=f.until,
            received_since_ns=f.received_since,
            received_until_ns=f.received_until,
            actor=f.actor,
            action=f.action,
            resource_type=f.resource_type,
            resource_id=f.resource_id,
            outcome=f.outcome,
            category=f.category,
            text=f.text,
            metadata=list(f.metadata),
            submitter=wanted_submitter,
            sealed_paths=frozenset(self.config.personal_fields),
            newest_first=order == "newest",
            after=after,
            limit=limit,
        )
        return q, unindexed

    def time_span(
        self, tenant: str = "default", filters: Filters | None = None, **by: Unpack[FilterArgs]
    ) -> tuple[int, int] | None:
        """Earliest and latest event time (ns) of the events matching the filters (as
        :meth:`search` takes them), or None when none match."""
        built = self._query(tenant, Filters.of(filters, by, "time_span"))
        return None if built is None else self.store.time_span(built[0])

    def count_by_time(
        self,
        tenant: str = "default",
        filters: Filters | None = None,
        *,
        origin_ns: int,
        step_ns: int,
        **by: Unpack[FilterArgs],
    ) -> list[tuple[int, str, int]]:
        """Exact counts of the events matching the filters (as :meth:`search` takes them) per
        time bucket and outcome, counted by the store without reading the events:
        ``(bucket, outcome, count)`` where bucket ``i`` is
        ``[origin_ns + i*step_ns, origin_ns + (i+1)*step_ns)``; empty buckets are left out, and
        so are events before ``origin_ns``."""
        if step_ns <= 0:
            raise ValidationError("must be positive", "step")
        built = self._query(tenant, Filters.of(filters, by, "count_by_time"))
        return [] if built is None else self.store.count_by_time(built[0], origin_ns, step_ns)

    # checkpoints and proofs ------------------------------------------------------------------

    def checkpoint(self, tenant: str = "default") -> str:
        """The latest stored checkpoint note."""
        row = self.store.latest_checkpoint(self.tenant_id(tenant))
        if row is None:
            raise NotFound(
                f"tenant {tenant!r} has no signed checkpoint yet (a writer signs one within "
                "checkpoint_interval of an append; `auditkeep checkpoint --new` signs one now)"
            )
        return row.note

    def cosigned_checkpoint(self, tenant: str = "default", size: int | None = None) -> str:
        """The stored checkpoint note (the latest, or the one at ``size``) with the witnesses'
        cosignatures kept for it appended."""
        from auditkeep.ledger.cosigned import cosigned_note

        tid = self.tenant_id(tenant)
        row = self.store.latest_checkpoint(tid) if size is None else self.store.checkpoint_at(tid, size)
        if row is None:
            # raises NotFound, saying how to get one
            self.checkpoint(tenant) if size is None else self.checkpoint_at(size, tenant)
            raise NotFound(f"no checkpoint for tenant {tenant!r}")
        return cosigned_note(self.store, row)

    def checkpoint_at(self, size: int, tenant: str = "default") -> str:
        row = self.store.checkpoint_at(self.tenant_id(tenant), size)
        if row is None:
            raise NotFound(f"no checkpoint at size {size} for tenant {tenant!r}")
        return row.note

    def _reader(self, tid: int) -> Callable[[Sequence[tuple[int, int]]], Mapping[tuple[int, int], bytes]]:
        return lambda keys: self.store.read_tiles(tid, keys)

    def _covering_checkpoint(self, tid: int, need: int, size: int | None) -> tuple[int, str]:
        """The checkpoint a proof is made against: the one at ``size``, or the latest, which
        must cover ``need`` entries. A reader never signs one: it says what is missing."""
        if size is not None:
            row = self.store.checkpoint_at(tid, size)
            if row is None:
                raise NotFound(f"no signed checkpoint at size {size}")
            return row.size, row.note
        row = self.store.latest_checkpoint(tid)
        if row is None or row.size < need:
            signed = f"the latest is at size {row.size}" if row is not None else "there is none yet"
            raise NotFound(
                f"no stored checkpoint covers {need} entries ({signed}); a writer signs the log "
                "within checkpoint_interval, or now with `auditkeep checkpoint --new`"
            )
        return row.size, row.note

    def prove_inclusion(
        self,
        index: int | None = None,
        tenant: str = "default",
        size: int | None = None,
        *,
        event_id: str | None = None,
    ) -> InclusionProof:
        """Proof that the entry at ``index`` (or with ``event_id``) is in the tree of ``size``
        (default: the latest checkpoint; a writer signs one if none covers the entry)."""
        tid = self.tenant_id(tenant)
        if event_id is not None:
            index = self.get(event_id, tenant).index
        if index is None or index < 0:
            raise ValidationError("an index >= 0 or an event id is required", "index")
        head = self.head(tenant)
        if index >= head.size:
            raise NotFound(f"index {index} is beyond the log's size {head.size}")
        tree_size, note = self._covering_checkpoint(tid, index + 1, size)
        if index >= tree_size:
            raise ValidationError(f"index {index} is not in a tree of size {tree_size}", "index")
        read = self._reader(tid)
        hashes = inclusion_proof(index, tree_size, read)
        tile = read([(0, index // 256)])[(0, index // 256)]
        lh = tile[32 * (index % 256) : 32 * (index % 256) + 32]
        return InclusionProof(tenant, index, tree_size, lh.hex(), [h.hex() for h in hashes], note)

    def prove_consistency(self, old_size: int, new_size: int | None = None, tenant: str = "default") -> ConsistencyProof:
        """Proof that the tree of ``old_size`` is a prefix of the tree of ``new_size`` (default:
        the latest checkpoint)."""
        tid = self.tenant_id(tenant)
        size = self.head(tenant).size
        if old_size > size:
            raise ValidationError(f"{old_size} is beyond the log's size {size}: give a tree size from 0 to {size}", "from")
        if new_size is not None and new_size > size:
            raise ValidationError(f"{new_size} is beyond the log's size {size}", "to")
        if new_size is not None and old_size > new_size:
            raise ValidationError(f"{old_size} is after to ({new_size}): the older tree comes first", "from")
        tree_size, note = self._covering_checkpoint(tid, old_size, new_size)
        if not 0 <= old_size <= tree_size:
            raise ValidationError(f"from must be between 0 and {tree_size}", "from")
        hashes = consistency_proof(old_size, tree_size, self._reader(tid))
        return ConsistencyProof(tenant, old_size, tree_size, [h.hex() for h in hashes], note)

    def verify_checkpoint(self, note: str, tenant: str | None = None) -> Checkpoint:
        """Check a checkpoint note's signature against the stored keys (and its origin, when
        ``tenant`` is given)."""
        keys = [k.verifier() for k in self.stored_keys()]
        return verify_checkpoint(note, keys, self.origin(tenant) if tenant else None)

    # verification ----------------------------------------------------------------------------

    def verify(
        self,
        tenant: str | None = None,
        trusted: Sequence[str] = (),
        progress: Callable[[int], None] | None = None,
        *,
        trust: Trust | None = None,
        live: bool = False,
    ) -> VerifyReport:
        """Recompute and check everything for one tenant or all of them, relying on ``trust``
        (default: the keys recorded in the store, plus ``trusted`` checkpoint notes).
        ``live``: the log may grow meanwhile (see :func:`verify_log`)."""
        from auditkeep.ledger.verify import verify_log  # with its worker processes: for verify only

        if trust is None:
            trust = self.stored_trust(trusted)
        elif trusted:
            trust = trust.with_trusted(trusted)
        heads = self.store.heads() if tenant is None else [self.head(tenant)]
        reports: list[TenantReport] = [
            verify_log(self.store, h, self.origin(h.tenant), trust, progress, live=live)
            for h in heads
        ]
        return VerifyReport(reports, trust)


def encode_cursor(hit: tuple[int, int]) -> str:
    return base64.urlsafe_b64encode(f"{hit[0]}:{hit[1]}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        t, k = raw.split(":")
        at, key = int(t), int(k)
        if not (-(2**63) <= at < 2**63 and 0 <= key < 2**63):
            raise ValueError("out of range")
        return at, key
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationError("not a cursor returned by a previous page", "cursor") from None
