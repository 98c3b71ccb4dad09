"""ASGI middleware (Starlette, FastAPI, any ASGI app).

    app.add_middleware(AuditMiddleware, log=client, actor=lambda scope: scope.get("user"),
                       trusted_proxies=["10.0.0.0/8"], routes=[Route("/admin/*", ["POST"])])

The resolver gets the ASGI ``scope``. The context is open while the app handles the
request (including in the thread pool Starlette runs sync endpoints in).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from auditkeep.client.context import context
from auditkeep.client.protocol import AuditLog
from auditkeep.integrations.web import ActorResolver, RequestAuditor, Route

__all__ = ["AuditMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _header(scope: Scope, name: bytes) -> str | None:
    """The last value of a header (the one the nearest hop wrote)."""
    found: str | None = None
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            text = value.decode("latin-1")
            found = text if found is None or name != b"x-forwarded-for" else f"{found}, {text}"
    return found


class AuditMiddleware:
    """Fills the audit context for each HTTP (and WebSocket) request; records configured routes."""

    def __init__(
        self,
        app: ASGIApp,
        log: AuditLog | None = None,
        *,
        actor: ActorResolver[Scope] | None = None,
        trusted_proxies: Iterable[str] = (),
        routes: Iterable[Route | str] = (),
        request_id_header: str = "X-Request-ID",
        service: str | None = None,
        anonymous: str = "anonymous",
    ) -> None:
        self.app = app
        self.auditor: RequestAuditor[Scope] = RequestAuditor(
            log, actor=actor, trusted_proxies=trusted_proxies, routes=routes,
            request_id_header=request_id_header, service=service, anonymous=anonymous,
        )  # fmt: skip
        self._rid = request_id_header.lower().encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        fields = self.auditor.context_fields(
            scope,
            peer=client[0] if client else None,
            forwarded_for=_header(scope, b"x-forwarded-for"),
            user_agent=_header(scope, b"user-agent"),
            request_id=_header(scope, self._rid),
        )
        method = scope.get("method", "GET") if scope["type"] == "http" else "WEBSOCKET"
        path = scope.get("path", "")
        route = self.auditor.route_for(method, path)
        with context(**fields):
            if route is None:
                await self.app(scope, receive, send)
                return
            # What the client sees if the app fails before answering (a WebSocket has
            # no response status unless it is refused).
            status = 500 if scope["type"] == "http" else 101
            start = time.perf_counter()

            async def send_status(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                await send(message)

            try:
                await self.app(scope, receive, send_status)
            finally:
                elapsed = (time.perf_counter() - start) * 1000
                self.auditor.record_request(route, scope, method, path, status, elapsed)
