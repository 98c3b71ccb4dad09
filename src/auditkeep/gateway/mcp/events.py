"""The events of the MCP gateway: ``mcp.session.start`` / ``mcp.session.end``,
``mcp.tools.call``, ``mcp.resources.read``, ``mcp.prompts.get`` and ``mcp.tools.list``.

The actor is the agent; the resource is the tool (resource, prompt, or the server for
session and listing events). What the MCP messages said is under ``metadata.mcp``; the
arguments of a call at ``metadata.mcp.arguments``, the request body the capture policy
knows for source ``mcp``.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

from auditkeep.model import Actor, Event, Resource, Source, format_rfc3339
from auditkeep.policy.limits import TooLarge, fit_metadata

NAME_MAX = 512  # tool, prompt and server names kept in an event (they are free text)
URI_MAX = 2048

ARGUMENTS_PATH = "mcp.arguments"
"""Where a call's arguments are kept inside ``metadata`` (dropped first when too large)."""

_HOST = socket.gethostname()


@dataclass
class Identity:
    """Who and what one session is about."""

    tenant: str
    agent: str | None  # --agent; else the client's name from initialize
    session: str  # the gateway's id for the session (a UUID)
    transport: str  # stdio | http
    client: dict[str, str] | None = None
    server: dict[str, str] | None = None
    protocol: str | None = None
    target: str | None = None  # the command or upstream URL, without secrets
    upstream_session: str | None = None  # digest of the Mcp-Session-Id (never the id itself)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def actor_id(self) -> str:
        if self.agent:
            return self.agent
        if self.client:
            return self.client["name"][:NAME_MAX] or "mcp-client"
        return "mcp-client"

    @property
    def server_name(self) -> str | None:
        return self.server["name"][:NAME_MAX] if self.server else None

    def base(self) -> dict[str, Any]:
        out: dict[str, Any] = {"session": self.session, "transport": self.transport}
        if self.server is not None:
            out["server"] = self.server
        if self.client is not None:
            out["client"] = self.client
        if self.protocol:
            out["protocol"] = self.protocol
        if self.upstream_session:
            out["upstream_session"] = self.upstream_session
        return out


def _actor(ident: Identity) -> Actor:
    name = ident.client["name"][:NAME_MAX] if ident.client and ident.agent else None
    return Actor(id=ident.actor_id[:NAME_MAX], type="agent", name=name, session_id=ident.session)


def _event(
    ident: Identity,
    action: str,
    resource: Resource | None,
    outcome: str,
    mcp: dict[str, Any],
    time_ns: int,
    reason: str | None = None,
    request_id: str | None = None,
) -> Event:
    meta: dict[str, Any] = {"mcp": mcp}
    try:
        fit_metadata(meta, drop_first=(ARGUMENTS_PATH,))
    except TooLarge as exc:
        mcp.pop("arguments", None)
        meta = {"mcp": {**ident.base(), "unrecorded": str(exc)[:512]}}
    return Event(
        actor=_actor(ident),
        action=action,
        time=format_rfc3339(time_ns),
        resource=resource,
        outcome=outcome,  # type: ignore[arg-type]
        reason=reason[:4096] if reason else None,
        source=Source(service="auditkeep-gateway-mcp", host=_HOST, request_id=request_id),
        metadata=meta,
    )


def session_start(ident: Identity, time_ns: int) -> Event:
    mcp = ident.base()
    if ident.target:
        mcp["target"] = ident.target
    return _event(ident, "mcp.session.start", _server(ident), "success", mcp, time_ns)


def session_end(
    ident: Identity, time_ns: int, *, duration_ms: float, outcome: str, reason: str, counts: dict[str, int]
) -> Event:
    mcp = {**ident.base(), "duration_ms": round(duration_ms, 3), "counts": counts}
    return _event(ident, "mcp.session.end", _server(ident), outcome, mcp, time_ns, reason)


@dataclass
class CallRecord:
    """One audited request: what was asked and how it ended."""

    method: str  # tools/call | resources/read | prompts/get
    name: str  # tool or prompt name, or resource URI
    arguments: dict[str, Any] | None
    request_id: str
    time_ns: int
    duration_ms: float = 0.0
    outcome: str = "success"
    reason: str | None = None
    result_bytes: int | None = None
    is_error: bool | None = None
    error: dict[str, Any] | None = None
    rule: str | None = None
    approval: dict[str, Any] | None = None


_ACTIONS = {"tools/call": "mcp.tools.call", "resources/read": "mcp.resources.read", "prompts/get": "mcp.prompts.get"}
_KINDS = {"tools/call": "mcp.tool", "resources/read": "mcp.resource", "prompts/get": "mcp.prompt"}


def call(ident: Identity, rec: CallRecord) -> Event:
    mcp = ident.base()
    mcp["request_id"] = rec.request_id
    mcp["duration_ms"] = round(rec.duration_ms, 3)
    if rec.arguments is not None:
        mcp["arguments"] = rec.arguments
    for key in ("result_bytes", "is_error", "error", "rule", "approval"):
        value = getattr(rec, key)
        if value is not None:
            mcp[key] = value
    limit = URI_MAX if rec.method == "resources/read" else NAME_MAX
    resource = Resource(type=_KINDS[rec.method], id=rec.name[:limit] or "-", name=ident.server_name)
    return _event(ident, _ACTIONS[rec.method], resource, rec.outcome, mcp, rec.time_ns, rec.reason, rec.request_id)


def tools_list(ident: Identity, time_ns: int, tools: dict[str, str], previous: dict[str, str] | None) -> Event:
    """The server's tools as listed now, with what changed since the last listing seen."""
    mcp = ident.base()
    mcp["tools"] = sorted(tools)[:1024]
    mcp["count"] = len(tools)
    if previous is not None:
        mcp["added"] = sorted(set(tools) - set(previous))[:1024]
        mcp["removed"] = sorted(set(previous) - set(tools))[:1024]
        mcp["changed"] = sorted(t for t in tools if t in previous and previous[t] != tools[t])[:1024]
    mcp["digests"] = {k: tools[k] for k in sorted(tools)[:60]}
    reason = None if previous is None else "the server's tools changed"
    return _event(ident, "mcp.tools.list", _server(ident), "success", mcp, time_ns, reason)


def _server(ident: Identity) -> Resource:
    return Resource(type="mcp.server", id=ident.server_name or ident.target or "unknown")
