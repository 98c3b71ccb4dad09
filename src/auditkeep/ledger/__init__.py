"""The append path and the reads that come with proofs.

Its names are loaded on first use: the projection's child process (``ledger/follower.py``)
imports only the projector and the store, and importing the whole ledger there (the reader,
the at-rest layer, PostgreSQL's search module and psycopg) cost ~0.2 s of CPU per child.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from auditkeep.lazyload import module_getattr

if TYPE_CHECKING:
    from auditkeep.ledger.append import Receipt
    from auditkeep.ledger.config import LedgerConfig
    from auditkeep.ledger.ledger import (
        ConsistencyProof,
        InclusionProof,
        Ledger,
        NotFound,
        Page,
        Record,
    )
    from auditkeep.ledger.verify import Problem, TenantReport, VerifyReport

_LAZY = {
    "Receipt": "auditkeep.ledger.append",
    "LedgerConfig": "auditkeep.ledger.config",
    "ConsistencyProof": "auditkeep.ledger.ledger",
    "InclusionProof": "auditkeep.ledger.ledger",
    "Ledger": "auditkeep.ledger.ledger",
    "NotFound": "auditkeep.ledger.ledger",
    "Page": "auditkeep.ledger.ledger",
    "Record": "auditkeep.ledger.ledger",
    "Problem": "auditkeep.ledger.verify",
    "TenantReport": "auditkeep.ledger.verify",
    "VerifyReport": "auditkeep.ledger.verify",
}


__getattr__ = module_getattr(__name__, _LAZY)

__all__ = [
    "ConsistencyProof",
    "InclusionProof",
    "Ledger",
    "LedgerConfig",
    "NotFound",
    "Page",
    "Problem",
    "Receipt",
    "Record",
    "TenantReport",
    "VerifyReport",
]
