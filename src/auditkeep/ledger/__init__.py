"""The append path and the reads that come with proofs."""

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
