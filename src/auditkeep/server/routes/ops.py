"""Liveness, readiness and metrics."""

from __future__ import annotations

import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from auditkeep.server.context import context
from auditkeep.server.errors import json_response
from auditkeep.server.metrics import CONTENT_TYPE
from auditkeep.store.base import StoreError

METRICS_SCOPES = ("admin", "verify")


async def healthz(request: Request) -> Response:
    """The process answers: nothing else is checked."""
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready when the store answers and no log has gone unsigned for too long."""
    ctx = context(request)
    if ctx.hub.closing:
        return json_response({"status": "shutting down"}, 503, {"Retry-After": "5"})
    try:
        heads = await run_in_threadpool(ctx.ledger.tenants)
    except (StoreError, OSError) as exc:
        return json_response({"status": "store unavailable", "error": type(exc).__name__}, 503, {"Retry-After": "5"})
    now = time.time_ns()
    # Only logs with unsigned entries age: an idle log's checkpoint may be old and current.
    ages = [(now - h.checkpoint_ns) / 1e9 for h in heads if h.size > h.checkpoint_size and h.checkpoint_ns]
    unsigned = [h for h in heads if h.size > h.checkpoint_size]
    oldest = max(ages, default=0.0)
    limit = max(30.0, 10 * ctx.settings.checkpoint_interval)
    body: dict[str, Any] = {
        "status": "ready",
        "logs": len(heads),
        "logs_with_unsigned_entries": len(unsigned),
        "oldest_unsigned_checkpoint_age_seconds": round(oldest, 3),
    }
    if oldest > limit:
        body["status"] = "checkpoints behind"
        return json_response(body, 503, {"Retry-After": "5"})
    return json_response(body)


async def metrics(request: Request) -> Response:
    ctx = context(request)
    await ctx.guard.cross_tenant(request, METRICS_SCOPES)
    data = await run_in_threadpool(ctx.metrics.render)
    return Response(data, media_type=CONTENT_TYPE)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
