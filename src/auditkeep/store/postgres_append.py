"""The append transaction of the PostgreSQL store: the head rows of its tenants locked.

It runs in pipeline mode (PostgresStore.append_txn): the locks and the erasure count are
one round trip, every write of the transaction another, the commit a third. Each wait for
the server hands the interpreter lock over and back, and while the writer's other thread
sequences the next group, taking it back costs up to a switch interval (5 ms) each time:
fewer waits, not only fewer bytes, is what makes a commit short there."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import psycopg

from auditkeep.store.base import KEY_SHIFT, CheckpointRow, Entry, Head, StoreError, TileKey

if TYPE_CHECKING:
    from auditkeep.store.postgres import PostgresStore

_MASK = (1 << KEY_SHIFT) - 1
HEAD_SQL = "SELECT tenant_id, name, size, root, received_ns, cp_size, cp_ns FROM logs"
ENTRY_COLS = "k, id, received_ns, leaf, subject, sealed"
# Rows as arrays, one statement: COPY cannot be pipelined (and costs round trips of its own).
_INSERT_ENTRIES = (
    "INSERT INTO entries (k, tenant_id, id, received_ns, leaf, subject, sealed) "
    "SELECT k, %s, id, r, leaf, subject, sealed FROM unnest("
    "%b::int8[], %b::bytea[], %b::int8[], %b::bytea[], %b::bytea[], %b::bytea[]"
    ") AS u(k, id, r, leaf, subject, sealed)"
)


def head_of(r: Sequence[Any]) -> Head:
    return Head(r[0], r[1], r[2], bytes(r[3]), r[4], r[5], r[6])


def entry_of(r: Sequence[Any]) -> Entry:
    subject = r[4].decode() if r[4] is not None else None
    return Entry(r[0] & _MASK, r[1], r[2], r[3], subject, r[5])


def read_tiles(
    conn: psycopg.Connection[Any], tenant_id: int, keys: Sequence[TileKey]
) -> dict[TileKey, bytes]:
    rows = conn.execute(
        "SELECT t.level, t.idx, t.data FROM unnest(%s::smallint[], %s::bigint[]) AS u(level, idx) "
        "JOIN tiles t ON t.tenant_id = %s AND t.level = u.level AND t.idx = u.idx",
        ([lv for lv, _ in keys], [ix for _, ix in keys], tenant_id),
    ).fetchall()
    return {(int(lv), int(ix)): bytes(d) for lv, ix, d in rows}


def existing(conn: psycopg.Connection[Any], tenant_id: int, ids: Sequence[bytes]) -> dict[bytes, Entry]:
    if not ids:
        return {}
    rows = (
        conn.cursor(binary=True)
        .execute(
            f"SELECT {ENTRY_COLS} FROM entries WHERE tenant_id = %s AND id = ANY(%s)",
            (tenant_id, list(ids)),
        )
        .fetchall()
    )
    return {r[1]: entry_of(r) for r in rows}


_SALTS = "SELECT subject, salt FROM subjects WHERE tenant_id = %s AND subject = ANY(%s)"
# An erased subject keeps its row with no salt: new events get a new one. A salt that exists
# is never replaced, so a writer that creates salts without the log's lock (a pipelined
# writer sequencing ahead, see ledger/staged.py) and one that holds it agree on one salt.
_NEW_SALTS = (
    "INSERT INTO subjects(tenant_id, subject, salt, created_ns) "
    "SELECT %s, s, salt, %s FROM unnest(%s::bytea[], %s::bytea[]) AS u(s, salt) "
    "ON CONFLICT (tenant_id, subject) DO UPDATE SET salt = excluded.salt, created_ns = excluded.created_ns "
    "WHERE subjects.salt IS NULL"
)


def salts(conn: psycopg.Connection[Any], tenant_id: int, subjects: Sequence[str]) -> dict[str, bytes]:
    """The salts of ``subjects``, created for those that have none (in the caller's
    transaction, or committed at once on a connection in autocommit mode)."""
    if not subjects:
        return {}
    out = _read_salts(conn, tenant_id, subjects)
    fresh = [s for s in dict.fromkeys(subjects) if s not in out]
    if fresh:
        conn.execute(
            _NEW_SALTS,
            (tenant_id, time.time_ns(), [s.encode() for s in fresh], [os.urandom(32) for _ in fresh]),
        )
        # Ours, or the salt another writer created first.
        out.update(_read_salts(conn, tenant_id, fresh))
    return out


def _read_salts(conn: psycopg.Connection[Any], tenant_id: int, subjects: Sequence[str]) -> dict[str, bytes]:
    rows = conn.execute(_SALTS, (tenant_id, [s.encode() for s in subjects])).fetchall()
    return {bytes(s).decode(): bytes(salt) for s, salt in rows if salt is not None}


class PgAppend:
    """An open transaction holding the head-row locks of its tenants."""

    def __init__(
        self, store: PostgresStore, conn: psycopg.Connection[Any], tenant_ids: Sequence[int]
    ) -> None:
        self._store = store
        self._c = conn
        ids = sorted(set(tenant_ids))
        # The head locks and the erasure count in one round trip (with BEGIN, in pipeline
        # mode). Locks are taken in tenant order (LockRows runs above the sort), so two
        # transactions over overlapping tenants cannot deadlock. The erasure count is read
        # after the locks: an erasure commits before or after this append, never during it.
        heads = conn.execute(
            HEAD_SQL + " WHERE tenant_id = ANY(%s) ORDER BY tenant_id FOR UPDATE", (ids,)
        )
        erased = conn.execute("SELECT value FROM meta WHERE key = 'erasures'")
        rows = heads.fetchall()
        count = erased.fetchone()
        self._erasures = int(count[0]) if count else 0
        self._heads = {r[0]: head_of(r) for r in rows}
        self._sizes = {tid: h.size for tid, h in self._heads.items()}
        self._guards: list[tuple[int, psycopg.Cursor[Any]]] = []  # head updates, checked in finish()
        for tid in ids:
            if tid not in self._heads:
                raise StoreError(f"unknown tenant id {tid}")

    def head(self, tenant_id: int) -> Head:
        return self._heads[tenant_id]

    def erasures(self) -> int:
        return self._erasures

    def existing(self, tenant_id: int, ids: Sequence[bytes]) -> dict[bytes, Entry]:
        return existing(self._c, tenant_id, ids)

    def read_tiles(self, tenant_id: int, keys: Sequence[TileKey]) -> dict[TileKey, bytes]:
        return read_tiles(self._c, tenant_id, keys) if keys else {}

    def salts(self, tenant_id: int, subjects: Sequence[str]) -> dict[str, bytes]:
        return salts(self._c, tenant_id, subjects)

    def write(
        self,
        tenant_id: int,
        entries: Sequence[Entry],
        tiles: Mapping[TileKey, bytes],
        head: Head,
        checkpoint: CheckpointRow | None = None,
    ) -> None:
        c = self._c
        if entries:
            received = [e.received_ns for e in entries]
            self._store._ensure_months(c, min(received), max(received))
            shifted = tenant_id << KEY_SHIFT
            c.execute(
                _INSERT_ENTRIES,
                (
                    tenant_id,
                    [shifted | e.index for e in entries],
                    [e.id for e in entries],
                    received,
                    [e.leaf for e in entries],
                    [e.subject.encode() if e.subject is not None else None for e in entries],
                    [e.sealed for e in entries],
                ),
            )
        if tiles:
            keys = list(tiles)
            c.execute(
                "INSERT INTO tiles(tenant_id, level, idx, data) "
                "SELECT %s, level, idx, data FROM unnest(%b::smallint[], %b::bigint[], %b::bytea[]) AS u(level, idx, data) "
                "ON CONFLICT (tenant_id, level, idx) DO UPDATE SET data = excluded.data",
                (tenant_id, [k[0] for k in keys], [k[1] for k in keys], [tiles[k] for k in keys]),
            )
        if checkpoint is not None:
            # Under the head lock there is one signer per size; DO NOTHING keeps the first.
            c.execute(
                "INSERT INTO checkpoints(tenant_id, size, root, note, signed_ns) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (tenant_id, size) DO NOTHING",
                (tenant_id, checkpoint.size, checkpoint.root, checkpoint.note, checkpoint.signed_ns),
            )
        # The size guard makes a write that somehow bypassed the lock fail instead of forking
        # (checked in finish(), before the commit).
        cur = c.cursor()
        cur.execute(
            "UPDATE logs SET size = %s, root = %s, received_ns = %s, cp_size = %s, cp_ns = %s "
            "WHERE tenant_id = %s AND size = %s",
            (
                head.size,
                head.root,
                head.received_ns,
                head.checkpoint_size,
                head.checkpoint_ns,
                tenant_id,
                self._sizes[tenant_id],
            ),
        )
        self._guards.append((tenant_id, cur))
        self._heads[tenant_id] = head
        self._sizes[tenant_id] = head.size

    def finish(self, pipeline: psycopg.Pipeline | None) -> None:
        """Wait for the writes (one round trip in pipeline mode) and check every head
        update found its row at the size read under the lock; raises before the commit."""
        if pipeline is not None:
            pipeline.sync()
        for tenant_id, cur in self._guards:
            if cur.rowcount != 1:
                raise StoreError(
                    f"log head of tenant id {tenant_id} moved under its lock; nothing written"
                )
