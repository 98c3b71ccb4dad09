"""The outermost layer: request metrics, and a last resort that turns any unexpected exception
into a 500 JSON body without internals (logged here, without headers, so no key leaks)."""

from __future__ import annotations

import logging
import time

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auditkeep.server.metrics import Metrics

log = logging.getLogger("auditkeep.server")

_BODY_500 = orjson.dumps({"error": "internal server error"})


class Outermost:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        status = 500
        t0 = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started = True
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            self.metrics.errors.inc()
            log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            if not started:
                status = 500
                await send(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(_BODY_500)).encode())],
                    }
                )
                await send({"type": "http.response.body", "body": _BODY_500})
        finally:
            endpoint = scope.get("endpoint")
            route = getattr(endpoint, "__name__", "unmatched")
            self.metrics.requests.labels(route, scope.get("method", ""), str(status)).inc()
            self.metrics.request_seconds.labels(route).observe(time.perf_counter() - t0)
