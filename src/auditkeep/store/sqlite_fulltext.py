"""The SQLite projection's two contentless full-text indexes: ``ev_fts`` holds the public
words of each entry, ``ev_pfts`` the words of its personal plaintext (the part of
``ProjectedRow.text`` after ``PERSONAL_TEXT``). A search matches each word in either.

Kept apart so that an erasure, which must merge every segment of an index its rows left
(their old blocks still hold the words), merges only the small personal index: at 1M events
of the benchmark's kind 33 MB, against the whole index's hundreds.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from auditkeep.store.base import split_text

PUBLIC = "ev_fts"
PERSONAL = "ev_pfts"


def index_texts(p: sqlite3.Connection, rows: Iterable[tuple[int, str]]) -> None:
    """Index (key, projected text) rows (in a transaction the caller opened)."""
    public: list[tuple[int, str]] = []
    personal: list[tuple[int, str]] = []
    for k, text in rows:
        pub, per = split_text(text)
        public.append((k, pub))
        if per:
            personal.append((k, per))
    p.executemany(f"INSERT INTO {PUBLIC}(rowid, body) VALUES(?, ?)", public)
    if personal:
        p.executemany(f"INSERT INTO {PERSONAL}(rowid, body) VALUES(?, ?)", personal)


def unindex_texts(p: sqlite3.Connection, rows: Iterable[tuple[int, str]]) -> None:
    """Remove (key, text it was indexed with) rows: a contentless index forgets a row only
    when given back the exact text (only rows actually indexed may be given)."""
    public: list[tuple[int, str]] = []
    personal: list[tuple[int, str]] = []
    for k, text in rows:
        pub, per = split_text(text)
        public.append((k, pub))
        if per:
            personal.append((k, per))
    p.executemany(f"INSERT INTO {PUBLIC}({PUBLIC}, rowid, body) VALUES('delete', ?, ?)", public)
    if personal:
        p.executemany(f"INSERT INTO {PERSONAL}({PERSONAL}, rowid, body) VALUES('delete', ?, ?)", personal)


def replace_texts(p: sqlite3.Connection, old: dict[int, str], new: dict[int, str]) -> set[str]:
    """Re-index rows whose text changed from ``old[k]`` to ``new.get(k, "")`` (keys of
    ``old`` that are indexed); only the part of each that changed is touched. Returns the
    indexes that lost words (to be merged)."""
    touched: set[str] = set()
    for table, part in ((PUBLIC, 0), (PERSONAL, 1)):
        gone: list[tuple[int, str]] = []
        put: list[tuple[int, str]] = []
        for k, text in old.items():
            was = split_text(text)[part]
            now = split_text(new.get(k, ""))[part]
            if was == now:
                continue
            if was:
                gone.append((k, was))
            if now:
                put.append((k, now))
        if gone:
            p.executemany(f"INSERT INTO {table}({table}, rowid, body) VALUES('delete', ?, ?)", gone)
            touched.add(table)
        if put:
            p.executemany(f"INSERT INTO {table}(rowid, body) VALUES(?, ?)", put)
    return touched


def clear_texts(p: sqlite3.Connection) -> None:
    """Empty both indexes (their pages freed; zeroed under ``secure_delete``)."""
    for table in (PUBLIC, PERSONAL):
        p.execute(f"INSERT INTO {table}({table}) VALUES('delete-all')")


def merge(p: sqlite3.Connection, tables: Iterable[str]) -> None:
    """Merge every segment of each index into one, so that no old block keeps removed words."""
    for table in tables:
        p.execute(f"INSERT INTO {table}({table}) VALUES('optimize')")


def has_personal_index(conn: sqlite3.Connection, schema: str = "main") -> bool:
    return conn.execute(f"SELECT 1 FROM {schema}.sqlite_master WHERE name=?", (PERSONAL,)).fetchone() is not None
