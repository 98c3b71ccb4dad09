"""Storage: the Store contract and its implementations."""

from auditkeep.store.base import (
    AppendTxn,
    CheckpointRow,
    Doc,
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
    "Doc",
    "Entry",
    "Head",
    "ProjectedRow",
    "Query",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "entry_key",
]
