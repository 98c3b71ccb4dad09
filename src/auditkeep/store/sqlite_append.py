"""The append transaction of the embedded store (``BEGIN IMMEDIATE`` on the writer connection)."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Mapping, Sequence

from auditkeep.store.base import KEY_SHIFT, CheckpointRow, Entry, Head, StoreError, TileKey

# What verify reads of each entry (in key order, LIMIT for a chunk).
ENTRY_ROWS_SQL = "SELECT k, id, received_ns, leaf, subject, sealed FROM entries WHERE k >= ? AND k < ? ORDER BY k LIMIT ?"
HEAD_SQL = "SELECT tenant_id, name, size, root, received_ns, cp_size, cp_ns FROM logs"


def head_of(r: tuple[int, str, int, bytes, int, int, int]) -> Head:
    return Head(r[0], r[1], r[2], r[3], r[4], r[5], r[6])


def read_tiles(conn: sqlite3.Connection, tenant_id: int, keys: Sequence[TileKey]) -> dict[TileKey, bytes]:
    out: dict[TileKey, bytes] = {}
    for level, idx in keys:
        r = conn.execute(
            "SELECT data FROM tiles WHERE tenant_id=? AND level=? AND idx=?", (tenant_id, level, idx)
        ).fetchone()
        if r is not None:
            out[(level, idx)] = r[0]
    return out


def subject_salts(conn: sqlite3.Connection, tenant_id: int, subjects: Sequence[str]) -> dict[str, bytes]:
    """The salts of ``subjects`` that have one (an erased subject's salt is gone)."""
    out: dict[str, bytes] = {}
    for i in range(0, len(subjects), 500):
        part = list(subjects[i : i + 500])
        marks = ",".join("?" * len(part))
        for s, salt in conn.execute(
            f"SELECT subject, salt FROM subjects WHERE tenant_id=? AND subject IN ({marks}) AND salt IS NOT NULL",
            [tenant_id, *part],
        ):
            out[s] = salt
    return out


class SQLiteAppend:
    """An open ``BEGIN IMMEDIATE`` transaction on the writer connection."""

    def __init__(self, conn: sqlite3.Connection, tenant_ids: Sequence[int]) -> None:
        self._c = conn
        self._heads: dict[int, Head] = {}
        for tid in tenant_ids:
            r = conn.execute(HEAD_SQL + " WHERE tenant_id=?", (tid,)).fetchone()
            if r is None:
                raise StoreError(f"unknown tenant id {tid}")
            self._heads[tid] = head_of(r)

    def head(self, tenant_id: int) -> Head:
        return self._heads[tenant_id]

    def existing(self, tenant_id: int, ids: Sequence[bytes]) -> dict[bytes, Entry]:
        out: dict[bytes, Entry] = {}
        mask = (1 << KEY_SHIFT) - 1
        for i in range(0, len(ids), 500):
            part = list(ids[i : i + 500])
            marks = ",".join("?" * len(part))
            for k, eid, r, leaf, subject, sealed in self._c.execute(
                f"SELECT k, id, received_ns, leaf, subject, sealed FROM entries WHERE tenant_id=? AND id IN ({marks})",
                [tenant_id, *part],
            ):
                out[eid] = Entry(k & mask, eid, r, leaf, subject, sealed)
        return out

    def read_tiles(self, tenant_id: int, keys: Sequence[TileKey]) -> dict[TileKey, bytes]:
        return read_tiles(self._c, tenant_id, keys)

    def erasures(self) -> int:
        from auditkeep.store.sqlite_lifecycle import erasures

        return erasures(self._c)

    def salts(self, tenant_id: int, subjects: Sequence[str]) -> dict[str, bytes]:
        out = subject_salts(self._c, tenant_id, subjects)
        fresh = [s for s in subjects if s not in out]
        if fresh:
            now = time.time_ns()
            rows = [(tenant_id, s, os.urandom(32), now) for s in fresh]
            # An erased subject keeps its row with no salt; new events get a new salt.
            self._c.executemany(
                "INSERT INTO subjects(tenant_id, subject, salt, created_ns) VALUES(?,?,?,?) "
                "ON CONFLICT(tenant_id, subject) DO UPDATE SET salt=excluded.salt, created_ns=excluded.created_ns",
                rows,
            )
            out.update({r[1]: r[2] for r in rows})
        return out

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
            shifted = tenant_id << KEY_SHIFT
            c.executemany(
                "INSERT INTO entries(k, tenant_id, id, received_ns, leaf, subject, sealed) VALUES(?,?,?,?,?,?,?)",
                # rows made as they are inserted: a list of them would be a batch of tracked
                # tuples alive at once, each counting towards the next collection
                ((shifted | e.index, tenant_id, e.id, e.received_ns, e.leaf, e.subject, e.sealed) for e in entries),
            )
        if tiles:
            c.executemany(
                "INSERT OR REPLACE INTO tiles(tenant_id, level, idx, data) VALUES(?,?,?,?)",
                [(tenant_id, lv, ix, data) for (lv, ix), data in tiles.items()],
            )
        if checkpoint is not None:
            c.execute(
                "INSERT OR IGNORE INTO checkpoints(tenant_id, size, root, note, signed_ns) VALUES(?,?,?,?,?)",
                (tenant_id, checkpoint.size, checkpoint.root, checkpoint.note, checkpoint.signed_ns),
            )
        c.execute(
            "UPDATE logs SET size=?, root=?, received_ns=?, cp_size=?, cp_ns=? WHERE tenant_id=?",
            (head.size, head.root, head.received_ns, head.checkpoint_size, head.checkpoint_ns, tenant_id),
        )
        self._heads[tenant_id] = head
