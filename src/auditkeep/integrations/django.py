"""Django middleware.

    MIDDLEWARE = [
        ...,
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "auditkeep.integrations.django.AuditMiddleware",
    ]
    AUDITKEEP = {
        "LOG": "myproject.audit.log",           # an AuditLog, or the dotted path to one
        "ACTOR": None,                          # resolver(request); default: request.user
        "TRUSTED_PROXIES": ["10.0.0.0/8"],
        "ROUTES": ["/admin/*", {"pattern": "/api/invoices/*", "methods": ["POST"], "action": "invoice.change"}],
        "REQUEST_ID_HEADER": "X-Request-ID",
        "SERVICE": "billing",
    }

Place it after ``AuthenticationMiddleware`` so that ``request.user`` is known.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings  # type: ignore[import-untyped, import-not-found, unused-ignore]
from django.utils.module_loading import import_string  # type: ignore[import-untyped, import-not-found, unused-ignore]

from auditkeep.client.context import context
from auditkeep.client.protocol import AuditLog
from auditkeep.integrations.web import RequestAuditor, Route

__all__ = ["AuditMiddleware", "user_actor"]


def user_actor(request: Any) -> dict[str, Any] | None:
    """The authenticated Django user as an actor; None for anonymous requests."""
    user = getattr(request, "user", None)
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return {"id": str(user.pk), "type": "user", "name": user.get_username()}


def _load(value: Any) -> Any:
    return import_string(value) if isinstance(value, str) else value


def _route(spec: Route | str | Mapping[str, Any]) -> Route:
    if isinstance(spec, Route | str):
        return spec if isinstance(spec, Route) else Route(spec)
    return Route(**spec)


class AuditMiddleware:
    """Fills the audit context for each request; records the routes in ``AUDITKEEP["ROUTES"]``."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        conf: Mapping[str, Any] = getattr(settings, "AUDITKEEP", {})
        log: AuditLog | None = _load(conf.get("LOG"))
        header = conf.get("REQUEST_ID_HEADER", "X-Request-ID")
        self.auditor: RequestAuditor[Any] = RequestAuditor(
            log,
            actor=_load(conf.get("ACTOR")) or user_actor,
            trusted_proxies=conf.get("TRUSTED_PROXIES", ()),
            routes=[_route(r) for r in conf.get("ROUTES", ())],
            request_id_header=header,
            service=conf.get("SERVICE"),
            anonymous=conf.get("ANONYMOUS", "anonymous"),
        )
        self._rid = "HTTP_" + header.upper().replace("-", "_")

    def __call__(self, request: Any) -> Any:
        meta = request.META
        fields = self.auditor.context_fields(
            request,
            peer=meta.get("REMOTE_ADDR"),
            forwarded_for=meta.get("HTTP_X_FORWARDED_FOR"),
            user_agent=meta.get("HTTP_USER_AGENT"),
            request_id=meta.get(self._rid),
        )
        method, path = request.method, request.path
        route = self.auditor.route_for(method, path)
        with context(**fields):
            if route is None:
                return self.get_response(request)
            status = 500
            start = time.perf_counter()
            try:
                response = self.get_response(request)
                status = int(response.status_code)
                return response
            finally:
                elapsed = (time.perf_counter() - start) * 1000
                self.auditor.record_request(route, request, method, path, status, elapsed)
