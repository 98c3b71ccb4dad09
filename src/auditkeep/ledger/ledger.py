"""The ledger: the only writer of the log, and the reads that come with proofs."""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from auditkeep.ledger.append import Pending, Receipt, Sequencer, origin_for
from auditkeep.ledger.config import LedgerConfig
from auditkeep.ledger.datadir import Identity, establish
from auditkeep.ledger.projector import Projector
from auditkeep.ledger.verify import TenantReport, VerifyReport, verify_log
from auditkeep.ledger.writer import Writer
from auditkeep.log.checkpoint import Checkpoint, verify_checkpoint
from auditkeep.log.hashing import leaf_hash
from auditkeep.log.note import NoteVerifier
from auditkeep.log.proofs import consistency_proof, inclusion_proof
from auditkeep.model.context import merge_into
from auditkeep.model.errors import ConflictError, ValidationError
from auditkeep.model.event import Event, TenantName
from auditkeep.model.ids import id_bytes, uuid7_batch
from auditkeep.model.paths import set_path
from auditkeep.model.timeargs import optional_time_arg
from auditkeep.model.validate import convert_batch, validate_event
from auditkeep.store.base import Entry, Head, Query, Store

if TYPE_CHECKING:
    from auditkeep.policy.pipeline import Pipeline

_TENANT = msgspec.json.Decoder(TenantName)
_leaf = msgspec.json.Decoder(Event)
_sealed = msgspec.json.Decoder(dict[str, Any])
ERASED = "[erased]"


class NotFound(LookupError):
    """The tenant, event, index or checkpoint asked for does not exist."""


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
    items: list[Record]
    next_cursor: str | None = None


def check_tenant(name: str) -> str:
    try:
        return _TENANT.decode(msgspec.json.encode(name))
    except msgspec.ValidationError:
        raise ValidationError("expected 1-63 lowercase letters, digits, '.', '_' or '-'", "tenant") from None


class Ledger:
    """Appends events to per-tenant Merkle logs and answers searches and proofs.

    ``Ledger.open(path)`` opens (or creates) the embedded SQLite store in a data directory.
    Appends are durable when :meth:`append` returns.
    """

    def __init__(
        self,
        store: Store,
        identity: Identity,
        config: LedgerConfig | None = None,
        *,
        background: bool = True,
        now_ns: Callable[[], int] = time.time_ns,
        pipeline: Pipeline | None = None,
    ) -> None:
        self.store = store
        self.identity = identity
        self.config = config or LedgerConfig()
        # Capture policy and redaction for events submitted with a source name (sources and
        # the HTTP API); the server's and the alert runner's own events pass untouched.
        self.pipeline = pipeline
        self.verifier: NoteVerifier = identity.signer.verifier()
        self._seq = Sequencer(self.config, identity.signer, identity.log_id, now_ns)
        self._projector = Projector(store, self._sizes)
        self._writer = Writer(store, self._seq, self.config.max_group_events, self._projector.notify)
        self._tenants: dict[str, int] = {}
        self._tenant_lock = threading.Lock()
        self._closed = False
        if background:
            self._projector.start()

    @classmethod
    def open(
        cls,
        path: str | Path = "auditkeep-data",
        config: LedgerConfig | None = None,
        *,
        create: bool = True,
        log_id: str | None = None,
        signing_key: str | None = None,
        background: bool = True,
    ) -> Ledger:
        from auditkeep.store.sqlite import SQLiteStore

        cfg = config or LedgerConfig()
        directory = Path(path)
        if not create and not (directory / "log.db").exists():
            from auditkeep.ledger.datadir import DataDirError

            raise DataDirError(f"no auditkeep data in {directory}; run `auditkeep init` first")
        store = SQLiteStore(directory, durability=cfg.durability)
        try:
            identity, _ = establish(store, directory, log_id=log_id, signing_key=signing_key, create=create)
        except BaseException:
            store.close()
            raise
        return cls(store, identity, cfg, background=background)

    def close(self) -> None:
        """Commit what is queued, sign final checkpoints, stop background work."""
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        self._projector.close()
        self.store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
        return origin_for(self.identity.log_id, tenant)

    def _sizes(self) -> list[tuple[int, int]]:
        return [(h.tenant_id, h.size) for h in self.store.heads()]

    def on_commit(self, listener: Callable[[set[int]], None]) -> None:
        """Call ``listener`` (in the writer thread; keep it short) with the tenant ids that grew."""
        self._writer.add_listener(listener)

    # appending -------------------------------------------------------------------------------

    def submit(
        self,
        events: Sequence[Event | Mapping[str, Any] | bytes | str],
        tenant: str = "default",
        *,
        source: str | None = None,
    ) -> Future[list[Receipt]]:
        """Validate and queue a batch; the future resolves when it is durable.

        Raises :class:`ValidationError` at once (naming the position and field) if any event
        is invalid: nothing of the batch is stored. Event objects are normalised in place.

        With a ``source`` (``api``, ``kubernetes``, ...) and a :attr:`pipeline`, each event
        first passes the capture policy and redaction: events the policy drops get no
        receipt, so the receipts cover the kept events, in order. Error positions still
        count every event given.
        """
        if self._closed:
            raise RuntimeError("ledger is closed")
        evs = convert_batch(events)
        positions: list[int] | None = None
        if source is not None and self.pipeline is not None:
            evs, positions = self._apply_policy(evs, source)
        limits = self.config.limits
        checked = []
        for i, ev in enumerate(evs):
            try:
                checked.append(validate_event(ev, limits, tenant))
            except ValidationError as exc:
                raise exc.at(i if positions is None else positions[i]) from None
        client = [ev.id is not None for ev in evs]
        missing = client.count(False)
        if missing:
            fresh = iter(uuid7_batch(missing))
            for ev in evs:
                if ev.id is None:
                    ev.id = next(fresh)
        tid = self.tenant_id(tenant, create=True)
        pending = Pending(tenant, tid, evs, checked, client)
        if not evs:
            pending.future.set_result([])
            return pending.future
        self._writer.submit(pending)
        if positions is None:
            return pending.future
        return _renumbered(pending.future, positions)

    def _apply_policy(self, evs: list[Event], source: str) -> tuple[list[Event], list[int]]:
        """The events the pipeline keeps (changed in place) and their positions in ``evs``."""
        assert self.pipeline is not None
        process = self.pipeline.process
        kept: list[Event] = []
        positions: list[int] = []
        for i, ev in enumerate(evs):
            out = process(ev, source)
            if out is not None:
                kept.append(out)
                positions.append(i)
        return kept, positions

    def append(
        self,
        events: Sequence[Event | Mapping[str, Any] | bytes | str],
        tenant: str = "default",
        timeout: float | None = None,
        *,
        source: str | None = None,
    ) -> list[Receipt]:
        """Append a batch, all or nothing; returns one receipt per kept event once durable
        (every event, unless ``source`` names a source whose policy drops some)."""
        return self.submit(events, tenant, source=source).result(timeout)

    def record(self, tenant: str = "default", **fields: Any) -> Receipt:
        """Append one event given as keyword arguments (``actor=``, ``action=``, ...),
        completed from the active ``auditkeep.context``; returns once it is durable."""
        return self.append([merge_into(fields)], tenant)[0]

    def record_many(self, events: Iterable[Mapping[str, Any] | Event], tenant: str = "default") -> list[Receipt]:
        """Append events (dicts are completed from the active ``auditkeep.context``)."""
        return self.append([e if isinstance(e, Event) else merge_into(dict(e)) for e in events], tenant)

    # reading ---------------------------------------------------------------------------------

    def _view(self, tenant: str, e: Entry) -> Record:
        ev = _leaf.decode(e.leaf)
        if ev.sealed:
            values = _sealed.decode(e.sealed) if e.sealed else {}
            for path in ev.sealed:
                set_path(ev, path, values.get(path, ERASED))
            ev.sealed = None
        return Record(e.index, tenant, ev, leaf_hash(e.leaf).hex())

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

    def records(self, start: int, end: int, tenant: str = "default") -> list[Record]:
        """Entries ``start`` to ``end`` (exclusive) of a tenant's log, as readers see them (for
        followers such as the live tail that read by log index, not through the projection)."""
        tid = self.tenant_id(tenant)
        return [self._view(tenant, e) for e in self.store.entries(tid, start, end)]

    def sync_projection(self, tenant: str, progress: Callable[[int], None] | None = None) -> int:
        """Bring the search projection up to the committed head (normally done in the background)."""
        head = self.head(tenant)
        return self._projector.sync(head.tenant_id, head.size, progress)

    def projection_lag(self, tenant: str) -> int:
        head = self.head(tenant)
        return head.size - self.store.projection_position(head.tenant_id)

    def search(
        self,
        tenant: str = "default",
        *,
        since: int | str | datetime | None = None,
        until: int | str | datetime | None = None,
        received_since: int | str | datetime | None = None,
        received_until: int | str | datetime | None = None,
        actor: str | None = None,
        action: str | None = None,
        resource_type: str | None = None,
        resource_id: str | None = None,
        outcome: str | None = None,
        category: str | None = None,
        text: str | None = None,
        metadata: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        order: str = "newest",
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page:
        """Search one tenant's events. Filters combine with AND; ``action`` ending in ``*`` is
        a prefix (``user.*``); ``metadata`` holds equalities on paths below ``metadata``.
        Results are ordered by event time (then log index); ``cursor`` continues a page."""
        if order not in ("newest", "oldest"):
            raise ValidationError("must be 'newest' or 'oldest'", "order")
        if not 1 <= limit <= 10_000:
            raise ValidationError("must be between 1 and 10000", "limit")
        pairs = list(metadata.items()) if isinstance(metadata, Mapping) else list(metadata or [])
        # NUL ends a string in SQLite's JSON paths and FTS queries and cannot be in PostgreSQL text.
        if text is not None and "\x00" in text:
            raise ValidationError("contains a NUL character", "text")
        if any("\x00" in path for path, _ in pairs):
            raise ValidationError("a metadata path contains a NUL character", "metadata")
        bounds = {
            name: _time_arg(value, name)
            for name, value in (
                ("since", since), ("until", until), ("received_since", received_since), ("received_until", received_until)
            )
        }  # fmt: skip
        after = decode_cursor(cursor) if cursor else None
        try:
            tid = self.tenant_id(tenant)
        except NotFound:
            return Page([], None)
        self.sync_projection(tenant)
        q = Query(
            tenant_id=tid,
            since_ns=bounds["since"],
            until_ns=bounds["until"],
            received_since_ns=bounds["received_since"],
            received_until_ns=bounds["received_until"],
            actor=actor,
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            outcome=outcome,
            category=category,
            text=text,
            metadata=pairs,
            sealed_paths=frozenset(self.config.personal_fields),
            newest_first=order == "newest",
            after=after,
            limit=limit,
        )
        hits = self.store.search(q)
        entries = self.store.entries_by_key([k for _, k in hits])
        items = [self._view(tenant, entries[k]) for _, k in hits if k in entries]
        next_cursor = encode_cursor(hits[-1]) if len(hits) == limit else None
        return Page(items, next_cursor)

    # checkpoints and proofs ------------------------------------------------------------------

    def checkpoint(self, tenant: str = "default", new: bool = False) -> str:
        """The latest signed checkpoint note; ``new`` signs the current head first."""
        tid = self.tenant_id(tenant)
        if new:
            self._writer.sign_now(tid)
        row = self.store.latest_checkpoint(tid)
        if row is None:
            self._writer.sign_now(tid)
            row = self.store.latest_checkpoint(tid)
        if row is None:
            raise NotFound(f"tenant {tenant!r} has an empty log: nothing to sign yet")
        return row.note

    def checkpoint_at(self, size: int, tenant: str = "default") -> str:
        row = self.store.checkpoint_at(self.tenant_id(tenant), size)
        if row is None:
            raise NotFound(f"no checkpoint at size {size} for tenant {tenant!r}")
        return row.note

    def _reader(self, tid: int) -> Callable[[Sequence[tuple[int, int]]], Mapping[tuple[int, int], bytes]]:
        return lambda keys: self.store.read_tiles(tid, keys)

    def _covering_checkpoint(self, tid: int, need: int, size: int | None) -> tuple[int, str]:
        if size is not None:
            row = self.store.checkpoint_at(tid, size)
            if row is None:
                raise NotFound(f"no signed checkpoint at size {size}")
            return row.size, row.note
        row = self.store.latest_checkpoint(tid)
        if row is None or row.size < need:
            self._writer.sign_now(tid)
            row = self.store.latest_checkpoint(tid)
        if row is None or row.size < need:
            raise NotFound("no checkpoint covers that index yet")
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
        (default: the latest checkpoint, signing one if none covers the entry)."""
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
        """Check a checkpoint note's signature (and origin, when ``tenant`` is given)."""
        return verify_checkpoint(note, self.verifier, self.origin(tenant) if tenant else None)

    # verification ----------------------------------------------------------------------------

    def verify(
        self,
        tenant: str | None = None,
        trusted: Sequence[str] = (),
        progress: Callable[[int], None] | None = None,
    ) -> VerifyReport:
        """Recompute and check everything for one tenant or all of them."""
        heads = self.store.heads() if tenant is None else [self.head(tenant)]
        reports: list[TenantReport] = []
        for h in heads:
            mine = [n for n in trusted if _note_origin(n) == self.origin(h.tenant)]
            reports.append(verify_log(self.store, h, self.verifier, self.origin(h.tenant), mine, progress))
        return VerifyReport(reports)


def _renumbered(fut: Future[list[Receipt]], positions: list[int]) -> Future[list[Receipt]]:
    """``fut`` whose errors (a conflict, an event too large once sealed) name the caller's
    positions, not the kept events'."""
    out: Future[list[Receipt]] = Future()

    def done(f: Future[list[Receipt]]) -> None:
        exc = f.exception()
        if exc is None:
            out.set_result(f.result())
            return
        if isinstance(exc, ConflictError | ValidationError) and exc.position is not None and 0 <= exc.position < len(positions):
            exc = ConflictError(exc.event_id, positions[exc.position]) if isinstance(exc, ConflictError) else exc.at(positions[exc.position])
        out.set_exception(exc)

    fut.add_done_callback(done)
    return out


def _note_origin(note: str) -> str:
    return note.split("\n", 1)[0]


def _time_arg(value: int | str | datetime | None, name: str) -> int | None:
    """The one parser of time arguments (``1h``, ``now``, RFC 3339, ns, datetime) of every face."""
    return optional_time_arg(value, name)


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


__all__ = [
    "ConsistencyProof",
    "InclusionProof",
    "Ledger",
    "NotFound",
    "Page",
    "Receipt",
    "Record",
]
