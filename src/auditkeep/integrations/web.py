"""What every web integration does, whatever the framework.

For each request: fill the audit context (actor from the application's resolver, client
IP, user agent, request id) and, for the routes configured, record one event when the
response is known, its outcome taken from the status code.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from auditkeep.client.context import current
from auditkeep.client.ids import new_id
from auditkeep.client.protocol import AuditLog
from auditkeep.integrations.proxies import TrustedProxies, client_ip

__all__ = ["ActorResolver", "RequestAuditor", "Route", "outcome_for"]

log = logging.getLogger("auditkeep.integrations")

R = TypeVar("R")
ActorResolver = Callable[[R], "str | Mapping[str, Any] | None"]
"""Given the framework's request, who is acting: an id, an actor mapping, or None."""

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=@-]{1,200}$")


def outcome_for(status: int) -> str:
    """2xx (and 1xx/3xx) success, 401/403 denied, other 4xx failure, 5xx error."""
    if status in (401, 403):
        return "denied"
    if 400 <= status < 500:
        return "failure"
    if status >= 500:
        return "error"
    return "success"


@dataclass(frozen=True)
class Route:
    """Requests to record: a path pattern (shell-style: ``/admin/*``) or a compiled regex,
    the methods (``"*"``: any), and optionally the event's action and category."""

    pattern: str | re.Pattern[str]
    methods: Collection[str] = ("*",)
    action: str | None = None
    category: str | None = None
    _allowed: frozenset[str] = field(init=False, repr=False, compare=False, default=frozenset())

    def __post_init__(self) -> None:
        if isinstance(self.methods, str):
            raise TypeError("methods must be a collection of method names, not one string")
        object.__setattr__(self, "_allowed", frozenset(m.upper() for m in self.methods))

    def matches(self, method: str, path: str) -> bool:
        if "*" not in self._allowed and method.upper() not in self._allowed:
            return False
        if isinstance(self.pattern, re.Pattern):
            return self.pattern.fullmatch(path) is not None
        return fnmatch.fnmatchcase(path, self.pattern)


class RequestAuditor(Generic[R]):
    """The framework-neutral part of the middlewares (configuration and the two steps)."""

    def __init__(
        self,
        log: AuditLog | None = None,
        *,
        actor: ActorResolver[R] | None = None,
        trusted_proxies: Iterable[str] = (),
        routes: Iterable[Route | str] = (),
        request_id_header: str = "X-Request-ID",
        service: str | None = None,
        anonymous: str = "anonymous",
        action: str = "http.request",
    ) -> None:
        self.log = log
        self.resolve_actor = actor
        self.trusted = TrustedProxies(trusted_proxies)
        self.routes = tuple(r if isinstance(r, Route) else Route(r) for r in routes)
        self.request_id_header = request_id_header
        self.service = service
        self.anonymous = anonymous
        self.action = action
        if self.routes and log is None:
            raise ValueError("routes to record need a log to record them in")

    def actor_of(self, request: R) -> dict[str, Any] | None:
        if self.resolve_actor is None:
            return None
        try:
            who = self.resolve_actor(request)
        except Exception:
            log.exception("auditkeep actor resolver failed")
            return None
        if who is None:
            return None
        return {"id": who} if isinstance(who, str) else dict(who)

    def context_fields(
        self,
        request: R,
        *,
        peer: str | None,
        forwarded_for: str | None,
        user_agent: str | None,
        request_id: str | None,
    ) -> dict[str, Any]:
        """The audit context of one request, for ``auditkeep.context(**fields)``."""
        if request_id is None or not _REQUEST_ID.match(request_id):
            request_id = new_id()
        fields: dict[str, Any] = {
            "actor": self.actor_of(request),
            "ip": client_ip(peer, forwarded_for, self.trusted),
            "user_agent": user_agent[:1024] if user_agent else None,
            "request_id": request_id,
        }
        if self.service:
            fields["source"] = self.service
        return fields

    def route_for(self, method: str, path: str) -> Route | None:
        for r in self.routes:
            if r.matches(method, path):
                return r
        return None

    def record_request(self, route: Route, request: R, method: str, path: str, status: int, duration_ms: float) -> None:
        """Record the request's event; audit trouble is logged, never raised into the response."""
        assert self.log is not None
        fields = current()  # the request's context, explicitly: the embedded log has none
        actor = fields.get("actor") or {}
        if "id" not in actor:
            late = self.actor_of(request)  # the handler may have authenticated meanwhile
            actor = {**actor, **(late or {"id": self.anonymous})}
        fields["actor"] = actor
        fields["action"] = route.action or self.action
        if route.category:
            fields["category"] = route.category
        fields["outcome"] = outcome_for(status)
        fields["resource"] = {"type": "http.path", "id": path}
        meta = dict(fields.get("metadata") or {})
        meta["http"] = {"method": method, "path": path, "status": status, "duration_ms": round(duration_ms, 3)}
        fields["metadata"] = meta
        try:
            self.log.record(**fields)
        except Exception:
            log.exception("auditkeep could not record %s %s", method, path)
