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

from auditkeep.store.base import Head, StoreError
from auditkeep.store.postgres import PostgresStore
from auditkeep.store.sqlite import SQLiteStore

_CHUNK = 8192


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


def _copy_tenant(
    src: SQLiteStore, dst: PostgresStore, h: Head, progress: Callable[[int], None] | None
) -> int:
    tid = h.tenant_id
    return dst.load_tenant(
        h,
        src.tenant_created_ns(tid),
        src.entry_rows(tid, 0, h.size, _CHUNK),
        src.tile_rows(tid),
        src.checkpoints(tid),
        src.subject_rows(tid),
        progress,
    )


def _copy_rest(src: SQLiteStore, dst: PostgresStore) -> None:
    """Settings, consumer cursors and documents (upserted: a second run changes nothing)."""
    dst.load_settings(src.meta_rows(), src.cursor_rows(), src.doc_rows())


def entry_count(dst: PostgresStore, tenant_id: int) -> int:
    """Entries stored for a tenant (a check beside the head)."""
    return dst.entry_count(tenant_id)
