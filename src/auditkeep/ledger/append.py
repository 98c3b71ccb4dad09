"""The sequencing step of the append path, run inside one store transaction.

Validation has already happened (outside the lock). Here each event gets its tenant,
``received_at`` and commitments, becomes canonical bytes, is hashed, and joins the tree.
A request whose events conflict or exceed the size limit is refused whole; the others in
the same group commit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import msgspec

from auditkeep.crypto.commit import commitment, event_key
from auditkeep.ledger.config import LedgerConfig
from auditkeep.log.checkpoint import Checkpoint, sign_checkpoint
from auditkeep.log.hashing import leaf_hash
from auditkeep.log.note import NoteSigner
from auditkeep.log.tiles import Frontier, partial_tile_keys
from auditkeep.model.canonical import canonical_bytes
from auditkeep.model.errors import ConflictError, ValidationError
from auditkeep.model.event import Event
from auditkeep.model.ids import id_bytes
from auditkeep.model.paths import get_path, pop_path
from auditkeep.model.timefmt import format_rfc3339
from auditkeep.model.validate import Checked, check_strings
from auditkeep.store.base import AppendTxn, CheckpointRow, Entry, Head, TileKey


class Receipt(msgspec.Struct, frozen=True):
    """Proof of acceptance: the event is durable at ``index`` of ``tenant``'s log."""

    id: str
    tenant: str
    index: int
    leaf_hash: str
    received_at: str


@dataclass
class Pending:
    """One caller's batch, all or nothing."""

    tenant: str
    tenant_id: int
    events: list[Event]
    checked: list[Checked]
    client_ids: list[bool]  # True where the caller chose the id (may already exist)
    future: Future[list[Receipt]] = field(default_factory=Future)
    receipts: list[Receipt] | None = None  # set when sequenced; delivered after the commit


@dataclass
class _TenantWork:
    head: Head
    frontier: Frontier
    entries: list[Entry] = field(default_factory=list)
    tiles: dict[TileKey, bytes] = field(default_factory=dict)
    grew: bool = False


def origin_for(log_id: str, tenant: str) -> str:
    return f"auditkeep.local/{log_id}/{tenant}"


class Sequencer:
    """Turns pending batches into entries, tiles and heads inside an append transaction."""

    def __init__(self, cfg: LedgerConfig, signer: NoteSigner, log_id: str, now_ns: Callable[[], int]) -> None:
        self.cfg = cfg
        self.signer = signer
        self.log_id = log_id
        self.now_ns = now_ns
        self.frontiers: dict[int, Frontier] = {}  # committed right edges, by tenant id
        self._personal = cfg.personal_fields

    def frontier(self, txn: AppendTxn, head: Head) -> Frontier:
        cached = self.frontiers.get(head.tenant_id)
        if cached is not None and cached.size == head.size:
            return cached.copy()
        keys = [(lv, ix) for lv, ix, _w in partial_tile_keys(head.size)]
        return Frontier.load(head.size, txn.read_tiles(head.tenant_id, keys))

    def run(self, txn: AppendTxn, group: Sequence[Pending]) -> dict[int, _TenantWork]:
        """Sequence every pending batch; set each one's outcome on its future only after
        the caller commits (see :meth:`finish`). Returns the per-tenant work to write."""
        work: dict[int, _TenantWork] = {}
        for p in group:
            w = work.get(p.tenant_id)
            if w is None:
                head = txn.head(p.tenant_id)
                w = work[p.tenant_id] = _TenantWork(head, self.frontier(txn, head))
            try:
                p.receipts = self._sequence(txn, w, p)
            except (ValidationError, ConflictError) as exc:
                p.future.set_exception(exc)
        now = self.now_ns()
        for tid, w in work.items():
            cp = None
            if w.head.size > w.head.checkpoint_size and (
                now - w.head.checkpoint_ns >= self.cfg.checkpoint_interval * 1e9
            ):
                cp = self.sign(w.head, now)
                w.head.checkpoint_size, w.head.checkpoint_ns = cp.size, cp.signed_ns
            if w.grew or cp is not None:
                txn.write(tid, w.entries, w.tiles, w.head, cp)
        return work

    def commit_done(self, work: dict[int, _TenantWork], group: Sequence[Pending]) -> None:
        for tid, w in work.items():
            self.frontiers[tid] = w.frontier
        for p in group:
            if p.receipts is not None and not p.future.done():
                p.future.set_result(p.receipts)

    def sign(self, head: Head, now: int) -> CheckpointRow:
        cp = Checkpoint(origin_for(self.log_id, head.tenant), head.size, head.root)
        return CheckpointRow(head.tenant_id, head.size, head.root, sign_checkpoint(cp, self.signer), now)

    # ------------------------------------------------------------------------------------------

    def _sequence(self, txn: AppendTxn, w: _TenantWork, p: Pending) -> list[Receipt]:
        head = w.head
        tid = p.tenant_id
        received_ns = max(self.now_ns(), head.received_ns)
        received_at = format_rfc3339(received_ns)
        raw_ids = [id_bytes(ev.id) for ev in p.events]  # ids are set before sequencing
        claimed = [raw for raw, c in zip(raw_ids, p.client_ids, strict=True) if c]
        existing = txn.existing(tid, claimed) if claimed else {}
        salts = self._salts(txn, tid, p.events)

        receipts: list[Receipt | None] = [None] * len(p.events)
        new_entries: list[Entry] = []
        new_hashes: list[bytes] = []
        seen: dict[bytes, tuple[bytes, int]] = {}  # id -> (leaf, position in new_entries)
        next_index = head.size
        for pos, ev in enumerate(p.events):
            raw = raw_ids[pos]
            old = existing.get(raw)
            if old is not None:
                old_at = format_rfc3339(old.received_ns)
                leaf, _, _ = self._leaf(ev, p.tenant, old.received_ns, old_at, salts, pos, p.checked[pos].exact)
                if leaf != old.leaf:
                    raise ConflictError(ev.id or "", pos)
                receipts[pos] = Receipt(ev.id or "", p.tenant, old.index, leaf_hash(old.leaf).hex(), format_rfc3339(old.received_ns))
                continue
            leaf, subject, sealed = self._leaf(ev, p.tenant, received_ns, received_at, salts, pos, p.checked[pos].exact)
            twin = seen.get(raw)
            if twin is not None:
                if twin[0] != leaf:
                    raise ConflictError(ev.id or "", pos)
                first = new_entries[twin[1]]
                receipts[pos] = Receipt(ev.id or "", p.tenant, first.index, new_hashes[twin[1]].hex(), received_at)
                continue
            h = leaf_hash(leaf)
            seen[raw] = (leaf, len(new_entries))
            new_entries.append(Entry(next_index, raw, received_ns, leaf, subject, sealed))
            new_hashes.append(h)
            receipts[pos] = Receipt(ev.id or "", p.tenant, next_index, h.hex(), received_at)
            next_index += 1

        if new_entries:
            w.tiles.update(w.frontier.append(new_hashes))
            w.entries.extend(new_entries)
            w.head = Head(
                tid,
                p.tenant,
                w.frontier.size,
                w.frontier.root(),
                received_ns,
                head.checkpoint_size,
                head.checkpoint_ns,
            )
            w.grew = True
        return [r for r in receipts if r is not None]

    def _salts(self, txn: AppendTxn, tid: int, events: Sequence[Event]) -> dict[str, bytes]:
        if not self._personal:
            return {}
        subjects: set[str] = set()
        for ev in events:
            if any(get_path(ev, path) is not None for path in self._personal):
                subjects.add(self._subject(ev))
        return txn.salts(tid, sorted(subjects)) if subjects else {}

    def _subject(self, ev: Event) -> str:
        value = get_path(ev, self.cfg.subject_field)
        return str(value) if value is not None else "_"

    def _leaf(
        self,
        ev: Event,
        tenant: str,
        received_ns: int,
        received_at: str,
        salts: dict[str, bytes],
        pos: int,
        exact: bool,
    ) -> tuple[bytes, str | None, bytes | None]:
        """Canonical leaf bytes of ``ev`` received at ``received_at`` (the event is copied, not
        changed, so an idempotent retry can be compared against the stored leaf)."""
        ev = msgspec.structs.replace(ev)
        ev.tenant = tenant
        ev.received_at = received_at
        if ev.time is None:
            ev.time = received_at
        limits = self.cfg.limits
        subject: str | None = None
        sealed_plain: bytes | None = None
        if salts:
            values: dict[str, Any] = {}
            for path in self._personal:
                if get_path(ev, path) is not None:
                    ev = _detach(ev, path)
                    values[path] = pop_path(ev, path)
            if values:
                subject = self._subject(ev)
                key = event_key(salts[subject], ev.id or "")
                ev.sealed = {path: commitment(key, path, v) for path, v in values.items()}
                for path, v in values.items():
                    if isinstance(v, str) and len(v) > limits.max_string:
                        raise ValidationError(f"string longer than {limits.max_string}", path, pos)
                sealed_plain = canonical_bytes(values, exact=True)
        try:
            leaf = canonical_bytes(ev, exact=exact)
        except UnicodeEncodeError:
            raise ValidationError("string is not valid Unicode (lone surrogate)", "", pos) from None
        if len(leaf) > limits.max_string:
            try:
                check_strings(ev, limits)
            except ValidationError as exc:
                raise exc.at(pos) from None
        if len(leaf) > limits.max_event_bytes:
            raise ValidationError(
                f"event is {len(leaf)} bytes in canonical form, more than {limits.max_event_bytes}", "", pos
            )
        return leaf, subject, sealed_plain


def _detach(ev: Event, path: str) -> Event:
    """Copy the part of ``ev`` that ``path`` changes, so the caller's event stays intact."""
    head = path.split(".", 1)[0]
    part = getattr(ev, head)
    if isinstance(part, msgspec.Struct):
        setattr(ev, head, msgspec.structs.replace(part))
    elif isinstance(part, dict):
        setattr(ev, head, _deep_copy_dict(part))
    return ev


def _deep_copy_dict(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy_dict(v) if isinstance(v, dict) else v for k, v in d.items()}
