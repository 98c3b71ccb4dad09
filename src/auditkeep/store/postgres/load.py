"""Loading rows copied from another store, as they were stored (``auditkeep db copy``,
:mod:`auditkeep.store.postgres_copy`): entries, tiles and checkpoints go in by ``COPY``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from auditkeep.store.base import KEY_SHIFT, CheckpointRow, Head, StoreError
from auditkeep.store.postgres.documents import DOC_UPSERT
from auditkeep.store.postgres.migrations import PgSchema

EntryRow = tuple[int, bytes, int, bytes, str | None, bytes | None]  # key, id, received_ns, leaf, subject, sealed
_CHUNK = 8192
_COPY_ENTRIES = "COPY entries (k, tenant_id, id, received_ns, leaf, subject, sealed) FROM STDIN (FORMAT BINARY)"
_ENTRY_TYPES = ["int8", "int4", "bytea", "int8", "bytea", "bytea", "bytea"]


class PgLoad(PgSchema):
    """Bulk loads of a copied store, a base of :class:`~auditkeep.store.postgres.PostgresStore`."""

    def load_tenant(
        self,
        head: Head,
        created_ns: int | None,
        entries: Iterable[Sequence[EntryRow]],
        tiles: Sequence[tuple[int, int, bytes]],
        checkpoints: Iterable[CheckpointRow],
        subjects: Sequence[tuple[str, bytes, int]],
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """One tenant's log, in one transaction whose last write is its head (an interrupted
        load leaves no half tenant). ``entries`` come in chunks, in index order; returns how
        many were loaded."""
        tid = head.tenant_id
        copied = 0
        with self._conn() as conn, conn.transaction():
            for rows in entries:
                received = [r[2] for r in rows]
                self._ensure_months(conn, min(received), max(received))  # each into its month's partition
                with conn.cursor().copy(_COPY_ENTRIES) as cp:
                    cp.set_types(_ENTRY_TYPES)
                    for k, eid, received_ns, leaf, subject, sealed in rows:
                        cp.write_row((k, tid, eid, received_ns, leaf, subject.encode() if subject is not None else None, sealed))
                copied += len(rows)
                if progress is not None:
                    progress(len(rows))
            for i in range(0, len(tiles), _CHUNK):
                part = tiles[i : i + _CHUNK]
                conn.execute(
                    "INSERT INTO tiles(tenant_id, level, idx, data) "
                    "SELECT %s, l, i, d FROM unnest(%s::smallint[], %s::bigint[], %s::bytea[]) AS u(l, i, d)",
                    (tid, [t[0] for t in part], [t[1] for t in part], [t[2] for t in part]),
                )
            with conn.cursor().copy("COPY checkpoints (tenant_id, size, root, note, signed_ns) FROM STDIN (FORMAT BINARY)") as cp:
                cp.set_types(["int4", "int8", "bytea", "text", "int8"])
                for c in checkpoints:
                    cp.write_row((tid, c.size, c.root, c.note, c.signed_ns))
            with conn.cursor().copy("COPY subjects (tenant_id, subject, salt, created_ns) FROM STDIN (FORMAT BINARY)") as cp:
                cp.set_types(["int4", "bytea", "bytea", "int8"])
                for subject, salt, created in subjects:
                    cp.write_row((tid, subject.encode(), salt, created))
            if copied != head.size:
                raise StoreError(f"tenant {head.tenant!r}: {copied} entries read for a head of size {head.size}")
            # The head last: a tenant exists here only once all of it is.
            conn.execute(
                "INSERT INTO logs(tenant_id, name, size, root, received_ns, cp_size, cp_ns, created_ns) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (tid, head.tenant, head.size, head.root, head.received_ns, head.checkpoint_size, head.checkpoint_ns, created_ns),
            )
            conn.execute(
                "SELECT setval(pg_get_serial_sequence('logs', 'tenant_id'), greatest(%s, (SELECT max(tenant_id) FROM logs)))",
                (tid,),
            )
        return copied

    def load_settings(
        self,
        meta: Iterable[tuple[str, str]],
        cursors: Iterable[tuple[str, int, int, bytes | None, int]],
        docs: Iterable[tuple[Any, ...]],
    ) -> None:
        """Settings, consumer cursors and documents, upserted (loading them twice changes nothing)."""
        with self._conn() as conn, conn.transaction():
            for key, value in meta:
                conn.execute(
                    "INSERT INTO meta(key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )
            for row in cursors:
                conn.execute(
                    "INSERT INTO cursors(name, tenant_id, position, state, updated_ns) VALUES (%s, %s, %s, %s, %s) "
                    "ON CONFLICT (name, tenant_id) DO UPDATE SET position = excluded.position, "
                    "state = excluded.state, updated_ns = excluded.updated_ns",
                    row,
                )
            for row in docs:
                conn.execute(DOC_UPSERT, row)

    def entry_count(self, tenant_id: int) -> int:
        """Entries stored for a tenant (a check beside the head)."""
        lo = tenant_id << KEY_SHIFT
        with self._conn() as conn:
            row = conn.execute("SELECT count(*) FROM entries WHERE k >= %s AND k < %s", (lo, lo + (1 << KEY_SHIFT))).fetchone()
        return int(row[0]) if row else 0
