"""The SQLite projection's contentless full-text indexes: ``ev_fts`` holds the public words
of each entry, ``ev_pfts0`` .. ``ev_pfts15`` the words of its personal plaintext (the part of
``ProjectedRow.text`` after ``PERSONAL_TEXT``), each entry's in the shard of its actor. A
search matches each word in any of them.

Kept apart because an erasure must merge every segment of an index its rows left (their old
blocks still hold the words): with the subject's rows in one shard (its actor's, when the
subject is the actor id), it merges that shard alone, 1/16 of the personal words (at 1M
events of the benchmark's kind the personal words take 22 MB, the public ones 108 MB).
"""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Iterable, Mapping

from auditkeep.store.base import PERSONAL_TEXT, split_text

PUBLIC = "ev_fts"
SHARDS = 16
PERSONAL = tuple(f"ev_pfts{i}" for i in range(SHARDS))
TABLES = (PUBLIC, *PERSONAL)

# (key, actor, projected text): what indexing or forgetting an entry's words takes
TextRow = tuple[int, str, str]

# FTS5 merges a level's segments once this many are there (its default is 4). Each merge
# rewrites the words of every row in them, and the projection follows the log in many small
# transactions, each one segment: at 16, rebuilding 100k events' projection cost ~2.5 µs an
# event less (36-37 against 33.5-34), searches of a word ~4 % more CPU (more segments to read).
AUTOMERGE = 16


def tune(p: sqlite3.Connection) -> None:
    """Set every full-text index's merge setting (kept in its ``_config`` table; written only
    when it differs, so an opener of an index.db already set writes nothing)."""
    for table in TABLES:
        r = p.execute(f"SELECT v FROM {table}_config WHERE k='automerge'").fetchone()
        if r is None or r[0] != AUTOMERGE:
            p.execute(f"INSERT INTO {table}({table}, rank) VALUES('automerge', ?)", (AUTOMERGE,))


def shard(actor: str) -> str:
    """The personal index of an entry whose actor id is ``actor`` (stable across processes)."""
    return PERSONAL[zlib.crc32(actor.encode("utf-8", "surrogatepass")) % SHARDS]


def _by_table(rows: Iterable[TextRow]) -> dict[str, list[tuple[int, str]]]:
    # the projection's hot path (every event): split inline, each actor's shard found once
    public: list[tuple[int, str]] = []
    out: dict[str, list[tuple[int, str]]] = {PUBLIC: public}
    of_actor: dict[str, list[tuple[int, str]]] = {}
    for k, actor, text in rows:
        cut = text.find(PERSONAL_TEXT)
        if cut < 0:
            public.append((k, text))
            continue
        if cut:  # never empty for an entry (actor id, action); empty in replace_texts' parts
            public.append((k, text[:cut]))
        if cut + 1 < len(text):
            part = of_actor.get(actor)
            if part is None:
                part = of_actor[actor] = out.setdefault(shard(actor), [])
            part.append((k, text[cut + 1 :]))
    return out


def index_texts(p: sqlite3.Connection, rows: Iterable[TextRow]) -> None:
    """Index rows (in a transaction the caller opened)."""
    for table, part in _by_table(rows).items():
        if part:
            p.executemany(f"INSERT INTO {table}(rowid, body) VALUES(?, ?)", part)


def unindex_texts(p: sqlite3.Connection, rows: Iterable[TextRow]) -> set[str]:
    """Remove rows, each given with the text it was indexed with (a contentless index forgets
    a row only so; only rows actually indexed may be given). Returns the indexes touched."""
    touched = set()
    for table, part in _by_table(rows).items():
        if part:
            p.executemany(f"INSERT INTO {table}({table}, rowid, body) VALUES('delete', ?, ?)", part)
            touched.add(table)
    return touched


def replace_texts(p: sqlite3.Connection, old: Iterable[TextRow], new: Mapping[int, str]) -> set[str]:
    """Re-index rows whose text changed from the one given in ``old`` (rows that are indexed)
    to ``new.get(key, "")``; only the part of each that changed is touched. Returns the
    indexes that lost words (to be merged)."""
    gone: list[TextRow] = []
    put: list[TextRow] = []
    for k, actor, text in old:
        (was_pub, was_per), (now_pub, now_per) = split_text(text), split_text(new.get(k, ""))
        if was_pub != now_pub:
            gone.append((k, actor, was_pub))
            put.append((k, actor, now_pub))
        if was_per != now_per:  # the personal part alone: PERSONAL_TEXT first
            gone.append((k, actor, PERSONAL_TEXT + was_per))
            put.append((k, actor, PERSONAL_TEXT + now_per))
    touched = unindex_texts(p, gone)
    index_texts(p, put)
    return touched


def clear_texts(p: sqlite3.Connection) -> None:
    """Empty every full-text index (their pages freed; zeroed under ``secure_delete``)."""
    for table in TABLES:
        p.execute(f"INSERT INTO {table}({table}) VALUES('delete-all')")


def merge(p: sqlite3.Connection, tables: Iterable[str]) -> None:
    """Merge every segment of each index into one, so that no old block keeps removed words."""
    for table in tables:
        p.execute(f"INSERT INTO {table}({table}) VALUES('optimize')")


def has_personal_index(conn: sqlite3.Connection, schema: str = "main") -> bool:
    return conn.execute(f"SELECT 1 FROM {schema}.sqlite_master WHERE name=?", (PERSONAL[0],)).fetchone() is not None


def fts_schema() -> str:
    """The statements creating the indexes: the personal shards before ``ev_fts``, so an
    index.db with ``ev_fts`` and without ``ev_pfts0`` is of an older layout.

    ``columnsize=0``: no per-row sizes table; only ranking reads it and no search ranks
    (rebuilding 100k events' projection: ~1.5 µs an event less). An index.db created before
    keeps its sizes table and serves as it is (the same matches, the same erasure)."""
    make = "CREATE VIRTUAL TABLE IF NOT EXISTS {} USING fts5(body, content='', columnsize=0, tokenize='unicode61 remove_diacritics 2');\n"
    return "".join(make.format(t) for t in (*PERSONAL, PUBLIC))
