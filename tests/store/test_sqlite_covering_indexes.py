"""The SQLite projection's indexes cover the console's histogram (count per time bucket and
outcome) so it reads no table row per event, keep the search's (time, key) order without a
sort, and replace the narrower indexes of an older index file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from auditkeep.store.base import Query
from auditkeep.store.sqlite_schema import INDEX_SCHEMA
from auditkeep.store.sqlite_search import build_count_by_time, build_search

OLD_INDEXES = """
CREATE TABLE ev(k INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, time_ns INTEGER NOT NULL,
    received_ns INTEGER NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, rtype TEXT, rid TEXT,
    outcome TEXT NOT NULL, category TEXT);
CREATE INDEX ev_time ON ev(tenant_id, time_ns);
CREATE INDEX ev_actor ON ev(tenant_id, actor, time_ns);
CREATE INDEX ev_action ON ev(tenant_id, action, time_ns);
"""


def _index(tmp_path: Path, old: bool = False) -> sqlite3.Connection:
    db = sqlite3.connect(tmp_path / "index.db")
    if old:
        db.executescript(OLD_INDEXES)
        rows = [(k, 1, k * 1000, k, f"user-{k % 7}", ("db." if k % 3 else "user.") + "x", "t", "r", "success", None)
                for k in range(1, 2001)]  # fmt: skip
        db.executemany("INSERT INTO ev VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
        db.commit()
    db.executescript(INDEX_SCHEMA)
    return db


def _plan(db: sqlite3.Connection, sql: str, params: list[object]) -> str:
    sql = sql.replace("ix.ev", "main.ev")
    return " | ".join(r[3] for r in db.execute("EXPLAIN QUERY PLAN " + sql, params))


def _names(db: sqlite3.Connection) -> set[str]:
    return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'ev'")}


def test_an_older_index_file_gets_the_covering_indexes(tmp_path: Path) -> None:
    db = _index(tmp_path, old=True)
    names = _names(db)
    assert {"ev_when", "ev_who", "ev_act"} <= names
    assert not names & {"ev_time", "ev_actor", "ev_action"}
    assert db.execute("SELECT count(*) FROM ev").fetchone()[0] == 2000


def test_histogram_reads_only_an_index_and_search_needs_no_sort(tmp_path: Path) -> None:
    db = _index(tmp_path, old=True)
    step = 10_000
    for q in (
        Query(tenant_id=1, since_ns=0, until_ns=2_000_000),
        Query(tenant_id=1, since_ns=0, until_ns=2_000_000, action="db.*"),
        Query(tenant_id=1, since_ns=0, until_ns=2_000_000, actor="user-3"),
    ):
        sql, params = build_count_by_time(q, 0, step)
        assert "COVERING INDEX" in _plan(db, sql, params), q
        counts = db.execute(sql.replace("ix.ev", "main.ev"), params).fetchall()
        assert sum(c for _, _, c in counts) > 0
        sql, params = build_search(q)
        plan = _plan(db, sql, params)
        assert "TEMP B-TREE" not in plan, plan  # the index gives (time_ns, k) order
        rows = db.execute(sql.replace("ix.ev", "main.ev"), params).fetchall()
        assert rows == sorted(rows, reverse=True) and len(rows) == q.limit
