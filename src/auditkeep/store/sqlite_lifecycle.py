"""Retention and erasure on the embedded store: payloads go, leaf hashes and tiles stay.

An expired entry keeps its row (key, id, received_ns) with an empty leaf, so its index still
answers "expired" and the level-0 tile still holds its leaf hash; every root, checkpoint and
proof is unchanged. ``secure_delete`` overwrites the freed bytes in log.db instead of leaving
them on free pages, and a truncating WAL checkpoint removes the old frames.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence

from auditkeep.store.base import entry_key


def forget_projected(p: sqlite3.Connection, keys: Sequence[int], texts: Mapping[int, str]) -> None:
    """Remove entries from the search projection (in a transaction the caller opened). The
    full-text index is contentless, so a row is removed by giving back the text it was
    indexed with; only rows actually present are removed (a delete of a row that was never
    indexed would corrupt the token counts)."""
    present: list[int] = []
    for i in range(0, len(keys), 500):
        part = list(keys[i : i + 500])
        marks = ",".join("?" * len(part))
        present += [r[0] for r in p.execute(f"SELECT k FROM ev WHERE k IN ({marks})", part)]
    if not present:
        return
    p.executemany("DELETE FROM ev WHERE k=?", [(k,) for k in present])
    p.executemany(
        "INSERT INTO ev_fts(ev_fts, rowid, body) VALUES('delete', ?, ?)",
        [(k, texts[k]) for k in present if k in texts],
    )


def blank_entries(w: sqlite3.Connection, tenant_id: int, indexes: Sequence[int]) -> int:
    """Delete the payload of entries (in a transaction the caller opened), one statement per
    run of consecutive indexes; returns how many still had one."""
    before = w.total_changes
    runs: list[tuple[int, int]] = []
    for i in indexes:
        k = entry_key(tenant_id, i)
        if runs and runs[-1][1] == k:
            runs[-1] = (runs[-1][0], k + 1)
        else:
            runs.append((k, k + 1))
    w.executemany(
        "UPDATE entries SET leaf=X'', subject=NULL, sealed=NULL WHERE k >= ? AND k < ? AND length(leaf) > 0", runs
    )
    return w.total_changes - before


def erase_subject_rows(w: sqlite3.Connection, tenant_id: int, subject: str) -> list[int]:
    """Destroy a subject's salt and the personal plaintext of its entries (in a transaction the
    caller opened, so that no append slips in between); returns the indexes of the entries
    that had plaintext."""
    keys = [
        r[0]
        for r in w.execute(
            "UPDATE entries SET sealed=NULL WHERE tenant_id=? AND subject=? AND sealed IS NOT NULL RETURNING k",
            (tenant_id, subject),
        ).fetchall()
    ]
    w.execute("UPDATE subjects SET salt=NULL WHERE tenant_id=? AND subject=?", (tenant_id, subject))
    # Writers cache salts: a new count tells every one of them to forget theirs.
    w.execute(
        "INSERT INTO meta(key, value) VALUES('erasures', '1') "
        "ON CONFLICT(key) DO UPDATE SET value=CAST(CAST(value AS INTEGER) + 1 AS TEXT)"
    )
    mask = (1 << 40) - 1
    return sorted(k & mask for k in keys)


def shred_files(w: sqlite3.Connection, p: sqlite3.Connection | None) -> None:
    """Leave no copy of deleted bytes in the files (both connections have ``secure_delete``
    on, so freed cells and pages were zeroed): merge the full-text index's segments, whose
    old blocks still hold the removed tokens, then write every WAL frame back and truncate
    the WALs, which held the pages as they were before."""
    if p is not None:
        p.execute("INSERT INTO ev_fts(ev_fts) VALUES('optimize')")
        p.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    w.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def erasures(conn: sqlite3.Connection) -> int:
    """How many erasures the store has seen (writers compare it with their salt cache's)."""
    r = conn.execute("SELECT value FROM meta WHERE key='erasures'").fetchone()
    return int(r[0]) if r else 0
