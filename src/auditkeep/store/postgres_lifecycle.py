"""Retention and erasure on PostgreSQL: payloads go, leaf hashes and tiles stay.

An expired entry keeps its row (key, id, received_ns) with an empty leaf; its projection row
(and so its full-text vector) is deleted in the same transaction. PostgreSQL leaves dead
tuples until vacuum; erasure runs ``VACUUM`` on the tables it changed so that the old
versions are not kept in the heap.

A past month whose entries have (nearly) all expired is compacted (``compact_month``): its
partition is detached and dropped, and a compact copy (an expired entry keeps its key, id,
received time and empty leaf) takes its place, so the space of the payloads and of their
dead row versions is given back at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from auditkeep.store.base import KEY_SHIFT, Entry, entry_key, key_runs

# Up to this many runs of consecutive keys are expired one range statement each (an index
# range scan: 20,000 keys in one run took 0.06 s against 0.4 s for k = ANY(keys) on ev, and
# 0.4 s against 1.2 s on entries); more scattered keys go as one ANY(keys) statement.
RANGE_RUNS = 64


def expire(conn: psycopg.Connection[Any], tenant_id: int, indexes: Sequence[int]) -> int:
    keys = [entry_key(tenant_id, i) for i in sorted(indexes)]
    runs = key_runs(keys)
    blank = "UPDATE entries SET leaf = ''::bytea, subject = NULL, sealed = NULL WHERE "
    with conn.transaction():
        if len(runs) > RANGE_RUNS:
            conn.execute("DELETE FROM ev WHERE k = ANY(%s)", (keys,))
            cur = conn.execute(blank + "k = ANY(%s) AND tenant_id = %s AND length(leaf) > 0", (keys, tenant_id))
            return cur.rowcount
        changed = 0
        with conn.cursor() as cur:
            for lo, hi in runs:
                cur.execute("DELETE FROM ev WHERE k >= %s AND k < %s", (lo, hi))
                cur.execute(blank + "k >= %s AND k < %s AND tenant_id = %s AND length(leaf) > 0", (lo, hi, tenant_id))
                changed += cur.rowcount
        return changed


def subject_entries(conn: psycopg.Connection[Any], tenant_id: int, subject: str) -> list[Entry]:
    mask = (1 << KEY_SHIFT) - 1
    rows = conn.cursor(binary=True).execute(
        "SELECT k, id, received_ns, leaf, subject, sealed FROM entries WHERE tenant_id = %s AND subject = %s "
        "AND sealed IS NOT NULL ORDER BY k",
        (tenant_id, subject.encode()),
    ).fetchall()
    return [Entry(k & mask, bytes(i), r, bytes(leaf), bytes(s).decode(), bytes(x)) for k, i, r, leaf, s, x in rows]


def erase_subject(
    conn: psycopg.Connection[Any], tenant_id: int, subject: str, keys: Sequence[int], scanned_below: int | None = None
) -> list[tuple[int, int]]:
    """Destroy the salt and personal plaintext; the projection rows of ``keys`` are deleted (the
    caller projects them again without the plaintext). With ``scanned_below``, ``keys`` are the
    subject's entries below it (updated by key) and only the entries from it on are scanned.
    Returns the (index, received_ns) of the entries whose plaintext was destroyed."""
    mask = (1 << KEY_SHIFT) - 1
    update = ("UPDATE entries SET sealed = NULL WHERE tenant_id = %s AND subject = %s AND sealed IS NOT NULL "
              "{} RETURNING k, received_ns")
    with conn.transaction():
        # The head row's lock: an append to this log (which holds it) commits entirely before
        # or after, so none of its entries keeps plaintext under the destroyed salt.
        conn.execute("SELECT 1 FROM logs WHERE tenant_id = %s FOR UPDATE", (tenant_id,))
        conn.execute("DELETE FROM ev WHERE k = ANY(%s)", (list(keys),))
        who = (tenant_id, subject.encode())
        if scanned_below is None:
            rows = conn.execute(update.format(""), who).fetchall()
        else:
            rows = conn.execute(update.format("AND k = ANY(%s)"), (*who, list(keys))).fetchall()
            rows += conn.execute(update.format("AND k >= %s AND k < %s"), (
                *who, entry_key(tenant_id, scanned_below), entry_key(tenant_id + 1, 0))).fetchall()
        conn.execute("UPDATE subjects SET salt = NULL WHERE tenant_id = %s AND subject = %s", who)
        # Writers cache salts: a new count tells every one of them (on every node) to forget theirs.
        conn.execute(
            "INSERT INTO meta(key, value) VALUES ('erasures', '1') "
            "ON CONFLICT (key) DO UPDATE SET value = (meta.value::bigint + 1)::text"
        )
    return sorted((int(k) & mask, int(r)) for k, r in rows)


COMPACTED_NOTE = "auditkeep: compacted after retention"
# A past month is compacted once at most this share of its entries still holds a payload
# (those that no policy expires: retention, hold and erasure records, held events).
KEPT_AT_MOST = 0.1


@dataclass
class Compacted:
    table: str
    rows: int
    kept: int  # entries that still had their payload (copied as they were)
    bytes_before: int
    bytes_after: int


def compact_month(
    conn: psycopg.Connection[Any], table: str, start_ns: int, end_ns: int, lock_key: int
) -> Compacted | None:
    """Replace a past monthly partition whose entries have (nearly) all expired by a compact
    copy: the old table is detached and dropped, so its files (payload bytes and dead row
    versions, which VACUUM would keep in the file) go at once; the new one holds every row as
    it now is, an expired entry's key, id and received time with its empty leaf, so every
    index and event id still answers "expired" and verify reads the same rows. Leaf hashes
    are in the tiles, which stay. Returns None, changing nothing, when more than
    ``KEPT_AT_MOST`` of the entries hold a payload, the partition is empty, or it was
    compacted already. One transaction: a crash leaves the old partition as it was."""
    old = sql.Identifier(table)
    new_name = table + "_compact"
    new = sql.Identifier(new_name)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key,))  # the partitions' lock
        note = conn.execute("SELECT obj_description(to_regclass(%s), 'pg_class')", (table,)).fetchone()
        if note is not None and note[0] == COMPACTED_NOTE:
            return None
        # SHARE: no write reaches the old partition from now on (reads go on) until it is gone.
        conn.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(old))
        row = conn.execute(
            sql.SQL("SELECT count(*), count(*) FILTER (WHERE length(leaf) > 0), "
                    "pg_total_relation_size(%s::regclass) FROM {}").format(old),
            (table,),
        ).fetchone()
        assert row is not None
        rows, kept, before = int(row[0]), int(row[1]), int(row[2])
        if rows == 0 or kept > rows * KEPT_AT_MOST:
            return None
        conn.execute(sql.SQL(
            "CREATE TABLE {} (LIKE entries INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)"
        ).format(new))
        conn.execute(sql.SQL(
            "INSERT INTO {} (k, tenant_id, id, received_ns, leaf, subject, sealed) "
            "SELECT k, tenant_id, id, received_ns, leaf, subject, sealed FROM {} ORDER BY k"
        ).format(new, old))
        # The bound as a constraint lets ATTACH skip its scan of the new table.
        conn.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} CHECK (received_ns >= {} AND received_ns < {})").format(
            new, sql.Identifier(new_name + "_bound"), sql.Literal(start_ns), sql.Literal(end_ns)))
        # From here the parent is locked (ACCESS EXCLUSIVE) until commit: detach, attach (which
        # builds the new table's indexes, on the compact rows), drop, rename.
        conn.execute(sql.SQL("ALTER TABLE entries DETACH PARTITION {}").format(old))
        conn.execute(sql.SQL("ALTER TABLE entries ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
            new, sql.Literal(start_ns), sql.Literal(end_ns)))
        conn.execute(sql.SQL("DROP TABLE {}").format(old))
        conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(new, old))
        conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(old, sql.Literal(COMPACTED_NOTE)))
        after = conn.execute("SELECT pg_total_relation_size(%s::regclass)", (table,)).fetchone()
    return Compacted(table, rows, kept, before, int(after[0]) if after else 0)


def vacuum(conn: psycopg.Connection[Any], tables: Sequence[str] = ("entries", "subjects", "ev")) -> None:
    """Remove dead row versions (which still hold the old bytes) now, not at autovacuum's
    pace. ``conn`` is in autocommit mode (VACUUM cannot run in a transaction)."""
    for table in tables:
        conn.execute(sql.SQL("VACUUM {}").format(sql.Identifier(table)))


def erasures(conn: psycopg.Connection[Any]) -> int:
    """How many erasures the store has seen (writers compare it with their salt cache's)."""
    r = conn.execute("SELECT value FROM meta WHERE key = 'erasures'").fetchone()
    return int(r[0]) if r else 0
