"""WSGI middleware (Flask, any WSGI app).

    app.wsgi_app = AuditWSGIMiddleware(app.wsgi_app, log=client, actor=lambda environ: environ.get("REMOTE_USER"),
                                       routes=[Route("/admin/*", ["POST", "DELETE"])])

The request runs in a copy of the caller's context holding the audit scope, and so does
the iteration of a streamed body; nothing leaks into the server thread's next request.
A handler that authenticates the user can add it with ``auditkeep.client.bind(actor=...)``.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from auditkeep.client.context import context
from auditkeep.client.protocol import AuditLog
from auditkeep.integrations.web import ActorResolver, RequestAuditor, Route

__all__ = ["AuditWSGIMiddleware"]


class _Body:
    """The app's response iterable, iterated and closed inside the request's context."""

    def __init__(self, ctx: contextvars.Context, body: Iterable[bytes], done: Callable[[], None] | None) -> None:
        self._ctx = ctx
        self._body = body
        self._it: Iterator[bytes] | None = None
        self._done = done

    def __iter__(self) -> _Body:
        return self

    def __next__(self) -> bytes:
        if self._it is None:
            self._it = self._ctx.run(iter, self._body)
        return self._ctx.run(next, self._it)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                self._ctx.run(close)
        finally:
            if self._done is not None:
                done, self._done = self._done, None
                self._ctx.run(done)


class AuditWSGIMiddleware:
    """Fills the audit context for each request; records configured routes."""

    def __init__(
        self,
        app: WSGIApplication,
        log: AuditLog | None = None,
        *,
        actor: ActorResolver[WSGIEnvironment] | None = None,
        trusted_proxies: Iterable[str] = (),
        routes: Iterable[Route | str] = (),
        request_id_header: str = "X-Request-ID",
        service: str | None = None,
        anonymous: str = "anonymous",
    ) -> None:
        self.app = app
        self.auditor: RequestAuditor[WSGIEnvironment] = RequestAuditor(
            log, actor=actor, trusted_proxies=trusted_proxies, routes=routes,
            request_id_header=request_id_header, service=service, anonymous=anonymous,
        )  # fmt: skip
        self._rid = "HTTP_" + request_id_header.upper().replace("-", "_")

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        fields = self.auditor.context_fields(
            environ,
            peer=environ.get("REMOTE_ADDR"),
            forwarded_for=environ.get("HTTP_X_FORWARDED_FOR"),
            user_agent=environ.get("HTTP_USER_AGENT"),
            request_id=environ.get(self._rid),
        )
        ctx = contextvars.copy_context()
        # Entered and never exited: the scope lives exactly as long as this copied context.
        ctx.run(context(**fields).__enter__)
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        route = self.auditor.route_for(method, path)
        if route is None:
            return _Body(ctx, ctx.run(self.app, environ, start_response), None)
        status = 500
        start = time.perf_counter()

        def track(
            status_line: str,
            headers: list[tuple[str, str]],
            exc_info: tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None] | None = None,
        ) -> Callable[[bytes], Any]:
            nonlocal status
            status = int(status_line.split(" ", 1)[0])
            return start_response(status_line, headers, exc_info)

        def done() -> None:
            elapsed = (time.perf_counter() - start) * 1000
            self.auditor.record_request(route, environ, method, path, status, elapsed)

        try:
            body = ctx.run(self.app, environ, track)
        except BaseException:
            ctx.run(done)
            raise
        return _Body(ctx, body, done)
