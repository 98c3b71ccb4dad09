"""The sequencing step of the append path, run inside one store transaction.

Validation has already happened (outside the lock). Here each event gets its tenant,
``received_at`` and commitments, becomes canonical bytes, is hashed, and joins the tree.
A request whose events conflict or exceed the size limit is refused whole; the others in
the same group commit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import msgspec

from auditkeep.crypto.commit import HmacKey
from auditkeep.ledger.config import LedgerConfig
from auditkeep.ledger.datadir import Identity
from auditkeep.ledger.keyring import origin_for as origin_for  # re-exported: its old home
from auditkeep.ledger.seal import Sealer, Split
from auditkeep.log.checkpoint import Checkpoint
from auditkeep.log.hashing import leaf_hash
from auditkeep.log.note import sign_note
from auditkeep.log.tiles import Frontier, partial_tile_keys
from auditkeep.model.canonical import canonical_bytes
from auditkeep.model.errors import ConflictError, ValidationError
from auditkeep.model.event import Event, Submitter
from auditkeep.model.timefmt import format_rfc3339
from auditkeep.model.wire import Receipt as Receipt  # re-exported: its old home
from auditkeep.store.base import AppendTxn, CheckpointRow, Entry, Head, TileKey


@dataclass
class Pending:
    """One caller's batch, all or nothing."""

    tenant: str
    tenant_id: int
    events: list[Event]
    exact: list[bool]  # canonicalise with the reference implementation (model/validate.py)
    client_ids: list[bool]  # True where the caller chose the id (may already exist)
    submitter: Submitter | None = None  # recorded in every leaf of the batch
    future: Future[list[Receipt]] = field(default_factory=Future)
    receipts: list[Receipt] | None = None  # set when sequenced; delivered after the commit
    thread: int = 0  # the submitting thread (its batches keep their order: ledger/grouping.py)
    ahead: SealedAhead | None = None  # personal fields sealed before it queued (Sequencer.seal_ahead)


@dataclass
class SealedAhead:
    """A batch's personal fields sealed outside the writer, with the salts cached when the
    store had seen ``erasures`` erasures: valid if the count under the append lock is the same."""

    erasures: int
    # by event: None (no personal value), MISSING (its subject's salt was not cached: sealed
    # under the lock), or (subject, the changes that seal it, the sealed plaintext)
    parts: list[tuple[str, dict[str, Any], bytes] | None]
    missing: int  # how many are MISSING


@dataclass
class _TenantWork:
    head: Head
    frontier: Frontier
    entries: list[Entry] = field(default_factory=list)
    tiles: dict[TileKey, bytes] = field(default_factory=dict)
    grew: bool = False


class Sequencer:
    """Turns pending batches into entries, tiles and heads inside an append transaction."""

    def __init__(self, cfg: LedgerConfig, identity: Identity, now_ns: Callable[[], int]) -> None:
        self.cfg = cfg
        self.identity = identity
        self.log_id = identity.log_id
        self.now_ns = now_ns
        self.frontiers: dict[int, Frontier] = {}  # committed right edges, by tenant id
        self.sealer = Sealer(cfg.personal_fields, cfg.subject_field)
        self._salt_cache: dict[tuple[int, str], HmacKey] = {}
        self._txn_salts: dict[tuple[int, str], HmacKey] = {}
        self._erasures = 0  # the store's erasure count the salt cache was filled under

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
        if len(self._salt_cache) > 200_000:
            self._salt_cache.clear()
        self._salt_cache.update(self._txn_salts)
        self._txn_salts.clear()
        for p in group:
            if p.receipts is not None and not p.future.done():
                p.future.set_result(p.receipts)

    def rollback(self, tenant_ids: Sequence[int]) -> None:
        """Forget state derived from a transaction that did not commit."""
        self._txn_salts.clear()
        for tid in tenant_ids:
            self.frontiers.pop(tid, None)

    def seal_ahead(self, p: Pending) -> None:
        """Seal ``p``'s personal fields now, in the submitting thread, with the salts already
        cached: the HMACs are a third of sequencing an event, and the writer sequences one
        group at a time, so a batch queued behind this one waits that much less. Batches
        with ids the caller chose are left to the writer (a retry is compared with the
        stored leaf); so is anything this cannot do (the writer then does as before)."""
        if not self.sealer.paths or True in p.client_ids:
            return
        # The count before the cache: _personal clears the cache before it moves the count,
        # so a salt read here is valid under this count or the count is seen to move.
        erasures = self._erasures
        cache = self._salt_cache
        tid = p.tenant_id
        split = self.sealer.split
        sealing = self.sealer.sealing
        subject_of = self.sealer.subject
        plain = _plain.encode
        parts: list[tuple[str, dict[str, Any], bytes] | None] = []
        missing = 0
        try:
            for ev in p.events:
                got = split(ev)
                if got is None:
                    parts.append(None)
                    continue
                subject = subject_of(ev)
                salt = cache.get((tid, subject))
                if salt is None:
                    parts.append(MISSING)
                    missing += 1
                    continue
                parts.append((subject, sealing(ev, got, salt), plain(got[0])))
        except Exception:  # e.g. a lone surrogate: the writer reports it as it always has
            return
        if missing < len(parts):
            p.ahead = SealedAhead(erasures, parts, missing)

    def sign(self, head: Head, now: int) -> CheckpointRow:
        origin = origin_for(self.log_id, head.tenant)
        cp = Checkpoint(origin, head.size, head.root)
        note = sign_note(cp.body(), self.identity.signers_for(origin))
        return CheckpointRow(head.tenant_id, head.size, head.root, note, now)

    # ------------------------------------------------------------------------------------------

    def _sequence(self, txn: AppendTxn, w: _TenantWork, p: Pending) -> list[Receipt]:
        head = w.head
        tid = p.tenant_id
        tenant = p.tenant
        received_ns = max(self.now_ns(), head.received_ns)
        received_at = format_rfc3339(received_ns)
        raw_ids = [bytes.fromhex(ev.id.replace("-", "")) for ev in p.events]  # type: ignore[union-attr]
        ahead = self._sealed_ahead(txn, p)
        if ahead is not None and not ahead.missing:
            subjects: list[str] = []
            salts: dict[str, HmacKey] = {}
        else:
            subjects, salts = self._personal(txn, tid, p.events)
        if True in p.client_ids:
            receipts, new_entries, new_hashes = self._sequence_claimed(
                txn, p, raw_ids, subjects, salts, head.size, received_ns, received_at
            )
        else:
            receipts, new_entries, new_hashes = self._sequence_fresh(
                p, raw_ids, subjects, salts, head.size, received_ns, received_at, None if ahead is None else ahead.parts
            )
        if new_entries:
            w.tiles.update(w.frontier.append(new_hashes))
            w.entries.extend(new_entries)
            w.head = Head(
                tid,
                tenant,
                w.frontier.size,
                w.frontier.root(),
                received_ns,
                head.checkpoint_size,
                head.checkpoint_ns,
            )
            w.grew = True
        return receipts

    def _sequence_fresh(
        self,
        p: Pending,
        raw_ids: list[bytes],
        subjects: list[str],
        salts: dict[str, HmacKey],
        index: int,
        received_ns: int,
        received_at: str,
        ahead: list[tuple[str, dict[str, Any], bytes] | None] | None,
    ) -> tuple[list[Receipt], list[Entry], list[bytes]]:
        """The common batch: every id is ours (fresh UUIDv7s), so none can exist or repeat.
        The per-event steps of :meth:`_leaf` inline: this loop runs for every event; with
        ``ahead`` (see :meth:`seal_ahead`), the events sealed already are only stamped."""
        tenant = p.tenant
        submitter = p.submitter
        limit = self.cfg.limits.max_event_bytes
        encode = _canonical.encode
        plain = _plain.encode
        seal = self.sealer.seal
        split = self.sealer.split if self.sealer.paths else _nothing
        sha256 = hashlib.sha256
        receipts: list[Receipt] = []
        entries: list[Entry] = []
        hashes: list[bytes] = []
        subject: str | None
        sealed: bytes | None
        for pos, ev in enumerate(p.events):
            time = ev.time if ev.time is not None else received_at
            part = MISSING if ahead is None else ahead[pos]
            if part is MISSING:
                # Split here, not for the whole batch first: what it makes is then freed event
                # by event, and objects alive across a batch are what makes the collector run.
                got = split(ev)
                if got is None:
                    part = None
                else:
                    subject = subjects[pos]
                    leaf_ev = seal(
                        ev, got, salts[subject], tenant=tenant, received_at=received_at, time=time, submitter=submitter
                    )
                    sealed = plain(got[0])
            elif part is not None:
                subject, changes, sealed = part
                leaf_ev = _replace(ev, tenant=tenant, received_at=received_at, time=time, submitter=submitter, **changes)
            if part is None:
                leaf_ev = _replace(ev, tenant=tenant, received_at=received_at, time=time, submitter=submitter)
                sealed = subject = None
            try:
                leaf = canonical_bytes(leaf_ev, exact=True) if p.exact[pos] else encode(leaf_ev)
            except UnicodeEncodeError:
                raise ValidationError("string is not valid Unicode (lone surrogate)", "", pos) from None
            if len(leaf) > limit:
                raise ValidationError(f"event is {len(leaf)} bytes in canonical form, more than {limit}", "", pos)
            h = sha256(b"\x00" + leaf).digest()  # log/hashing.py:leaf_hash
            entries.append(Entry(index, raw_ids[pos], received_ns, leaf, subject, sealed))
            hashes.append(h)
            receipts.append(Receipt(ev.id, tenant, index, h.hex(), received_at))  # type: ignore[arg-type]
            index += 1
        return receipts, entries, hashes

    def _sequence_claimed(
        self,
        txn: AppendTxn,
        p: Pending,
        raw_ids: list[bytes],
        subjects: list[str],
        salts: dict[str, HmacKey],
        next_index: int,
        received_ns: int,
        received_at: str,
    ) -> tuple[list[Receipt], list[Entry], list[bytes]]:
        """A batch where the caller chose some ids: those may exist already (an idempotent
        retry, answered with the stored receipt) or repeat within the batch."""
        tid = p.tenant_id
        tenant = p.tenant
        claimed = [raw for raw, c in zip(raw_ids, p.client_ids, strict=True) if c]
        existing = txn.existing(tid, claimed) if claimed else {}
        receipts: list[Receipt] = []
        new_entries: list[Entry] = []
        new_hashes: list[bytes] = []
        # Only ids the caller chose can repeat within a batch (ours are fresh UUIDv7s).
        seen: dict[bytes, tuple[bytes, int]] = {}  # id -> (leaf, position in new_entries)
        for pos, ev in enumerate(p.events):
            raw = raw_ids[pos]
            exact = p.exact[pos]
            event_id = ev.id or ""
            got = self.sealer.split(ev) if self.sealer.paths else None
            subject = None if got is None else subjects[pos]
            if p.client_ids[pos]:
                old = existing.get(raw)
                if old is not None:
                    old_at = format_rfc3339(old.received_ns)
                    leaf, _ = self._leaf(ev, tenant, old_at, got, subject, salts, pos, exact, p.submitter)
                    if leaf != old.leaf and (
                        # a leaf stored before leaves named their submitter
                        self._leaf(ev, tenant, old_at, got, subject, salts, pos, exact, None)[0] != old.leaf
                    ):
                        raise ConflictError(event_id, pos)
                    receipts.append(Receipt(event_id, tenant, old.index, leaf_hash(old.leaf).hex(), old_at))
                    continue
                leaf, sealed = self._leaf(ev, tenant, received_at, got, subject, salts, pos, exact, p.submitter)
                twin = seen.get(raw)
                if twin is not None:
                    if twin[0] != leaf:
                        raise ConflictError(event_id, pos)
                    first = new_entries[twin[1]]
                    receipts.append(Receipt(event_id, tenant, first.index, new_hashes[twin[1]].hex(), received_at))
                    continue
                seen[raw] = (leaf, len(new_entries))
            else:
                leaf, sealed = self._leaf(ev, tenant, received_at, got, subject, salts, pos, exact, p.submitter)
            h = leaf_hash(leaf)
            new_entries.append(Entry(next_index, raw, received_ns, leaf, subject, sealed))
            new_hashes.append(h)
            receipts.append(Receipt(event_id, tenant, next_index, h.hex(), received_at))
            next_index += 1
        return receipts, new_entries, new_hashes

    def _sealed_ahead(self, txn: AppendTxn, p: Pending) -> SealedAhead | None:
        """``p``'s parts sealed ahead if they still hold: no erasure came since their salts
        were read (the count read under the append lock, as :meth:`_personal` reads it)."""
        ahead = p.ahead
        if ahead is None:
            return None
        p.ahead = None  # used once: a group sequenced again (a failed commit) seals under the lock
        erasures = txn.erasures()
        if erasures != self._erasures:
            self._salt_cache.clear()
            self._erasures = erasures
        return ahead if ahead.erasures == erasures else None

    def _personal(self, txn: AppendTxn, tid: int, events: Sequence[Event]) -> tuple[list[str], dict[str, HmacKey]]:
        """The subject of each event (used for the events with personal values) and the
        salts of the subjects of the events that have some."""
        if not self.sealer.paths:
            return [], {}
        subjects = list(map(self.sealer.subject, events))
        erasures = txn.erasures()  # read under the append lock: an erasure commits before or after
        if erasures != self._erasures:
            self._salt_cache.clear()
            self._erasures = erasures
        cache, pending = self._salt_cache, self._txn_salts
        salts: dict[str, HmacKey] = {}
        unknown: set[str] = set()
        for s in set(subjects):
            salt = cache.get((tid, s)) or pending.get((tid, s))
            if salt is None:
                unknown.add(s)
            else:
                salts[s] = salt
        if unknown:
            # Only subjects with personal values in this batch get a salt.
            split = self.sealer.split
            wanted = {s for s, ev in zip(subjects, events, strict=True) if s in unknown and split(ev) is not None}
            if wanted:
                # Salts created in this transaction join the cache only once it commits.
                for s, raw in txn.salts(tid, sorted(wanted)).items():
                    salts[s] = pending[(tid, s)] = HmacKey(raw)
        return subjects, salts

    def _leaf(
        self,
        ev: Event,
        tenant: str,
        received_at: str,
        found: Split | None,
        subject: str | None,
        salts: dict[str, HmacKey],
        pos: int,
        exact: bool,
        submitter: Submitter | None,
    ) -> tuple[bytes, bytes | None]:
        """Canonical leaf bytes of ``ev`` received at ``received_at`` and the sealed plaintext.
        The event is copied, not changed, so an idempotent retry can be compared against the
        stored leaf. (String lengths were checked by validation, sealed values included.)"""
        time = ev.time if ev.time is not None else received_at
        sealed_plain: bytes | None = None
        if found is not None and subject is not None:
            leaf_ev = self.sealer.seal(
                ev, found, salts[subject], tenant=tenant, received_at=received_at, time=time, submitter=submitter
            )
            sealed_plain = _plain.encode(found[0])
        else:
            leaf_ev = _replace(ev, tenant=tenant, received_at=received_at, time=time, submitter=submitter)
        try:
            leaf = canonical_bytes(leaf_ev, exact=exact)
        except UnicodeEncodeError:
            raise ValidationError("string is not valid Unicode (lone surrogate)", "", pos) from None
        if len(leaf) > self.cfg.limits.max_event_bytes:
            raise ValidationError(
                f"event is {len(leaf)} bytes in canonical form, more than {self.cfg.limits.max_event_bytes}", "", pos
            )
        return leaf, sealed_plain


_plain = msgspec.json.Encoder()
# An event whose subject's salt was not cached when its batch was sealed ahead.
MISSING: Any = ("", {}, b"")
_canonical = msgspec.json.Encoder(order="sorted")  # model/canonical.py's fast path
_replace = msgspec.structs.replace


def _nothing(ev: Event) -> None:
    """:meth:`Sealer.split` when no field is personal."""
    return None
