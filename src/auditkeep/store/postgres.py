"""The PostgreSQL store: several stateless auditkeep nodes sharing one database.

Appends to one tenant's log are serialised by a row lock on its head (``SELECT ... FOR
UPDATE`` in tenant order), held while the ledger reads the head, sequences, hashes and
writes, so two nodes never fork a tree; appends to different tenants run in parallel.
Entries are written with binary ``COPY`` into monthly partitions (by received time).

Every statement runs on a pooled connection with ``prepare_threshold=None`` and
``plan_cache_mode=force_custom_plan``: a generic plan for a search picks an index without
seeing the values and was measured 30-170x slower. Lost connections surface as
:class:`StoreUnavailable` (HTTP 503); the pool replaces broken connections by itself.

``durability="full"`` commits with ``synchronous_commit=on`` (an acknowledged event survives
a crash of the database server); ``"normal"`` uses ``off``: commits return before the WAL is
flushed, so a database crash may lose the last fraction of a second of acknowledged events
(never corrupting the log).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec
import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from auditkeep.store import postgres_lifecycle as lifecycle
from auditkeep.store.base import (
    KEY_SHIFT,
    CheckpointRow,
    Doc,
    Entry,
    Head,
    ProjectedRow,
    Query,
    StoreError,
    StoreUnavailable,
    TileKey,
    entry_key,
)
from auditkeep.store.postgres_append import (
    ENTRY_COLS,
    HEAD_SQL,
    PgAppend,
    entry_of,
    head_of,
    read_tiles,
)
from auditkeep.store.postgres_schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Month,
    month_of_table,
    months_ahead,
    months_between,
)
from auditkeep.store.postgres_search import build_search, pg_text, tsvector_binary
from auditkeep.store.sql_filters import doc_filter

log = logging.getLogger("auditkeep.store.postgres")

_EMPTY_ROOT = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
_MASK = (1 << KEY_SHIFT) - 1
# tsv and meta are sent already in their binary wire formats, hence "bytea" for them.
_COPY_EV = (
    "COPY ev (k, tenant_id, time_ns, received_ns, actor, action, rtype, rid, outcome, category, tsv, meta) "
    "FROM STDIN (FORMAT BINARY)"
)
_EV_TYPES = [
    "int8",
    "int4",
    "int8",
    "int8",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "bytea",
    "bytea",
]
_JSONB_VERSION = b"\x01"
_any_json = msgspec.json.Decoder()
_json = msgspec.json.Encoder()


def _opt_text(value: str | None) -> str | None:
    return None if value is None else pg_text(value)


def _jsonb(metadata: bytes | None) -> bytes | None:
    if metadata is None:
        return None
    if b"\\u0000" in metadata:  # jsonb refuses NUL in strings, too
        metadata = _json.encode(_without_nul(_any_json.decode(metadata)))
    return _JSONB_VERSION + metadata


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return pg_text(value)
    if isinstance(value, dict):
        return {pg_text(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


OWN_PARAMS = ("schema", "pool_max")


def split_url(url: str) -> tuple[str, dict[str, str]]:
    """The libpq URL without auditkeep's own parameters (``schema``, ``pool_max``), and those."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    own = {k: v for k, v in query if k in OWN_PARAMS and v}
    rest = [(k, v) for k, v in query if k not in OWN_PARAMS]
    scheme = "postgresql" if parts.scheme == "postgres" else parts.scheme
    return urlunsplit((scheme, parts.netloc, parts.path, urlencode(rest), parts.fragment)), own


def redact_url(url: str) -> str:
    """``url`` without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class PostgresStore:
    """:class:`auditkeep.store.base.Store` on PostgreSQL (psycopg 3 and a connection pool).

    ``url`` is a libpq URL; an extra ``?schema=NAME`` (or the ``schema`` argument) keeps
    every table in that schema, created if needed, and ``?pool_max=N`` bounds the pool's
    connections (default ``max_size``, 10). Migrations run at start unless ``migrate`` is
    false. ``read_only`` runs every session with ``default_transaction_read_only`` (the
    database refuses any write) and never migrates: the schema must be this version's.
    """

    dialect = "postgresql"

    def __init__(
        self,
        url: str,
        durability: str = "full",
        *,
        schema: str | None = None,
        migrate: bool = True,
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 5.0,
        application_name: str = "auditkeep",
        read_only: bool = False,
    ) -> None:
        if durability not in ("full", "normal"):
            raise ValueError("durability must be 'full' or 'normal'")
        conninfo, own = split_url(url)
        self.url = redact_url(conninfo)
        self._conninfo = conninfo
        self.schema = schema or own.get("schema")
        if "pool_max" in own:
            try:
                max_size = int(own["pool_max"])
            except ValueError:
                raise ValueError("pool_max in the database URL must be a number") from None
        max_size = max(1, max_size)
        min_size = min(min_size, max_size)
        self.durability = durability
        self.read_only = read_only
        self.projection_writable = not read_only
        self._closed = False
        self._months: set[Month] = set()
        self._ahead_until = 0
        self._months_lock = threading.Lock()
        self._close_hooks: list[Any] = []
        self._pool = ConnectionPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            kwargs={
                "autocommit": True,
                "prepare_threshold": None,
                "connect_timeout": max(1, round(timeout)),
                "application_name": application_name,
            },
            configure=self._configure,
            check=ConnectionPool.check_connection,
            reconnect_timeout=max(30.0, timeout * 6),
            name=f"auditkeep-{os.getpid()}",
            open=False,
        )
        try:
            self._pool.open(wait=True, timeout=timeout)
        except psycopg.Error as exc:
            self._pool.close()
            raise StoreUnavailable(f"cannot connect to PostgreSQL at {self.url}: {exc}") from exc
        try:
            if read_only:
                self._check_schema()
            elif migrate:
                self.migrate()
        except BaseException:
            self.close()
            raise

    # connections -------------------------------------------------------------------------------

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        if self.schema:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
        conn.execute("SET synchronous_commit TO " + ("on" if self.durability == "full" else "off"))
        conn.execute("SET plan_cache_mode TO force_custom_plan")
        if self.read_only:
            conn.execute("SET default_transaction_read_only TO on")

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; database errors become StoreUnavailable (try again: the
        server is down, restarting, or the connection broke) or StoreError."""
        if self._closed:
            raise StoreError("store is closed")
        try:
            with self._pool.connection() as conn:
                yield conn
        except psycopg.OperationalError as exc:  # includes the pool's timeouts
            raise StoreUnavailable(f"PostgreSQL unavailable: {_first_line(exc)}") from exc
        except psycopg.Error as exc:
            raise StoreError(f"postgresql: {_first_line(exc)}") from exc

    def on_close(self, hook: Any) -> None:
        """Call ``hook()`` once the store has closed (tests drop their schema then)."""
        self._close_hooks.append(hook)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pool.close()
        for hook in self._close_hooks:
            hook()

    # schema --------------------------------------------------------------------------------------

    def _advisory_key(self, conn: psycopg.Connection[Any], purpose: str) -> int:
        """An advisory lock key for ``purpose`` in this store's schema (it may not exist yet)."""
        row = conn.execute(
            "SELECT hashtextextended(%s || coalesce(%s, current_schema(), ''), 0)",
            (f"auditkeep.{purpose}.", self.schema),
        ).fetchone()
        assert row is not None
        return int(row[0])

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

    # tenants -----------------------------------------------------------------------------------

    def tenant(self, name: str, create: bool = False) -> Head | None:
        with self._conn() as conn:
            row = conn.execute(HEAD_SQL + " WHERE name = %s", (name,)).fetchone()
            if row is not None or not create:
                return head_of(row) if row else None
            conn.execute(
                "INSERT INTO logs(name, size, root, received_ns, cp_size, cp_ns, created_ns) "
                "VALUES (%s, 0, %s, 0, 0, 0, %s) ON CONFLICT (name) DO NOTHING",
                (name, _EMPTY_ROOT, time.time_ns()),
            )
            row = conn.execute(HEAD_SQL + " WHERE name = %s", (name,)).fetchone()
        assert row is not None
        return head_of(row)

    def heads(self) -> list[Head]:
        with self._conn() as conn:
            return [head_of(r) for r in conn.execute(HEAD_SQL + " ORDER BY name").fetchall()]

    # append ------------------------------------------------------------------------------------

    @contextmanager
    def append_txn(self, tenant_ids: Sequence[int]) -> Iterator[PgAppend]:
        self._ensure_ahead(time.time_ns())
        with self._conn() as conn:
            try:
                with conn.transaction():
                    yield PgAppend(self, conn, tenant_ids)
            except psycopg.errors.CheckViolation:
                with self._months_lock:  # e.g. no partition for a row: look again next time
                    self._months = set()
                    self._ahead_until = 0
                raise

    # reads -------------------------------------------------------------------------------------

    def entries(self, tenant_id: int, start: int, end: int) -> Iterator[Entry]:
        """Entries with start <= index < end in index order, read in chunks (no connection is
        held between chunks)."""
        for rows in self._raw_chunks(tenant_id, start, end, 4096, ENTRY_COLS):
            for r in rows:
                yield entry_of(r)

    def entries_raw(
        self, tenant_id: int, start: int, end: int, chunk: int = 8192
    ) -> Iterator[list[tuple[int, bytes, int, bytes]]]:
        """Chunks of (key, id, received_ns, leaf), for verification's hot loop."""
        for rows in self._raw_chunks(tenant_id, start, end, chunk, "k, id, received_ns, leaf"):
            yield [(r[0], r[1], r[2], r[3]) for r in rows]

    def entry_rows(
        self, tenant_id: int, start: int, end: int, chunk: int = 8192
    ) -> Iterator[list[tuple[int, bytes, int, bytes, str | None, bytes | None]]]:
        """Chunks of (key, id, received_ns, leaf, subject, sealed plaintext), for verify."""
        for rows in self._raw_chunks(tenant_id, start, end, chunk, ENTRY_COLS):
            yield [(r[0], r[1], r[2], r[3], r[4].decode() if r[4] is not None else None, r[5]) for r in rows]

    def _raw_chunks(
        self, tenant_id: int, start: int, end: int, chunk: int, cols: str
    ) -> Iterator[list[Any]]:
        lo = entry_key(tenant_id, start)
        hi = entry_key(tenant_id, end)
        while lo < hi:
            with self._conn() as conn:
                cur = conn.cursor(binary=True)
                rows = cur.execute(
                    f"SELECT {cols} FROM entries WHERE k >= %s AND k < %s ORDER BY k LIMIT %s",
                    (lo, hi, chunk),
                ).fetchall()
            if not rows:
                return
            yield rows
            lo = rows[-1][0] + 1
            if len(rows) < chunk:
                return

    def entry_by_id(self, tenant_id: int, event_id: bytes) -> Entry | None:
        with self._conn() as conn:
            row = (
                conn.cursor(binary=True)
                .execute(
                    f"SELECT {ENTRY_COLS} FROM entries WHERE tenant_id = %s AND id = %s",
                    (tenant_id, event_id),
                )
                .fetchone()
            )
        return entry_of(row) if row else None

    def entries_by_key(self, keys: Sequence[int]) -> dict[int, Entry]:
        if not keys:
            return {}
        with self._conn() as conn:
            rows = (
                conn.cursor(binary=True)
                .execute(f"SELECT {ENTRY_COLS} FROM entries WHERE k = ANY(%s)", (list(keys),))
                .fetchall()
            )
        return {r[0]: entry_of(r) for r in rows}

    def read_tiles(self, tenant_id: int, keys: Sequence[TileKey]) -> dict[TileKey, bytes]:
        if not keys:
            return {}
        with self._conn() as conn:
            return read_tiles(conn, tenant_id, keys)

    def tiles_range(self, tenant_id: int, level: int, start: int, end: int) -> dict[int, bytes]:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT idx, data FROM tiles WHERE tenant_id = %s AND level = %s AND idx >= %s AND idx < %s",
                (tenant_id, level, start, end),
            ).fetchall()
        return {int(i): bytes(d) for i, d in rows}

    def checkpoints(self, tenant_id: int) -> Iterator[CheckpointRow]:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT tenant_id, size, root, note, signed_ns FROM checkpoints WHERE tenant_id = %s ORDER BY size",
                (tenant_id,),
            ).fetchall()
        for r in rows:
            yield CheckpointRow(r[0], r[1], bytes(r[2]), r[3], r[4])

    def checkpoint_at(self, tenant_id: int, size: int) -> CheckpointRow | None:
        with self._conn() as conn:
            r = conn.execute(
                "SELECT tenant_id, size, root, note, signed_ns FROM checkpoints WHERE tenant_id = %s AND size = %s",
                (tenant_id, size),
            ).fetchone()
        return CheckpointRow(r[0], r[1], bytes(r[2]), r[3], r[4]) if r else None

    def latest_checkpoint(self, tenant_id: int) -> CheckpointRow | None:
        with self._conn() as conn:
            r = conn.execute(
                "SELECT tenant_id, size, root, note, signed_ns FROM checkpoints WHERE tenant_id = %s "
                "ORDER BY size DESC LIMIT 1",
                (tenant_id,),
            ).fetchone()
        return CheckpointRow(r[0], r[1], bytes(r[2]), r[3], r[4]) if r else None

    # consumers ---------------------------------------------------------------------------------

    def cursor(self, name: str, tenant_id: int) -> tuple[int, bytes | None]:
        with self._conn() as conn:
            r = conn.execute(
                "SELECT position, state FROM cursors WHERE name = %s AND tenant_id = %s",
                (name, tenant_id),
            ).fetchone()
        return (int(r[0]), bytes(r[1]) if r[1] is not None else None) if r else (0, None)

    def set_cursor(
        self, name: str, tenant_id: int, position: int, state: bytes | None = None
    ) -> None:
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO cursors(name, tenant_id, position, state, updated_ns) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (name, tenant_id) DO UPDATE SET position = excluded.position, "
                "state = excluded.state, updated_ns = excluded.updated_ns",
                (name, tenant_id, position, state, time.time_ns()),
            )

    # projection --------------------------------------------------------------------------------

    def projection_position(self, tenant_id: int) -> int:
        with self._conn() as conn:
            r = conn.execute(
                "SELECT position FROM proj_cursor WHERE tenant_id = %s", (tenant_id,)
            ).fetchone()
        return int(r[0]) if r else 0

    def project(self, tenant_id: int, rows: Sequence[ProjectedRow], position: int) -> None:
        """Add rows to the projection and move its cursor, atomically. The cursor row is locked
        first, so when several nodes project the same range one waits for the other and then
        skips the rows below the position it finds."""
        with self._conn() as conn, conn.transaction():
            # Derived data: losing the last commits of it in a crash only means re-projecting.
            conn.execute("SET LOCAL synchronous_commit TO off")
            conn.execute(
                "INSERT INTO proj_cursor(tenant_id, position) VALUES (%s, 0) ON CONFLICT (tenant_id) DO NOTHING",
                (tenant_id,),
            )
            r = conn.execute(
                "SELECT position FROM proj_cursor WHERE tenant_id = %s FOR UPDATE", (tenant_id,)
            ).fetchone()
            current = int(r[0]) if r else 0
            fresh = [row for row in rows if row.index >= current]
            if fresh:
                _copy_ev(conn, fresh)
            if position > current:
                conn.execute(
                    "UPDATE proj_cursor SET position = %s WHERE tenant_id = %s",
                    (position, tenant_id),
                )

    def _reproject(self, rows: Sequence[ProjectedRow]) -> None:
        with self._conn() as conn, conn.transaction():
            _copy_ev(conn, rows)

    def reset_projection(self) -> None:
        """Forget the projection; the consumer rebuilds it from the log."""
        with self._conn() as conn:
            conn.execute("TRUNCATE ev, proj_cursor")

    def search(self, q: Query) -> list[tuple[int, int]]:
        built = build_search(q)
        if built is None:
            return []
        query, params = built
        with self._conn() as conn:
            return [(int(t), int(k)) for t, k in conn.execute(query, params).fetchall()]

    def explain(self, q: Query, analyze: bool = False) -> list[str]:
        """The plan PostgreSQL chooses for a search (for benchmarks and diagnosis)."""
        built = build_search(q)
        if built is None:
            return ["(matches nothing)"]
        query, params = built
        prefix = "EXPLAIN (ANALYZE, BUFFERS) " if analyze else "EXPLAIN "
        with self._conn() as conn:
            return [str(r[0]) for r in conn.execute(prefix + query, params).fetchall()]

    def analyze(self) -> None:
        """Refresh the planner's statistics (autovacuum does this too, eventually)."""
        with self._conn() as conn:
            conn.execute("ANALYZE ev")
            conn.execute("ANALYZE entries")

    # documents ---------------------------------------------------------------------------------

    def doc_put(self, doc: Doc) -> None:
        self.doc_put_many([doc])

    def doc_put_many(self, docs: Sequence[Doc]) -> None:
        if not docs:
            return
        with self._conn() as conn, conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO docs(collection, id, tenant, created_ns, status, data) VALUES (%s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (collection, id) DO UPDATE SET tenant = excluded.tenant, "
                "created_ns = excluded.created_ns, status = excluded.status, data = excluded.data",
                [(d.collection, d.id, d.tenant, d.created_ns, d.status, d.data) for d in docs],
            )

    def doc_delete_many(self, collection: str, doc_ids: Sequence[str]) -> int:
        if not doc_ids:
            return 0
        with self._conn() as conn:
            cur = conn.execute(
                "DELETE FROM docs WHERE collection = %s AND id = ANY(%s)", (collection, list(doc_ids))
            )
            return cur.rowcount

    def doc_insert(self, doc: Doc) -> bool:
        with self._conn() as conn:
            cur = conn.execute(
                "INSERT INTO docs(collection, id, tenant, created_ns, status, data) VALUES (%s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (collection, id) DO NOTHING",
                (doc.collection, doc.id, doc.tenant, doc.created_ns, doc.status, doc.data),
            )
            return cur.rowcount == 1

    def doc_get(self, collection: str, doc_id: str) -> Doc | None:
        with self._conn() as conn:
            r = conn.execute(
                "SELECT collection, id, tenant, created_ns, status, data FROM docs WHERE collection = %s AND id = %s",
                (collection, doc_id),
            ).fetchone()
        return _doc(r) if r else None

    def doc_list(
        self,
        collection: str,
        tenant: str | None = None,
        status: str | None = None,
        before_ns: int | None = None,
        limit: int = 100,
    ) -> list[Doc]:
        where, params = doc_filter("%s", collection, tenant, status, before_ns)
        query = f"SELECT collection, id, tenant, created_ns, status, data FROM docs {where} ORDER BY created_ns DESC, id DESC LIMIT %s"
        with self._conn() as conn:
            return [_doc(r) for r in conn.execute(query, [*params, limit]).fetchall()]

    def doc_delete(self, collection: str, doc_id: str) -> bool:
        with self._conn() as conn:
            cur = conn.execute(
                "DELETE FROM docs WHERE collection = %s AND id = %s", (collection, doc_id)
            )
            return cur.rowcount == 1

    def doc_count(
        self, collection: str, tenant: str | None = None, status: str | None = None
    ) -> int:
        where, params = doc_filter("%s", collection, tenant, status)
        with self._conn() as conn:
            r = conn.execute(f"SELECT count(*) FROM docs {where}", params).fetchone()
        return int(r[0]) if r else 0

    def subject_salts(self, tenant_id: int, subjects: Sequence[str]) -> dict[str, bytes]:
        if not subjects:
            return {}
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT subject, salt FROM subjects WHERE tenant_id = %s AND subject = ANY(%s) AND salt IS NOT NULL",
                (tenant_id, [x.encode() for x in subjects]),
            ).fetchall()
        return {bytes(x).decode(): bytes(salt) for x, salt in rows}

    # retention and erasure (auditkeep.store.postgres_lifecycle) ---------------------------------

    def expire(self, tenant_id: int, indexes: Sequence[int], texts: Mapping[int, str]) -> int:
        if not indexes:
            return 0
        with self._conn() as conn:
            return lifecycle.expire(conn, tenant_id, indexes)

    def subject_entries(self, tenant_id: int, subject: str) -> list[Entry]:
        with self._conn() as conn:
            return lifecycle.subject_entries(conn, tenant_id, subject)

    def erase_subject(
        self, tenant_id: int, subject: str, old_texts: Mapping[int, str], rows: Sequence[ProjectedRow]
    ) -> list[int]:
        with self._conn() as conn:
            present = {
                int(r[0]) for r in conn.execute("SELECT k FROM ev WHERE k = ANY(%s)", (list(old_texts),)).fetchall()
            }
            erased = lifecycle.erase_subject(conn, tenant_id, subject, list(old_texts))
        # projected again without the plaintext (the rows were deleted above)
        again = [x for x in rows if x.key in present]
        if again:
            self._reproject(again)
        with self._conn() as conn:
            lifecycle.vacuum(conn)
        return erased

    # leases --------------------------------------------------------------------------------------

    def lease(self, name: str) -> _AdvisoryLease | None:
        """A session advisory lock on a connection of its own: one holder among every node on
        this database (and schema); PostgreSQL drops it when that connection ends."""
        key = f"auditkeep:{self.schema or ''}:{name}"
        try:
            conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5)
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"cannot connect to PostgreSQL at {self.url}: {exc}") from exc
        try:
            row = conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (key,)).fetchone()
        except psycopg.Error:
            conn.close()
            raise
        if not row or not row[0]:
            conn.close()
            return None
        return _AdvisoryLease(conn)

    # settings ----------------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        with self._conn() as conn:
            r = conn.execute("SELECT value FROM meta WHERE key = %s", (key,)).fetchone()
        return str(r[0]) if r else None

    def set_meta(self, key: str, value: str) -> None:
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO meta(key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )


def _copy_ev(conn: psycopg.Connection[Any], rows: Sequence[ProjectedRow]) -> None:
    with conn.cursor().copy(_COPY_EV) as cp:
        cp.set_types(_EV_TYPES)
        for x in rows:
            cp.write_row(
                (
                    x.key,
                    x.tenant_id,
                    x.time_ns,
                    x.received_ns,
                    pg_text(x.actor),
                    pg_text(x.action),
                    _opt_text(x.resource_type),
                    _opt_text(x.resource_id),
                    pg_text(x.outcome),
                    _opt_text(x.category),
                    tsvector_binary(x.text),
                    _jsonb(x.metadata),
                )
            )


def _doc(r: Sequence[Any]) -> Doc:
    return Doc(r[0], r[1], r[2], r[3], r[4], bytes(r[5]))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _AdvisoryLease:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn: psycopg.Connection[Any] | None = conn

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()  # ending the session releases its advisory locks
            finally:
                self._conn = None
