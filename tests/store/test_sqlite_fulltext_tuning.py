"""The SQLite projection's full-text indexes merge segments 16 at a time (cheaper to follow
the log in many small transactions), on a new index.db, after a reset, and on an index.db
written by an older version with FTS5's default; they keep no per-row sizes (an older index.db
that has them still serves)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from auditkeep.ledger import Ledger
from auditkeep.retention.erase import erase_subject
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


def _docsize_tables(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE name LIKE '%\\_docsize' ESCAPE '\\'")}
    finally:
        conn.close()


def _search(lg: Ledger, text: str) -> list[int]:
    return sorted(r.index for r in lg.search("default", text=text, limit=100).items)


def test_indexes_keep_no_sizes_and_an_older_index_with_them_still_serves(tmp_path: Path) -> None:
    # Nothing ranks matches, so a new index keeps no per-row sizes (columnsize=0: one b-tree
    # insert an event less); an index.db written before keeps its sizes table and is searched
    # and erased from as it is.
    events = [{"actor": {"id": f"u-{i % 2}", "name": f"Name{i % 2}"}, "action": "doc.read",
               "metadata": {"note": f"word{i}"}} for i in range(10)]
    admin = {"id": "test-admin", "type": "user"}
    fresh, old = tmp_path / "fresh", tmp_path / "old"
    SQLiteStore(old).close()
    conn = sqlite3.connect(old / "index.db")
    for table in TABLES:  # as an older version created them: FTS5's default, sizes kept
        conn.execute(f"DROP TABLE {table}")
        conn.execute(f"CREATE VIRTUAL TABLE {table} USING fts5(body, content='', tokenize='unicode61 remove_diacritics 2')")
    conn.commit()
    conn.close()
    results = {}
    for data in (fresh, old):
        with Ledger.open(data, background=False) as lg:
            lg.append(events, "default")
            lg.sync_projection("default")
            before = (_search(lg, "word3"), _search(lg, "name0"), _search(lg, "name1 word5"))
            erase_subject(lg, "default", "u-0", "test", admin)
            results[data] = (before, _search(lg, "name0"), _search(lg, "name1"), _search(lg, "word4"))
    assert _docsize_tables(fresh / "index.db") == set()
    assert _docsize_tables(old / "index.db") == {f"{t}_docsize" for t in TABLES}
    assert results[fresh] == results[old] == (([3], [0, 2, 4, 6, 8], [5]), [], [1, 3, 5, 7, 9], [4])
