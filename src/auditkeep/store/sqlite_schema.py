"""SQLite schema: versioned migrations for log.db, and the (rebuildable) projection schema."""

from __future__ import annotations

import sqlite3

from auditkeep.store.sqlite_fulltext import TABLES, fts_schema

# Each migration is a list of statements run in one transaction; never edit a released one.
LOG_MIGRATIONS: list[list[str]] = [
    [
        # One row per tenant log: its head. Appends take the write lock and update it.
        """CREATE TABLE logs(
            tenant_id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            size INTEGER NOT NULL,
            root BLOB NOT NULL,
            received_ns INTEGER NOT NULL,
            cp_size INTEGER NOT NULL,
            cp_ns INTEGER NOT NULL,
            created_ns INTEGER NOT NULL)""",
        # k = tenant_id << 40 | index: one integer key, so an append only extends the table's
        # b-tree at its right edge.
        """CREATE TABLE entries(
            k INTEGER PRIMARY KEY,
            tenant_id INTEGER NOT NULL,
            id BLOB NOT NULL,
            received_ns INTEGER NOT NULL,
            leaf BLOB NOT NULL,
            subject TEXT,
            sealed BLOB)""",
        "CREATE UNIQUE INDEX entries_id ON entries(tenant_id, id)",
        """CREATE TABLE tiles(
            tenant_id INTEGER NOT NULL,
            level INTEGER NOT NULL,
            idx INTEGER NOT NULL,
            data BLOB NOT NULL,
            PRIMARY KEY(tenant_id, level, idx)) WITHOUT ROWID""",
        """CREATE TABLE checkpoints(
            tenant_id INTEGER NOT NULL,
            size INTEGER NOT NULL,
            root BLOB NOT NULL,
            note TEXT NOT NULL,
            signed_ns INTEGER NOT NULL,
            PRIMARY KEY(tenant_id, size))""",
        """CREATE TABLE subjects(
            tenant_id INTEGER NOT NULL,
            subject TEXT NOT NULL,
            salt BLOB,
            created_ns INTEGER NOT NULL,
            PRIMARY KEY(tenant_id, subject))""",
        """CREATE TABLE cursors(
            name TEXT NOT NULL,
            tenant_id INTEGER NOT NULL,
            position INTEGER NOT NULL,
            state BLOB,
            updated_ns INTEGER NOT NULL,
            PRIMARY KEY(name, tenant_id))""",
    ],
    [
        """CREATE TABLE docs(
            collection TEXT NOT NULL,
            id TEXT NOT NULL,
            tenant TEXT,
            created_ns INTEGER NOT NULL,
            status TEXT,
            data BLOB NOT NULL,
            PRIMARY KEY(collection, id))""",
        "CREATE INDEX docs_list ON docs(collection, tenant, created_ns)",
    ],
]

INDEX_SCHEMA = """
CREATE TABLE IF NOT EXISTS proj_cursor(tenant_id INTEGER PRIMARY KEY, position INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS proj_state(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS ev(
    k INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL,
    time_ns INTEGER NOT NULL,
    received_ns INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    rtype TEXT,
    rid TEXT,
    outcome TEXT NOT NULL,
    category TEXT);
-- Each index carries the key (so it keeps the search's (time_ns, k) order) and the outcome,
-- so the console's histogram (count per time bucket and outcome) reads the index alone, not
-- a table row per event: at 1M events, 7 days of an action prefix went from ~700 ms to ~75 ms.
-- They replace ev_time, ev_actor and ev_action (tenant, column, time) of older index files,
-- which are dropped once the new ones exist (a one-off rebuild: ~30 s per 1M events).
CREATE INDEX IF NOT EXISTS ev_when ON ev(tenant_id, time_ns, k, outcome);
CREATE INDEX IF NOT EXISTS ev_who ON ev(tenant_id, actor, time_ns, k, outcome);
CREATE INDEX IF NOT EXISTS ev_act ON ev(tenant_id, action, time_ns, k, outcome);
DROP INDEX IF EXISTS ev_time;
DROP INDEX IF EXISTS ev_actor;
DROP INDEX IF EXISTS ev_action;
CREATE INDEX IF NOT EXISTS ev_resource ON ev(tenant_id, rtype, rid, time_ns);
-- The full-text indexes (store/sqlite_fulltext.py) follow: the personal words' shards, then
-- ev_fts. An index.db with ev_fts and without ev_pfts0 is of an older layout (personal words
-- in ev_fts, or in one ev_pfts) and is projected again (OLD_TEXT_LAYOUT).
""" + fts_schema()

OLD_TEXT_LAYOUT = (
    "SELECT 1 FROM sqlite_master WHERE name='ev_fts' AND NOT EXISTS (SELECT 1 FROM sqlite_master WHERE name='ev_pfts0')"
)
PROJECTION_TABLES = ("ev", *TABLES, "ev_pfts", "proj_cursor", "proj_state")


def upgrade_index(conn: sqlite3.Connection) -> None:
    """Drop a projection of an older layout (personal words mixed into ev_fts), so that it is
    projected again (a one-off; the index is derived data), in one transaction so a second
    opener finds it done."""
    if conn.execute(OLD_TEXT_LAYOUT).fetchone() is None:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute(OLD_TEXT_LAYOUT).fetchone() is not None:
            for table in PROJECTION_TABLES:
                conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
