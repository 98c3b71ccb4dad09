"""The PostgreSQL store's schema: migrations applied under an advisory lock, the version
check of read-only sessions, and the monthly partitions of the entries."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from auditkeep.store.base import StoreError
from auditkeep.store.postgres.connection import PgConnections
from auditkeep.store.postgres_schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Month,
    month_of_table,
    months_ahead,
    months_between,
)

log = logging.getLogger("auditkeep.store.postgres")


class PgSchema(PgConnections):
    """Schema versions (migrations) and the monthly partitions of the entries."""

    def migrate(self) -> int:
        """Apply the migrations this database lacks (under an advisory lock) and create the
        partitions of the coming months; returns the schema version."""
        version = self._migrate()
        self._ensure_ahead(time.time_ns())
        return version

    def _migrate(self) -> int:
        with self._conn() as conn:
            key = self._advisory_key(conn, "migrate")
            conn.execute("SELECT pg_advisory_lock(%s)", (key,))
            try:
                if self.schema:
                    conn.execute(
                        sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                            sql.Identifier(self.schema)
                        )
                    )
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations("
                    "version integer PRIMARY KEY, description text NOT NULL, applied_ns bigint NOT NULL)"
                )
                current = self._version(conn)
                if current > SCHEMA_VERSION:
                    raise StoreError(
                        f"the database schema is at version {current}, newer than this auditkeep "
                        f"understands ({SCHEMA_VERSION}): upgrade auditkeep"
                    )
                for number, (description, statements) in enumerate(MIGRATIONS, start=1):
                    if number <= current:
                        continue
                    with conn.transaction():
                        for statement in statements:
                            conn.execute(statement)
                        conn.execute(
                            "INSERT INTO schema_migrations(version, description, applied_ns) VALUES (%s, %s, %s)",
                            (number, description, time.time_ns()),
                        )
                    log.info("applied migration %d: %s", number, description)
                return self._version(conn)
            finally:
                if not conn.closed:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (key,))

    def _check_schema(self) -> None:
        version = self.schema_version()
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"the database schema is at version {version}, this auditkeep reads version {SCHEMA_VERSION}: "
                "run a writer of this version once (e.g. `auditkeep serve`), or read it with the auditkeep that wrote it"
            )

    @staticmethod
    def _version(conn: psycopg.Connection[Any]) -> int:
        row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
        return int(row[0]) if row else 0

    def schema_version(self) -> int:
        """The version of the schema in the database (0 before the first migration)."""
        with self._conn() as conn:
            exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
            if not exists or not exists[0]:
                return 0
            return self._version(conn)

    def migrations(self) -> list[tuple[int, str, int]]:
        """(version, description, applied_ns) of every applied migration."""
        with self._conn() as conn:
            exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
            if not exists or not exists[0]:
                return []
            rows = conn.execute(
                "SELECT version, description, applied_ns FROM schema_migrations ORDER BY version"
            ).fetchall()
        return [(int(v), str(d), int(a)) for v, d, a in rows]

    # partitions --------------------------------------------------------------------------------

    def partitions(self) -> list[tuple[str, int, int]]:
        """(table, rows estimate, bytes) of each monthly partition of the entries, oldest first."""
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT c.relname, greatest(c.reltuples, 0)::bigint, pg_total_relation_size(c.oid) "
                "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'entries'::regclass ORDER BY c.relname"
            ).fetchall()
        return [(str(n), int(r), int(b)) for n, r, b in rows]

    @staticmethod
    def _existing_months(conn: psycopg.Connection[Any]) -> set[Month]:
        rows = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'entries'::regclass"
        ).fetchall()
        return {m for (name,) in rows if (m := month_of_table(name)) is not None}

    def _create_months(self, conn: psycopg.Connection[Any], months: Sequence[Month]) -> set[Month]:
        """Create the missing monthly partitions, inside the caller's transaction. A new table
        is attached (SHARE UPDATE EXCLUSIVE on the parent) rather than created as a partition
        (ACCESS EXCLUSIVE), so appends and reads elsewhere go on meanwhile."""
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._advisory_key(conn, "partitions"),))
        have = self._existing_months(conn)
        for m in months:
            if m in have:
                continue
            table = sql.Identifier(m.table)
            conn.execute(
                sql.SQL(
                    "CREATE TABLE {} (LIKE entries INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)"
                ).format(table)
            )
            conn.execute(
                sql.SQL(
                    "ALTER TABLE entries ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})"
                ).format(table, sql.Literal(m.start_ns), sql.Literal(m.end_ns))
            )
            have.add(m)
            log.info("created partition %s", m.table)
        return have

    def _ensure_ahead(self, now_ns: int) -> None:
        """The current month and the next ones exist (checked again when the month turns)."""
        with self._months_lock:
            if now_ns < self._ahead_until:
                return
            with self._conn() as conn, conn.transaction():
                have = self._create_months(conn, months_ahead(now_ns))
            self._months = have
            self._ahead_until = Month.of(now_ns).end_ns

    def _ensure_months(self, conn: psycopg.Connection[Any], first_ns: int, last_ns: int) -> None:
        """Partitions for received times outside the months made ahead (a clock jump, or a
        copy of an older store), created inside the append transaction."""
        months = months_between(first_ns, last_ns)
        if all(m in self._months for m in months):
            return
        self._create_months(conn, months)
        # Not cached here: the transaction may still roll back. The next check reloads.
        with self._months_lock:
            self._months = set()
            self._ahead_until = 0
