"""Sequencing a group ahead of its commit (a store with :class:`StageReads`: PostgreSQL).

While one group's transaction commits (the database's work and its fsync), the writer
sequences the next group on the head that group will leave: the :class:`Sequencer` runs
unchanged against a :class:`StagedTxn`, which hands it that predicted head, reads committed
state without the append lock, and records the writes. The committer then opens the real
transaction and replays them only if the head under the lock is the one the group was
sequenced on and no erasure came between (:meth:`StagedTxn.holds`); otherwise the group is
sequenced again under the lock. Salts of new subjects are committed on their own before any
leaf uses them, so a salt the sequencer caches is always a stored one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from auditkeep.ledger.append import Pending
from auditkeep.store.base import AppendTxn, CheckpointRow, Entry, Head, StageReads, TileKey

_Write = tuple[int, Sequence[Entry], Mapping[TileKey, bytes], Head, CheckpointRow | None]


class StagedTxn:
    """An :class:`AppendTxn` over predicted heads that records its writes for a later replay."""

    def __init__(self, store: StageReads, heads: Mapping[int, Head]) -> None:
        self._store = store
        # What the real transaction must find (checkpoint fields aside: see replay).
        self._base = {tid: (h.size, h.root, h.received_ns) for tid, h in heads.items()}
        # Copies: the sequencer may update a head it was given in place.
        self._heads = {tid: dataclasses.replace(h) for tid, h in heads.items()}
        self._erasures: int | None = None
        self.writes: list[_Write] = []

    def head(self, tenant_id: int) -> Head:
        return self._heads[tenant_id]

    def existing(self, tenant_id: int, ids: Sequence[bytes]) -> dict[bytes, Entry]:
        # Committed entries only; the writer stages no group whose chosen ids are also in a
        # group not yet committed, and an append by another writer moves the head (holds()).
        return self._store.committed_existing(tenant_id, ids)

    def read_tiles(self, tenant_id: int, keys: Sequence[TileKey]) -> dict[TileKey, bytes]:
        return self._store.read_tiles(tenant_id, keys) if keys else {}

    def erasures(self) -> int:
        if self._erasures is None:
            self._erasures = self._store.committed_erasures()
        return self._erasures

    def salts(self, tenant_id: int, subjects: Sequence[str]) -> dict[str, bytes]:
        # Committed at once, so a group that fails later never leaves the sequencer's cache
        # holding a salt the store has not; without the log's lock, so staging never waits
        # for the commit in flight (an erasure meanwhile changes the count: holds()).
        return self._store.create_salts(tenant_id, subjects)

    def write(
        self,
        tenant_id: int,
        entries: Sequence[Entry],
        tiles: Mapping[TileKey, bytes],
        head: Head,
        checkpoint: CheckpointRow | None = None,
    ) -> None:
        self.writes.append((tenant_id, entries, tiles, head, checkpoint))

    def holds(self, txn: AppendTxn) -> bool:
        """Whether ``txn`` (holding the locks) finds the heads and erasure count this group
        was sequenced on: then its leaves, tiles and receipts are what sequencing now would give."""
        for tid, (size, root, received_ns) in self._base.items():
            h = txn.head(tid)
            if (h.size, h.root, h.received_ns) != (size, root, received_ns):
                return False
        return self._erasures is None or txn.erasures() == self._erasures

    def replay(self, txn: AppendTxn) -> None:
        for tid, entries, tiles, head, cp in self.writes:
            locked = txn.head(tid)
            if locked.checkpoint_size > head.checkpoint_size:
                # A checkpoint signed meanwhile (sign_now): the head keeps naming the newest.
                head = dataclasses.replace(
                    head, checkpoint_size=locked.checkpoint_size, checkpoint_ns=locked.checkpoint_ns
                )
            txn.write(tid, entries, tiles, head, cp)

    def grew(self) -> set[int]:
        return {tid for tid, entries, *_ in self.writes if entries}


@dataclass
class Item:
    """One tenant's part of a group on its way to the committer, in commit order."""

    tenant_id: int
    group: list[Pending]
    staged: StagedTxn | None  # None: sequenced by the committer, under the lock
    ids: frozenset[bytes] = field(default_factory=frozenset)  # ids the callers chose

    def unstage(self) -> None:
        """Forget the sequencing done ahead: the committer sequences it again under the lock."""
        self.staged = None
        for p in self.group:
            p.receipts = None


def chosen_ids(group: Sequence[Pending]) -> frozenset[bytes]:
    """The ids the callers chose in ``group`` (an idempotent retry may repeat one)."""
    return frozenset(
        bytes.fromhex((ev.id or "").replace("-", ""))
        for p in group
        for ev, chosen in zip(p.events, p.client_ids, strict=True)
        if chosen
    )
