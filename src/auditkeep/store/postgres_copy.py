"""Moving a whole embedded (SQLite) store into PostgreSQL, byte for byte.

Entries, tiles, checkpoints, salts, cursors, documents and settings are copied as stored (not
re-appended), so every leaf, tile, root and signed checkpoint is the same afterwards. Each
tenant is copied in one transaction whose last write is its head, so an interrupted copy
leaves no half tenant; running it again skips the tenants already there with the same head.
The query projection is not copied: the consumer rebuilds it from the log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from auditkeep.store.base import KEY_SHIFT, Head, StoreError
from auditkeep.store.postgres import PostgresStore
from auditkeep.store.sqlite import SQLiteStore

_CHUNK = 8192
_COPY_ENTRIES = (
    "COPY entries (k, tenant_id, id, received_ns, leaf, subject, sealed) FROM STDIN (FORMAT BINARY)"
)
_ENTRY_TYPES = ["int8", "int4", "bytea", "int8", "bytea", "bytea", "bytea"]


@dataclass
class CopyReport:
    copied: list[str] = field(default_factory=list)  # tenants copied now
    skipped: list[str] = field(default_factory=list)  # already there, same head
    entries: int = 0
    mismatches: list[str] = field(default_factory=list)  # heads that differ afterwards

    @property
    def ok(self) -> bool:
        return not self.mismatches


def copy_to_postgres(
    src: SQLiteStore, dst: PostgresStore, progress: Callable[[int], None] | None = None
) -> CopyReport:
    """Copy ``src`` into ``dst`` and compare every tenant's head afterwards."""
    rep = CopyReport()
    src_id, dst_id = src.meta("log_id"), dst.meta("log_id")
    if dst_id is not None and dst_id != src_id:
        raise StoreError(f"the destination holds log {dst_id!r}, the source is log {src_id!r}")
    there = {h.tenant: h for h in dst.heads()}
    for h in src.heads():
        have = there.get(h.tenant)
        if have is not None:
            if (have.tenant_id, have.size, have.root) != (h.tenant_id, h.size, h.root):
                raise StoreError(
                    f"tenant {h.tenant!r} already exists in the destination with another head "
                    f"(size {have.size}); copy into an empty database"
                )
            rep.skipped.append(h.tenant)
            if progress is not None:
                progress(h.size)
            continue
        if any(o.tenant_id == h.tenant_id for o in there.values()):
            raise StoreError(
                f"tenant id {h.tenant_id} is taken in the destination; copy into an empty database"
            )
        rep.entries += _copy_tenant(src, dst, h, progress)
        rep.copied.append(h.tenant)
    _copy_rest(src, dst)
    # Every tenant's head, as the destination now reads it, must be the source's.
    after = {h.tenant: h for h in dst.heads()}
    for h in src.heads():
        got = after.get(h.tenant)
        if got is None or (got.size, got.root, got.checkpoint_size) != (
            h.size,
            h.root,
            h.checkpoint_size,
        ):
            rep.mismatches.append(h.tenant)
    return rep


def _sqlite(src: SQLiteStore) -> Any:
    return src._reader()


def _copy_tenant(
    src: SQLiteStore, dst: PostgresStore, h: Head, progress: Callable[[int], None] | None
) -> int:
    tid = h.tenant_id
    lite = _sqlite(src)
    copied = 0
    with dst._conn() as conn, conn.transaction():
        # entries, in chunks, each into the partitions of its months
        for rows in src.entries_raw(tid, 0, h.size, _CHUNK):
            keys = [r[0] for r in rows]
            extra = {
                k: (subject, sealed)
                for k, subject, sealed in lite.execute(
                    "SELECT k, subject, sealed FROM entries WHERE k >= ? AND k <= ? AND "
                    "(subject IS NOT NULL OR sealed IS NOT NULL)",
                    (keys[0], keys[-1]),
                )
            }
            received = [r[2] for r in rows]
            dst._ensure_months(conn, min(received), max(received))
            with conn.cursor().copy(_COPY_ENTRIES) as cp:
                cp.set_types(_ENTRY_TYPES)
                for k, eid, received_ns, leaf in rows:
                    subject, sealed = extra.get(k, (None, None))
                    cp.write_row(
                        (
                            k,
                            tid,
                            eid,
                            received_ns,
                            leaf,
                            subject.encode() if subject is not None else None,
                            sealed,
                        )
                    )
            copied += len(rows)
            if progress is not None:
                progress(len(rows))
        tiles = lite.execute(
            "SELECT level, idx, data FROM tiles WHERE tenant_id = ?", (tid,)
        ).fetchall()
        for i in range(0, len(tiles), _CHUNK):
            part = tiles[i : i + _CHUNK]
            conn.execute(
                "INSERT INTO tiles(tenant_id, level, idx, data) "
                "SELECT %s, l, i, d FROM unnest(%s::smallint[], %s::bigint[], %s::bytea[]) AS u(l, i, d)",
                (tid, [t[0] for t in part], [t[1] for t in part], [t[2] for t in part]),
            )
        with conn.cursor().copy(
            "COPY checkpoints (tenant_id, size, root, note, signed_ns) FROM STDIN (FORMAT BINARY)"
        ) as cp:
            cp.set_types(["int4", "int8", "bytea", "text", "int8"])
            for c in src.checkpoints(tid):
                cp.write_row((tid, c.size, c.root, c.note, c.signed_ns))
        subjects = lite.execute(
            "SELECT subject, salt, created_ns FROM subjects WHERE tenant_id = ?", (tid,)
        ).fetchall()
        with conn.cursor().copy(
            "COPY subjects (tenant_id, subject, salt, created_ns) FROM STDIN (FORMAT BINARY)"
        ) as cp:
            cp.set_types(["int4", "bytea", "bytea", "int8"])
            for subject, salt, created in subjects:
                cp.write_row((tid, subject.encode(), salt, created))
        if copied != h.size:
            raise StoreError(
                f"tenant {h.tenant!r}: {copied} entries read for a head of size {h.size}"
            )
        created = lite.execute("SELECT created_ns FROM logs WHERE tenant_id = ?", (tid,)).fetchone()
        # The head last: a tenant exists in the destination only once all of it is there.
        conn.execute(
            "INSERT INTO logs(tenant_id, name, size, root, received_ns, cp_size, cp_ns, created_ns) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                tid,
                h.tenant,
                h.size,
                h.root,
                h.received_ns,
                h.checkpoint_size,
                h.checkpoint_ns,
                created[0],
            ),
        )
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('logs', 'tenant_id'), greatest(%s, (SELECT max(tenant_id) FROM logs)))",
            (tid,),
        )
    return copied


def _copy_rest(src: SQLiteStore, dst: PostgresStore) -> None:
    """Settings, consumer cursors and documents (upserted: a second run changes nothing)."""
    lite = _sqlite(src)
    with dst._conn() as conn, conn.transaction():
        for key, value in lite.execute("SELECT key, value FROM meta WHERE key <> 'schema_version'"):
            conn.execute(
                "INSERT INTO meta(key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
        for name, tid, position, state, updated in lite.execute(
            "SELECT name, tenant_id, position, state, updated_ns FROM cursors"
        ):
            conn.execute(
                "INSERT INTO cursors(name, tenant_id, position, state, updated_ns) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (name, tenant_id) DO UPDATE SET position = excluded.position, "
                "state = excluded.state, updated_ns = excluded.updated_ns",
                (name, tid, position, state, updated),
            )
        for row in lite.execute(
            "SELECT collection, id, tenant, created_ns, status, data FROM docs"
        ):
            conn.execute(
                "INSERT INTO docs(collection, id, tenant, created_ns, status, data) VALUES (%s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (collection, id) DO UPDATE SET tenant = excluded.tenant, created_ns = excluded.created_ns, "
                "status = excluded.status, data = excluded.data",
                row,
            )


def entry_count(dst: PostgresStore, tenant_id: int) -> int:
    """Entries stored for a tenant (a check beside the head)."""
    lo = tenant_id << KEY_SHIFT
    with dst._conn() as conn:
        row = conn.execute(
            "SELECT count(*) FROM entries WHERE k >= %s AND k < %s", (lo, lo + (1 << KEY_SHIFT))
        ).fetchone()
    return int(row[0]) if row else 0
