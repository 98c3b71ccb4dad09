"""Retention and erasure on PostgreSQL: payloads go, leaf hashes and tiles stay.

An expired entry keeps its row (key, id, received_ns) with an empty leaf; its projection row
(and so its full-text vector) is deleted in the same transaction. PostgreSQL leaves dead
tuples until vacuum; erasure runs ``VACUUM`` on the tables it changed so that the old
versions are not kept in the heap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from auditkeep.store.base import KEY_SHIFT, Entry, entry_key


def expire(conn: psycopg.Connection[Any], tenant_id: int, indexes: Sequence[int]) -> int:
    keys = [entry_key(tenant_id, i) for i in indexes]
    with conn.transaction():
        conn.execute("DELETE FROM ev WHERE k = ANY(%s)", (keys,))
        cur = conn.execute(
            "UPDATE entries SET leaf = ''::bytea, subject = NULL, sealed = NULL "
            "WHERE k = ANY(%s) AND tenant_id = %s AND length(leaf) > 0",
            (keys, tenant_id),
        )
        return cur.rowcount


def subject_entries(conn: psycopg.Connection[Any], tenant_id: int, subject: str) -> list[Entry]:
    mask = (1 << KEY_SHIFT) - 1
    rows = conn.cursor(binary=True).execute(
        "SELECT k, id, received_ns, leaf, subject, sealed FROM entries WHERE tenant_id = %s AND subject = %s "
        "AND sealed IS NOT NULL ORDER BY k",
        (tenant_id, subject.encode()),
    ).fetchall()
    return [Entry(k & mask, bytes(i), r, bytes(leaf), bytes(s).decode(), bytes(x)) for k, i, r, leaf, s, x in rows]


def erase_subject(conn: psycopg.Connection[Any], tenant_id: int, subject: str, keys: Sequence[int]) -> list[int]:
    """Destroy the salt and personal plaintext; the projection rows of ``keys`` are deleted (the
    caller projects them again without the plaintext)."""
    mask = (1 << KEY_SHIFT) - 1
    with conn.transaction():
        # The head row's lock: an append to this log (which holds it) commits entirely before
        # or after, so none of its entries keeps plaintext under the destroyed salt.
        conn.execute("SELECT 1 FROM logs WHERE tenant_id = %s FOR UPDATE", (tenant_id,))
        conn.execute("DELETE FROM ev WHERE k = ANY(%s)", (list(keys),))
        rows = conn.execute(
            "UPDATE entries SET sealed = NULL WHERE tenant_id = %s AND subject = %s AND sealed IS NOT NULL RETURNING k",
            (tenant_id, subject.encode()),
        ).fetchall()
        conn.execute("UPDATE subjects SET salt = NULL WHERE tenant_id = %s AND subject = %s", (tenant_id, subject.encode()))
        # Writers cache salts: a new count tells every one of them (on every node) to forget theirs.
        conn.execute(
            "INSERT INTO meta(key, value) VALUES ('erasures', '1') "
            "ON CONFLICT (key) DO UPDATE SET value = (meta.value::bigint + 1)::text"
        )
    return sorted(int(r[0]) & mask for r in rows)


def vacuum(conn: psycopg.Connection[Any]) -> None:
    """Remove dead row versions (which still hold the old bytes) now, not at autovacuum's
    pace. ``conn`` is in autocommit mode (VACUUM cannot run in a transaction)."""
    for table in ("entries", "subjects", "ev"):
        conn.execute(sql.SQL("VACUUM {}").format(sql.Identifier(table)))


def erasures(conn: psycopg.Connection[Any]) -> int:
    """How many erasures the store has seen (writers compare it with their salt cache's)."""
    r = conn.execute("SELECT value FROM meta WHERE key = 'erasures'").fetchone()
    return int(r[0]) if r else 0
