"""The SQLite projection's full-text indexes merge segments 16 at a time (cheaper to follow
the log in many small transactions), on a new index.db, after a reset, and on an index.db
written by an older version with FTS5's default."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from auditkeep.store.sqlite import SQLiteStore
from auditkeep.store.sqlite_fulltext import AUTOMERGE, PUBLIC, TABLES


def _automerge(path: Path) -> dict[str, int | None]:
    conn = sqlite3.connect(path)
    try:
        out: dict[str, int | None] = {}
        for table in TABLES:
            r = conn.execute(f"SELECT v FROM {table}_config WHERE k='automerge'").fetchone()
            out[table] = None if r is None else int(r[0])
        return out
    finally:
        conn.close()


def test_new_and_reset_projections_are_tuned(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "d")
    try:
        assert _automerge(store.index_path) == dict.fromkeys(TABLES, AUTOMERGE)
        store.reset_projection()
        assert _automerge(store.index_path) == dict.fromkeys(TABLES, AUTOMERGE)
    finally:
        store.close()


def test_an_older_index_is_tuned_when_opened(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "d")
    path = store.index_path
    store.close()
    conn = sqlite3.connect(path)
    conn.execute(f"DELETE FROM {PUBLIC}_config WHERE k='automerge'")  # as FTS5's default left it
    conn.commit()
    conn.close()
    assert _automerge(path)[PUBLIC] is None
    store = SQLiteStore(tmp_path / "d")
    try:
        assert _automerge(path)[PUBLIC] == AUTOMERGE
    finally:
        store.close()
