"""auditkeep: a tamper-evident audit log.

    import auditkeep
    with auditkeep.open("auditkeep-data") as log:
        receipt = log.record(actor={"id": "alice"}, action="user.login", outcome="success")
        proof = log.prove_inclusion(receipt.index)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from auditkeep.errors import AuditkeepError, NotFound
from auditkeep.model import Event, Limits, ValidationError
from auditkeep.model.context import context
from auditkeep.model.wire import ConsistencyProof, InclusionProof, Page, Receipt, Record

__version__ = "0.1.0"

if TYPE_CHECKING:
    from auditkeep.client import AsyncClient, Client, LazyClient
    from auditkeep.crypto.atrest import EncryptionSettings
    from auditkeep.ledger import Ledger, LedgerConfig, VerifyReport

# Loaded on first use: the SDK (httpx) and the ledger (SQLite), so that `import auditkeep.client`
# loads no database driver and `import auditkeep` alone stays light.
_LAZY = {
    "AsyncClient": "auditkeep.client",
    "Client": "auditkeep.client",
    "LazyClient": "auditkeep.client",
    "EncryptionSettings": "auditkeep.crypto.atrest",
    "Ledger": "auditkeep.ledger",
    "LedgerConfig": "auditkeep.ledger",
    "VerifyReport": "auditkeep.ledger",
}


def open(
    path: str | Path = "auditkeep-data",
    config: LedgerConfig | None = None,
    *,
    create: bool = True,
    encryption: EncryptionSettings | None = None,
) -> Ledger:
    """Open (or create) an embedded ledger in the data directory ``path``; ``encryption``
    (``EncryptionSettings(enabled=True)``) encrypts a new one at rest (docs/encryption.md)."""
    from auditkeep.ledger import Ledger

    return Ledger.open(path, config, create=create, encryption=encryption)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        import importlib

        return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module 'auditkeep' has no attribute {name!r}")


__all__ = [
    "AsyncClient",
    "AuditkeepError",
    "Client",
    "ConsistencyProof",
    "EncryptionSettings",
    "Event",
    "InclusionProof",
    "LazyClient",
    "Ledger",
    "LedgerConfig",
    "Limits",
    "NotFound",
    "Page",
    "Receipt",
    "Record",
    "ValidationError",
    "VerifyReport",
    "__version__",
    "context",
    "open",
]
