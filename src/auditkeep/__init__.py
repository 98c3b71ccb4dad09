"""auditkeep: a tamper-evident audit log.

    import auditkeep
    with auditkeep.open("auditkeep-data") as log:
        receipt = log.record(actor={"id": "alice"}, action="user.login", outcome="success")
        proof = log.prove_inclusion(receipt.index)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from auditkeep.ledger import (
    ConsistencyProof,
    InclusionProof,
    Ledger,
    LedgerConfig,
    NotFound,
    Page,
    Receipt,
    Record,
    VerifyReport,
)
from auditkeep.model import Event, Limits, ValidationError

__version__ = "0.1.0"

if TYPE_CHECKING:
    from auditkeep.client import AsyncClient, Client, LazyClient, context


def open(path: str | Path = "auditkeep-data", config: LedgerConfig | None = None, *, create: bool = True) -> Ledger:
    """Open (or create) an embedded ledger in the data directory ``path``."""
    return Ledger.open(path, config, create=create)


def __getattr__(name: str) -> Any:
    # The SDK loads on first use, so `import auditkeep` does not pull in httpx.
    if name in ("AsyncClient", "Client", "LazyClient", "context"):
        import auditkeep.client

        return getattr(auditkeep.client, name)
    raise AttributeError(f"module 'auditkeep' has no attribute {name!r}")


__all__ = [
    "AsyncClient",
    "Client",
    "ConsistencyProof",
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
