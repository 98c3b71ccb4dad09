"""Holds as the faces use them: each change is stored and recorded in the tenant's log."""

from __future__ import annotations

from typing import Any

from auditkeep.ledger.ledger import Ledger, NotFound
from auditkeep.model.event import Submitter
from auditkeep.model.timefmt import format_rfc3339, now_ns
from auditkeep.retention.holds import MAX_REASON, Hold, HoldBook, _text


def _event(action: str, hold: Hold, actor: dict[str, str], reason: str) -> dict[str, Any]:
    return {
        "actor": actor,
        "action": action,
        "category": "admin",
        "outcome": "success",
        "reason": reason,
        "resource": {"type": "hold", "id": hold.id},
        "source": {"service": "auditkeep"},
        "metadata": {"scope": hold.scope()},
    }


def add_hold(ledger: Ledger, hold: Hold, actor: dict[str, str], submitter: Submitter | None = None) -> Hold:
    """Store ``hold`` and record ``auditkeep.hold.added`` in its tenant's log. The record is
    durable first: a hold nobody can see in the log is never in force."""
    ledger.append_own([_event("auditkeep.hold.added", hold, actor, hold.reason)], hold.tenant, submitter or ledger.submitter)
    HoldBook(ledger.store).put(hold)
    return hold


def release_hold(
    ledger: Ledger,
    hold_id: str,
    actor: dict[str, str],
    reason: str,
    tenant: str | None = None,
    submitter: Submitter | None = None,
) -> Hold:
    """Release an active hold (``tenant``: the caller may only release that tenant's holds)."""
    book = HoldBook(ledger.store)
    hold = book.get(hold_id)
    if hold is None or (tenant is not None and hold.tenant != tenant):
        raise NotFound(f"no hold {hold_id!r}")
    if not hold.active:
        raise NotFound(f"hold {hold_id} was already released at {hold.released_at}")
    why = _text(reason, "reason", MAX_REASON) or ""
    ledger.append_own([_event("auditkeep.hold.released", hold, actor, why)], hold.tenant, submitter or ledger.submitter)
    hold.released_at = format_rfc3339(now_ns())
    hold.released_by = actor["id"]
    hold.release_reason = why
    book.put(hold)
    return hold
