"""Choosing a store from a database URL."""

from __future__ import annotations

from pathlib import Path

from auditkeep.ledger.config import LedgerConfig
from auditkeep.store.base import Store


def open_store(url: str, config: LedgerConfig) -> Store:
    """``postgresql://...`` opens PostgreSQL; ``sqlite:///dir`` the embedded store in ``dir``."""
    if url.startswith(("postgresql://", "postgres://")):
        from auditkeep.store.postgres import PostgresStore

        return PostgresStore(url, durability=config.durability)
    if url.startswith("sqlite://"):
        from auditkeep.store.sqlite import SQLiteStore

        return SQLiteStore(Path(url[len("sqlite://") :]), durability=config.durability)
    raise ValueError(f"unsupported database URL {url.split(':', 1)[0]!r}: use postgresql://... or sqlite:///path")
