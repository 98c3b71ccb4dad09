"""Retention and erasure on the embedded store: payloads go, leaf hashes and tiles stay.

An expired entry keeps its row (key, id, received_ns) with an empty leaf, so its index still
answers "expired" and the level-0 tile still holds its leaf hash; every root, checkpoint and
proof is unchanged. ``secure_delete`` overwrites the freed bytes in log.db instead of leaving
them on free pages, and a truncating WAL checkpoint removes the old frames.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from auditkeep.store.base import KEY_SHIFT, Entry, entry_key, key_runs
from auditkeep.store.sqlite_fulltext import (
    TABLES,
    clear_texts,
    index_texts,
    merge,
    unindex_texts,
)


def forget_projected(p: sqlite3.Connection, keys: Sequence[int], texts: Mapping[int, str]) -> None:
    """Remove entries from the search projection (in a transaction the caller opened). The
    full-text index is contentless, so a row is removed by giving back the text it was
    indexed with; only rows actually present are removed (a delete of a row that was never
    indexed would corrupt the token counts)."""
    present = projected_actors(p, keys)
    if not present:
        return
    p.executemany("DELETE FROM ev WHERE k=?", [(k,) for k, _ in present])
    unindex_texts(p, [(k, actor, texts[k]) for k, actor in present if k in texts])


def projected_actors(p: sqlite3.Connection, keys: Sequence[int]) -> list[tuple[int, str]]:
    """(key, actor) of the entries among ``keys`` that the search projection holds."""
    out: list[tuple[int, str]] = []
    for i in range(0, len(keys), 500):
        part = list(keys[i : i + 500])
        out += p.execute(f"SELECT k, actor FROM ev WHERE k IN ({','.join('?' * len(part))})", part).fetchall()
    return out


def mark_text_stale(p: sqlite3.Connection) -> None:
    p.execute("INSERT OR REPLACE INTO proj_state(key, value) VALUES('text_stale', 1)")


def text_stale(conn: sqlite3.Connection, schema: str = "ix") -> bool:
    """Whether the projection may hold rows of expired entries (``conn`` reads index.db as
    ``schema``)."""
    return conn.execute(f"SELECT 1 FROM {schema}.proj_state WHERE key='text_stale'").fetchone() is not None


REBUILD_CHUNK = 5000
EV_COLUMNS = "k, tenant_id, time_ns, received_ns, actor, action, rtype, rid, outcome, category"


def rebuild_projection(
    p: sqlite3.Connection,
    below: Mapping[int, int],
    entries_by_key: Callable[[Sequence[int]], Mapping[int, Entry]],
    text_of: Callable[[Entry], str],
) -> int:
    """Rebuild the search rows and the contentless full-text indexes from the rows that may
    survive (in a transaction the caller opened, with ``secure_delete`` on, so the old pages
    and segments are zeroed). Rows of a tenant below ``below[tenant]`` (its retention cursor:
    every entry there has expired) are dropped unread; the others are kept aside, both tables
    emptied at once (SQLite's truncation of a whole table: ~1 s for 1M rows against ~30 s for
    deleting them by key ranges, which maintains every index row by row), and those whose
    entry still has a payload put back with their text. Returns the rows indexed."""
    p.execute(f"CREATE TEMP TABLE IF NOT EXISTS ev_keep AS SELECT {EV_COLUMNS} FROM main.ev WHERE 0")
    p.execute("DELETE FROM temp.ev_keep")
    start = 0
    while True:
        r = p.execute("SELECT k FROM main.ev WHERE k >= ? ORDER BY k LIMIT 1", (start,)).fetchone()
        if r is None:
            break
        tenant = r[0] >> KEY_SHIFT
        end = entry_key(tenant + 1, 0)
        lo = max(r[0], entry_key(tenant, below.get(tenant, 0)))
        p.execute(f"INSERT INTO temp.ev_keep SELECT {EV_COLUMNS} FROM main.ev WHERE k >= ? AND k < ?", (lo, end))
        start = end
    clear_texts(p)
    p.execute("DELETE FROM main.ev")  # no WHERE: the whole table and its indexes at once
    last = -1
    indexed = 0
    while True:
        rows = p.execute(
            f"SELECT {EV_COLUMNS} FROM temp.ev_keep WHERE k > ? ORDER BY k LIMIT ?", (last, REBUILD_CHUNK)
        ).fetchall()
        if not rows:
            break
        last = rows[-1][0]
        found = entries_by_key([row[0] for row in rows])
        kept = [row for row in rows if (e := found.get(row[0])) is not None and e.leaf]
        p.executemany(f"INSERT INTO main.ev({EV_COLUMNS}) VALUES(?,?,?,?,?,?,?,?,?,?)", kept)
        index_texts(p, [(row[0], row[4], text_of(found[row[0]])) for row in kept])  # row[4]: actor
        indexed += len(kept)
    p.execute("DROP TABLE temp.ev_keep")
    p.execute("DELETE FROM proj_state WHERE key='text_stale'")
    return indexed


def blank_entries(w: sqlite3.Connection, tenant_id: int, indexes: Sequence[int]) -> int:
    """Delete the payload of entries (in a transaction the caller opened), one statement per
    run of consecutive indexes; returns how many still had one."""
    before = w.total_changes
    w.executemany(
        "UPDATE entries SET leaf=X'', subject=NULL, sealed=NULL WHERE k >= ? AND k < ? AND length(leaf) > 0",
        [(entry_key(tenant_id, a), entry_key(tenant_id, b)) for a, b in key_runs(indexes)],
    )
    return w.total_changes - before


def erase_subject_rows(
    w: sqlite3.Connection, tenant_id: int, subject: str, known: tuple[Sequence[int], int] | None = None
) -> list[int]:
    """Destroy a subject's salt and the personal plaintext of its entries (in a transaction the
    caller opened, so that no append slips in between); returns the indexes of the entries
    that had plaintext. ``known``: the keys of the subject's entries below an index, and that
    index; they are updated by key and only the entries from that index on are scanned (the
    entries table has no index by subject: a scan reads the whole log)."""
    # +tenant_id: not by the (tenant_id, id) index, which would walk the whole tenant
    sql = "UPDATE entries SET sealed=NULL WHERE +tenant_id=? AND subject=? AND sealed IS NOT NULL"
    if known is None:
        keys = [r[0] for r in w.execute(sql + " RETURNING k", (tenant_id, subject)).fetchall()]
    else:
        given, below = known
        keys = []
        for i in range(0, len(given), 500):
            part = list(given[i : i + 500])
            keys += [r[0] for r in w.execute(
                sql + f" AND k IN ({','.join('?' * len(part))}) RETURNING k", (tenant_id, subject, *part)).fetchall()]
        keys += [r[0] for r in w.execute(
            sql + " AND k >= ? AND k < ? RETURNING k",
            (tenant_id, subject, entry_key(tenant_id, below), entry_key(tenant_id + 1, 0))).fetchall()]
    w.execute("UPDATE subjects SET salt=NULL WHERE tenant_id=? AND subject=?", (tenant_id, subject))
    # Writers cache salts: a new count tells every one of them to forget theirs.
    w.execute(
        "INSERT INTO meta(key, value) VALUES('erasures', '1') "
        "ON CONFLICT(key) DO UPDATE SET value=CAST(CAST(value AS INTEGER) + 1 AS TEXT)"
    )
    mask = (1 << 40) - 1
    return sorted(k & mask for k in keys)


ENTRY_COLUMNS = "SELECT k, id, received_ns, leaf, subject, sealed FROM entries"


def subject_rows_by_actor(conn: sqlite3.Connection, tenant_id: int, subject: str) -> list[tuple[Any, ...]]:
    """Entry rows of ``subject`` that hold plaintext, where every entry's subject is its actor
    id (``conn`` reads log.db and index.db as ``ix``, in one read transaction): the search
    rows by actor below the projection's cursor, checked against the entries, and a scan of
    the entries from the cursor on (not projected yet). In key order."""
    r = conn.execute("SELECT position FROM ix.proj_cursor WHERE tenant_id=?", (tenant_id,)).fetchone()
    below = entry_key(tenant_id, int(r[0]) if r else 0)
    keys = [k for (k,) in conn.execute(
        "SELECT k FROM ix.ev WHERE tenant_id=? AND actor=? AND k < ?", (tenant_id, subject, below))]
    rows: list[tuple[Any, ...]] = []
    for i in range(0, len(keys), 500):
        part = keys[i : i + 500]
        rows += conn.execute(
            ENTRY_COLUMNS + f" WHERE k IN ({','.join('?' * len(part))}) AND subject=? AND sealed IS NOT NULL",
            (*part, subject)).fetchall()
    rows += conn.execute(
        ENTRY_COLUMNS + " WHERE k >= ? AND k < ? AND +tenant_id=? AND subject=? AND sealed IS NOT NULL",
        (below, entry_key(tenant_id + 1, 0), tenant_id, subject)).fetchall()
    rows.sort(key=lambda row: row[0])
    return rows


def shred_files(w: sqlite3.Connection, p: sqlite3.Connection | None, merged: Iterable[str] = TABLES) -> None:
    """Leave no copy of deleted bytes in the files (both connections have ``secure_delete``
    on, so freed cells and pages were zeroed): merge the segments of the full-text indexes
    ``merged`` (those that lost words: their old blocks still hold them), then write every
    WAL frame back and truncate the WALs, which held the pages as they were before."""
    if p is not None:
        merge(p, merged)
        p.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    w.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def erasures(conn: sqlite3.Connection) -> int:
    """How many erasures the store has seen (writers compare it with their salt cache's)."""
    r = conn.execute("SELECT value FROM meta WHERE key='erasures'").fetchone()
    return int(r[0]) if r else 0
