"""The PostgreSQL store proper: tenants, appends, reads, consumers' cursors, the search
projection, leases and settings (connections, schema and documents are its bases)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import msgspec
import psycopg

from auditkeep.store import postgres_lifecycle as lifecycle
from auditkeep.store.base import (
    KEY_SHIFT,
    CheckpointRow,
    Entry,
    Head,
    ProjectedRow,
    Query,
    StoreUnavailable,
    TileKey,
    entry_key,
)
from auditkeep.store.postgres.documents import PgDocuments
from auditkeep.store.postgres.load import PgLoad
from auditkeep.store.postgres_append import (
    ENTRY_COLS,
    HEAD_SQL,
    PgAppend,
    entry_of,
    existing,
    head_of,
    read_tiles,
    salts,
)
from auditkeep.store.postgres_schema import Month, month_of_table
from auditkeep.store.postgres_search import (
    build_count_by_time,
    build_search,
    build_time_span,
    pg_text,
    tsvector_binary,
)

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
_json = msgspec.json.Encoder()


def _opt_text(value: str | None) -> str | None:
    return None if value is None else pg_text(value)


def _jsonb(metadata: Any) -> bytes | None:
    """The projected metadata (its JSON text as ``msgspec.Raw``, or decoded) as binary jsonb."""
    if metadata is None:
        return None
    data = _json.encode(metadata)  # a Raw as it is
    if b"\\u0000" in data:  # jsonb refuses NUL in strings, too
        data = _json.encode(_without_nul(msgspec.json.decode(data)))
    return _JSONB_VERSION + data


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return pg_text(value)
    if isinstance(value, dict):
        return {pg_text(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value



class PostgresStore(PgLoad, PgDocuments):
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
        super().__init__(
            url,
            durability,
            schema=schema,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            application_name=application_name,
            read_only=read_only,
        )
        try:
            if read_only:
                self._check_schema()
            elif migrate:
                self.migrate()
        except BaseException:
            self.close()
            raise

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
                # Pipeline mode: BEGIN, the locks, the writes and COMMIT in three round trips.
                with conn.pipeline() as pipeline, conn.transaction():
                    txn = PgAppend(self, conn, tenant_ids)
                    yield txn
                    txn.finish(pipeline)
            except psycopg.errors.CheckViolation:
                with self._months_lock:  # e.g. no partition for a row: look again next time
                    self._months = set()
                    self._ahead_until = 0
                raise

    # committed state for a writer sequencing ahead of its commit (store/base.py:StageReads)

    def committed_head(self, tenant_id: int) -> Head | None:
        with self._conn() as conn:
            row = conn.execute(HEAD_SQL + " WHERE tenant_id = %s", (tenant_id,)).fetchone()
        return head_of(row) if row else None

    def committed_existing(self, tenant_id: int, ids: Sequence[bytes]) -> dict[bytes, Entry]:
        if not ids:
            return {}
        with self._conn() as conn:
            return existing(conn, tenant_id, ids)

    def committed_erasures(self) -> int:
        with self._conn() as conn:
            return lifecycle.erasures(conn)

    def create_salts(self, tenant_id: int, subjects: Sequence[str]) -> dict[str, bytes]:
        # Autocommit: each new salt is stored (durably) before any leaf sealed under it.
        with self._conn() as conn:
            return salts(conn, tenant_id, subjects)

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

    def checkpoints_newest(self, tenant_id: int, below: int | None, limit: int) -> list[CheckpointRow]:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT tenant_id, size, root, note, signed_ns FROM checkpoints WHERE tenant_id = %s AND size < %s "
                "ORDER BY size DESC LIMIT %s",
                (tenant_id, 1 << 62 if below is None else below, limit),
            ).fetchall()
        return [CheckpointRow(r[0], r[1], bytes(r[2]), r[3], r[4]) for r in rows]

    def checkpoint_from(self, tenant_id: int, size: int) -> CheckpointRow | None:
        with self._conn() as conn:
            r = conn.execute(
                "SELECT tenant_id, size, root, note, signed_ns FROM checkpoints WHERE tenant_id = %s AND size >= %s "
                "ORDER BY size LIMIT 1",
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
            fresh = [row for row in rows if row.position >= current]
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

    def time_span(self, q: Query) -> tuple[int, int] | None:
        built = build_time_span(q)
        if built is None:
            return None
        with self._conn() as conn:
            row = conn.execute(*built).fetchone()
        return None if row is None or row[0] is None else (int(row[0]), int(row[1]))

    def count_by_time(self, q: Query, origin_ns: int, step_ns: int) -> list[tuple[int, str, int]]:
        built = build_count_by_time(q, origin_ns, step_ns)
        if built is None:
            return []
        with self._conn() as conn:
            return [(int(b), str(o), int(n)) for b, o, n in conn.execute(*built).fetchall()]

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

    def reader_opener(self) -> None:
        """None: a PostgreSQL log is read in the verifying process (the database spreads the work)."""
        return None

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

    def compact_expired_months(self, now_ns: int | None = None) -> list[lifecycle.Compacted]:
        """Compact every monthly partition that ended before ``now_ns`` (default now) and whose
        entries have (nearly) all expired (see :func:`lifecycle.compact_month`)."""
        now = time.time_ns() if now_ns is None else now_ns
        done: list[lifecycle.Compacted] = []
        for table, _rows, _size in self.partitions():
            month = month_of_table(table)
            if month is None or month.end_ns > now:
                continue
            with self._conn() as conn:
                key = self._advisory_key(conn, "partitions")
                got = lifecycle.compact_month(conn, table, month.start_ns, month.end_ns, key)
            if got is not None:
                log.info("compacted expired partition %s: %d entries (%d with a payload), %d -> %d bytes",
                         table, got.rows, got.kept, got.bytes_before, got.bytes_after)
                done.append(got)
        return done

    def subject_entries(self, tenant_id: int, subject: str, by_actor: bool = False) -> list[Entry]:
        with self._conn() as conn:
            return lifecycle.subject_entries(conn, tenant_id, subject)

    def erase_subject(
        self, tenant_id: int, subject: str, old_texts: Mapping[int, str], rows: Sequence[ProjectedRow],
        scanned_below: int | None = None,
    ) -> list[int]:
        with self._conn() as conn:
            present = {
                int(r[0]) for r in conn.execute("SELECT k FROM ev WHERE k = ANY(%s)", (list(old_texts),)).fetchall()
            }
            erased = lifecycle.erase_subject(conn, tenant_id, subject, list(old_texts), scanned_below)
        # projected again without the plaintext (the rows were deleted above)
        again = [x for x in rows if x.key in present]
        if again:
            self._reproject(again)
        # only the monthly partitions that held the plaintext (the whole table if one is unknown)
        months = {Month.of(r).table for _, r in erased}
        parts = {t for t, _, _ in self.partitions()}
        entries = sorted(months) if months <= parts else ["entries"]
        with self._conn() as conn:
            lifecycle.vacuum(conn, [*entries, "subjects", "ev"])
        return [i for i, _ in erased]

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


class _AdvisoryLease:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn: psycopg.Connection[Any] | None = conn

    def release(self) -> None:
        if self._conn is not None:
            try:
                # Unlock before closing: a closed session's locks go only when its backend
                # notices the end, so a holder that released could still block the next one.
                with contextlib.suppress(psycopg.Error):
                    self._conn.execute("SELECT pg_advisory_unlock_all()")
                self._conn.close()
            finally:
                self._conn = None
