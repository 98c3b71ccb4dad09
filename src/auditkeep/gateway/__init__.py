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

Its names are loaded on first use (``lazyload``): the gateway's ledger child
(``gateway/sink_process.py``) must not load the guardrails, the approvals and the SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from auditkeep.lazyload import module_getattr

if TYPE_CHECKING:
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

_LAZY = {
    "Approval": "auditkeep.gateway.approvals",
    "ApprovalBook": "auditkeep.gateway.approvals",
    "ApprovalConflict": "auditkeep.gateway.approvals",
    "ApprovalNotFound": "auditkeep.gateway.approvals",
    "Approvals": "auditkeep.gateway.approvals",
    "SelfApproval": "auditkeep.gateway.approvals",
    "RuleSet": "auditkeep.gateway.guardrails",
    "RulesFile": "auditkeep.gateway.guardrails",
    "Verdict": "auditkeep.gateway.guardrails",
    "parse_rules": "auditkeep.gateway.guardrails",
    "ClientSink": "auditkeep.gateway.sink",
    "EventSink": "auditkeep.gateway.sink",
    "LedgerSink": "auditkeep.gateway.sink",
}

__getattr__ = module_getattr(__name__, _LAZY)

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
