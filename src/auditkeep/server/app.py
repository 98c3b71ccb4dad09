"""The ASGI application: routes, error handling, lifespan (live-tail hub, orderly close)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, ExceptionHandler

from auditkeep.server import errors
from auditkeep.server.alerts_process import AlertProcess
from auditkeep.server.context import ServerContext
from auditkeep.server.docs import docs_page
from auditkeep.server.middleware import Outermost
from auditkeep.server.openapi import openapi_document
from auditkeep.server.routes import (
    alerts,
    approvals,
    archive,
    events,
    evidence,
    exports,
    holds,
    keys,
    ops,
    proofs,
    sources,
    stream,
    subjects,
    tiles,
)

log = logging.getLogger("auditkeep.server")


def create_app(ctx: ServerContext, close_ledger: bool = True, extra: Sequence[BaseRoute] = ()) -> ASGIApp:
    """The server over ``ctx.ledger``; on shutdown it ends live tails, records pending audit
    counts and (``close_ledger``) closes the ledger so queued batches are durable. ``extra``:
    routes of faces built on the server (the console at ``/ui``, mounted by ``serve``)."""
    spec = openapi_document()
    page = docs_page()

    async def openapi(request: Request) -> Response:
        return JSONResponse(spec)

    async def docs(request: Request) -> Response:
        return HTMLResponse(page)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        ctx.hub.attach(ctx.ledger, asyncio.get_running_loop())
        alert_runner: AlertProcess | None = None
        if ctx.settings.alerts.run_in_server:
            # In a child process, off this interpreter's lock (see server/alerts_process.py);
            # one runner per store: a child whose store already has one stands by.
            alert_runner = await asyncio.to_thread(AlertProcess, ctx.settings, ctx.ledger)
            ctx.alerts.remote_wake = alert_runner.wake
        if ctx.witnesses is not None:
            ctx.witnesses.start()  # a thread: ingest never waits for a witness
        retention = None
        if ctx.settings.retention.run_in_server:
            from auditkeep.archive.run import retention_archiver
            from auditkeep.retention.worker import RetentionWorker

            policies = ctx.settings.retention.policies()
            retention = RetentionWorker(ctx.ledger, policies, ctx.settings.retention.interval,
                                        retention_archiver(ctx.ledger, ctx.settings.archive, policies))
            retention.start()
        # one forwarder per store: a server whose store already has one stands by
        await asyncio.to_thread(ctx.forward.start_or_stand_by)
        try:
            await ctx.sources.start()  # syslog listeners, release of held Kubernetes stages
            yield
        finally:
            ctx.hub.close()
            if ctx.witnesses is not None:
                await asyncio.to_thread(ctx.witnesses.stop)
            # before the ledger closes: buffered syslog messages and held stages are appended
            await ctx.sources.stop()
            # before the ledger closes: the runner appends alert events and saves its cursors
            await asyncio.to_thread(ctx.alerts.stop)
            if alert_runner is not None:
                ctx.alerts.remote_wake = None
                await asyncio.to_thread(alert_runner.stop)
            if retention is not None:
                await asyncio.to_thread(retention.stop)
            await asyncio.to_thread(ctx.forward.stop)
            ctx.auditor.flush()
            if close_ledger:
                await asyncio.to_thread(ctx.ledger.close)

    handlers: dict[type[Exception] | int, ExceptionHandler] = {exc: errors.handle for exc in errors.HANDLED}
    handlers[Exception] = _internal_error
    app = Starlette(
        routes=[
            *events.routes,
            *exports.routes,
            *evidence.routes,
            *proofs.routes,
            *tiles.routes,
            *keys.routes,
            *alerts.routes,
            *approvals.routes,
            *holds.routes,
            *archive.routes,
            *subjects.routes,
            *sources.routes,
            Route("/v1/stream", stream.stream, methods=["GET"]),
            *ops.routes,
            Route("/openapi.json", openapi, methods=["GET"]),
            Route("/docs", docs, methods=["GET"]),
            *extra,
        ],
        exception_handlers=handlers,
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    return Outermost(app, ctx.metrics)


async def _internal_error(request: Request, exc: Exception) -> Response:
    """Anything unexpected: a 500 that names nothing internal (the middleware logs it)."""
    return errors.error_response(500, "internal server error")
