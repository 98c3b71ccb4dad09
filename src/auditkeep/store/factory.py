"""Choosing a store from a database URL."""

from __future__ import annotations

from pathlib import Path

from auditkeep.ledger.config import LedgerConfig
from auditkeep.store.base import Store


def open_store(url: str, config: LedgerConfig, *, read_only: bool = False) -> Store:
    """``postgresql://...`` opens PostgreSQL; ``sqlite:///dir`` the embedded store in ``dir``.
    ``read_only`` opens it so that it never writes (a read-only session on PostgreSQL)."""
    if url.startswith(("postgresql://", "postgres://")):
        from auditkeep.store.postgres import PostgresStore

        return PostgresStore(url, durability=config.durability, read_only=read_only)
    if url.startswith("sqlite://"):
        from auditkeep.store.sqlite import SQLiteStore

        return SQLiteStore(Path(url[len("sqlite://") :]), durability=config.durability, read_only=read_only)
    raise ValueError(f"unsupported database URL {url.split(':', 1)[0]!r}: use postgresql://... or sqlite:///path")
