"""Guardrails and approvals for tool calls.

The rules file is the one both gateways share (:mod:`auditkeep.gateway.guardrails`: first
match wins, ``deny`` / ``review`` / ``allow``, hot-reloaded); this module adds the MCP
gateway's condition kinds and the reviewer that holds a call until another person decides
(:mod:`auditkeep.gateway.approvals`, embedded or through a server's ``/v1/approvals``).

Conditions a rule may use, besides the shared ``users`` / ``except_users`` (the agent):

- ``tools``, ``except_tools``: tool names (``*`` stands for any run of characters);
- ``servers``: the server's name from ``initialize``;
- ``arguments``: a mapping of argument name (dotted for nested objects) to a regular
  expression searched in its value (a non-string value as its JSON);
- ``any_argument``: a regular expression searched in every string in the arguments.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from auditkeep.gateway.approvals import Approvals, wait_async
from auditkeep.gateway.guardrails import ConditionKind, RuleSet, RulesFile, Verdict, glob
from auditkeep.policy.detectors import BUILTIN, Scanner

log = logging.getLogger("auditkeep.gateway")

GATEWAY = "mcp"
MAX_TEXT = 64 * 1024  # of one argument value, as the rules see it
MAX_VALUES = 10_000  # strings of one call's arguments the rules look at
MAX_DEPTH = 32


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tools/call as the rules see it: the arguments as the agent sent them (the log gets
    them redacted; the rules see what the server would)."""

    tool: str
    arguments: Mapping[str, Any] | None
    agent: str
    server: str | None
    session: str
    tenant: str

    @property
    def user(self) -> str:
        return self.agent

    @property
    def roles(self) -> frozenset[str]:
        return frozenset()


def _tools(value: Any) -> Callable[[ToolCall], bool]:
    g = glob(value)
    return lambda c: g(c.tool)


def _except_tools(value: Any) -> Callable[[ToolCall], bool]:
    g = glob(value)
    return lambda c: not g(c.tool)


def _servers(value: Any) -> Callable[[ToolCall], bool]:
    g = glob(value)
    return lambda c: c.server is not None and g(c.server)


def _regex(value: Any) -> re.Pattern[str]:
    if not isinstance(value, str) or not value:
        raise ValueError("expected a regular expression")
    try:
        return re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from None


def _arguments(value: Any) -> Callable[[ToolCall], bool]:
    if not isinstance(value, dict) or not value:
        raise ValueError("expected a mapping of argument name to a regular expression")
    checks = []
    for name, rx in value.items():
        if not isinstance(name, str) or not name or any(not p for p in name.split(".")):
            raise ValueError(f"argument name {name!r}: expected a name, dotted for nested objects")
        checks.append((name.split("."), _regex(rx)))

    def match(c: ToolCall) -> bool:
        for parts, rx in checks:
            node: Any = c.arguments
            for p in parts:
                if not isinstance(node, Mapping) or p not in node:
                    return False
                node = node[p]
            if rx.search(_text(node)) is None:
                return False
        return True

    return match


def _any_argument(value: Any) -> Callable[[ToolCall], bool]:
    rx = _regex(value)
    return lambda c: any(rx.search(t) is not None for t in _strings(c.arguments))


MCP_KINDS: dict[str, ConditionKind[ToolCall]] = {
    "tools": _tools,
    "except_tools": _except_tools,
    "servers": _servers,
    "arguments": _arguments,
    "any_argument": _any_argument,
}


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value[:MAX_TEXT]
    try:
        return orjson.dumps(value).decode()[:MAX_TEXT]
    except TypeError:
        return str(value)[:MAX_TEXT]


def _strings(value: Any) -> Iterator[str]:
    """Every string in ``value`` (keys and values), depth first, bounded in count and depth."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    seen = 0
    while stack and seen < MAX_VALUES:
        node, depth = stack.pop()
        if isinstance(node, str):
            seen += 1
            yield node[:MAX_TEXT]
        elif depth < MAX_DEPTH and isinstance(node, Mapping):
            for k, v in node.items():
                stack.append((v, depth + 1))
                stack.append((k, depth + 1))
        elif depth < MAX_DEPTH and isinstance(node, list):
            stack.extend((v, depth + 1) for v in reversed(node))


def load_rules(path: str) -> RulesFile[ToolCall]:
    """The rules file at ``path`` (RuleError, naming file and line, when it does not load)."""
    return RulesFile(path, MCP_KINDS)


class Guard(Protocol):
    def check(self, call: ToolCall) -> Verdict[ToolCall]: ...


class Guardrails:
    """The rules in force, re-read when the file changes."""

    def __init__(self, rules: RulesFile[ToolCall] | RuleSet[ToolCall]) -> None:
        self._rules = rules

    @property
    def current(self) -> RuleSet[ToolCall]:
        r = self._rules
        return r.current() if isinstance(r, RulesFile) else r

    def check(self, call: ToolCall) -> Verdict[ToolCall]:
        return self.current.decide(call)


@dataclass(frozen=True, slots=True)
class Review:
    """How a review ended: ``approved`` or not; ``by`` the reviewer; ``timed_out`` when
    nobody decided in time."""

    approved: bool
    request_id: str | None = None
    by: str | None = None
    reason: str | None = None
    timed_out: bool = False


class Reviewer(Protocol):
    async def review(self, call: ToolCall, verdict: Verdict[ToolCall]) -> Review: ...


class NoReviewer:
    """Without an approval service a call sent for review is refused, never let through."""

    async def review(self, call: ToolCall, verdict: Verdict[ToolCall]) -> Review:
        return Review(False, reason="the call needs approval, but no approval service is configured")


class ApprovalReviewer:
    """Files an approval request (shown to approvers with secrets replaced) and waits,
    without blocking the proxy, until someone else decides or it expires."""

    def __init__(self, approvals: Approvals, tenant: str, timeout: Callable[[], float]) -> None:
        self.approvals = approvals
        self.tenant = tenant
        self.timeout = timeout
        self._scanner = Scanner(BUILTIN)

    async def review(self, call: ToolCall, verdict: Verdict[ToolCall]) -> Review:
        summary = self._scanner.redact(f"{call.tool} {_text(dict(call.arguments or {}))}")
        details = {"tool": call.tool[:200], "server": call.server, "session": call.session}
        timeout = self.timeout()
        req = await asyncio.to_thread(
            self.approvals.request, self.tenant, gateway=GATEWAY, requester=call.agent, action="mcp.tools.call",
            summary=summary, timeout=timeout, rule=verdict.rule_name, details=details,
        )  # fmt: skip
        log.warning("gateway: the call of %s waits for approval: auditkeep gateway approve %s", call.tool, req.id)
        cur = await wait_async(self.approvals, req.id, timeout, self.tenant)  # cancelled if the client leaves
        return Review(
            approved=cur.status == "approved", request_id=cur.id, by=cur.decided_by,
            reason=cur.note, timed_out=cur.status == "expired",
        )  # fmt: skip
