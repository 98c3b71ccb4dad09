"""Storage: the Store contract and its implementations."""

from auditkeep.store.base import (
    AppendTxn,
    CheckpointRow,
    Entry,
    Head,
    ProjectedRow,
    Query,
    Store,
    StoreError,
    StoreUnavailable,
    entry_key,
)

__all__ = [
    "AppendTxn",
    "CheckpointRow",
    "Entry",
    "Head",
    "ProjectedRow",
    "Query",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "entry_key",
]
