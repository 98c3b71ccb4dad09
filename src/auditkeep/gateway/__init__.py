"""Access gateways: proxies that record what people and programs do through them, with
guardrails and approvals.

Shared by every gateway:

- :mod:`auditkeep.gateway.approvals` — approval requests in the store, decisions, waiting;
- :mod:`auditkeep.gateway.remote` — the same through a server's ``/v1/approvals``;
- :mod:`auditkeep.gateway.guardrails` — the rules file (first match wins: deny, review,
  allow), hot-reloaded, with each gateway's own condition kinds;
- :mod:`auditkeep.gateway.sink` — events into the embedded ledger or a remote server,
  never blocking the traffic.

:mod:`auditkeep.gateway.postgres` is the PostgreSQL gateway.
"""

from __future__ import annotations

from auditkeep.gateway.approvals import (
    Approval,
    ApprovalBook,
    ApprovalConflict,
    ApprovalNotFound,
    Approvals,
    SelfApproval,
)
from auditkeep.gateway.guardrails import RuleSet, RulesFile, Verdict, parse_rules
from auditkeep.gateway.sink import ClientSink, EventSink, LedgerSink

__all__ = [
    "Approval",
    "ApprovalBook",
    "ApprovalConflict",
    "ApprovalNotFound",
    "Approvals",
    "ClientSink",
    "EventSink",
    "LedgerSink",
    "RuleSet",
    "RulesFile",
    "SelfApproval",
    "Verdict",
    "parse_rules",
]
