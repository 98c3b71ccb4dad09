"""Console activity as audit events in the tenant's own log: sign-ins (and failed ones),
sign-outs, account changes and every page that shows events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request

from auditkeep.errors import NotFound
from auditkeep.server.audit import SYSTEM_TENANT, _clip
from auditkeep.server.context import ServerContext

SERVICE = "auditkeep-console"


def target(ctx: ServerContext, tenant: str) -> str:
    """The tenant's log when it exists; the system log otherwise (a failed sign-in to a
    tenant that does not exist must not create one)."""
    try:
        ctx.ledger.tenant_id(tenant)
    except (NotFound, ValueError):
        return SYSTEM_TENANT
    return tenant


def event_for(
    request: Request,
    tenant: str,
    username: str,
    action: str,
    *,
    category: str,
    outcome: str = "success",
    reason: str | None = None,
    resource: Mapping[str, str] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The event of a console action by ``username`` (the request gives address and agent)."""
    actor: dict[str, Any] = {"id": _clip(username) or "-", "type": "user"}
    if request.client:
        actor["ip"] = request.client.host
    ua = request.headers.get("user-agent")
    if ua:
        actor["user_agent"] = ua[:512]
    event: dict[str, Any] = {
        "actor": actor,
        "action": action,
        "category": category,
        "outcome": outcome,
        "source": {"service": SERVICE},
        "metadata": {"tenant": _clip(tenant), "via": "console", **{k: _clip(v) for k, v in (metadata or {}).items() if v is not None}},
    }
    if reason:
        event["reason"] = reason
    if resource:
        event["resource"] = dict(resource)
    return event


def record(
    ctx: ServerContext,
    request: Request,
    tenant: str,
    username: str,
    action: str,
    *,
    category: str,
    outcome: str = "success",
    reason: str | None = None,
    resource: Mapping[str, str] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> None:
    """Submit one event (not waiting for durability; failures are counted and logged by the
    server's auditor). Runs the store read of :func:`target`: call it off the event loop."""
    event = event_for(request, tenant, username, action, category=category, outcome=outcome, reason=reason,
                      resource=resource, metadata=metadata)  # fmt: skip
    # the leaf's submitter: the server, on behalf of this console account
    ctx.auditor.submit(event, target(ctx, tenant), f"console:{tenant}/{username}"[:1024])
