"""Live tail: a page whose script follows ``/ui/live/stream`` (Server-Sent Events, the
server's own live-tail stream behind the console's session) with filters, pause and resume."""

from __future__ import annotations

import asyncio
import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from auditkeep.console.audit import record
from auditkeep.console.sessions import SessionStore
from auditkeep.console.users import UserStore
from auditkeep.console.web import Person, console, person, render
from auditkeep.model.errors import ValidationError
from auditkeep.model.event import CATEGORIES, OUTCOMES
from auditkeep.query.filters import Filters
from auditkeep.server.context import ServerContext
from auditkeep.server.matcher import matcher
from auditkeep.server.params import MAX_INDEX, int_value
from auditkeep.server.stream import EventStream

log = logging.getLogger("auditkeep.console.live")

FIELDS = ("actor", "action", "resource_type", "resource_id", "outcome", "category", "text")
MAX_VALUE = 1000
# Seconds between checks of an open tail's session and account: a tail whose session was
# signed out or expired, or whose account was disabled, ends within this (plus one store read).
SESSION_CHECK_INTERVAL = 0.5


def _filters(request: Request) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in FIELDS:
        v = request.query_params.get(name, "").strip()
        if len(v) > MAX_VALUE:
            raise ValidationError(f"longer than {MAX_VALUE} characters", name)
        if v:
            out[name] = v
    if out.get("outcome") and out["outcome"] not in OUTCOMES:
        raise ValidationError(f"must be one of {', '.join(OUTCOMES)}", "outcome")
    if out.get("category") and out["category"] not in CATEGORIES:
        raise ValidationError(f"must be one of {', '.join(CATEGORIES)}", "category")
    return out


async def live_page(request: Request) -> Response:
    p = await person(request)
    return render(request, "live.html", me=p, values=_filters(request), outcomes=OUTCOMES, categories=CATEGORIES)


class _Stream:
    """An ASGI endpoint: the stream owns the connection."""

    __name__ = "console_stream"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        stream, p = await _open(request)
        guard = asyncio.create_task(_guard(console(request), stream, p))
        try:
            await stream(scope, receive, send)
        finally:
            guard.cancel()


def _invalid(ctx: ServerContext, p: Person) -> str | None:
    """Why the tail of ``p`` must end, or None. A disabled account's session is ended too,
    as the next page request would do."""
    sessions = SessionStore(ctx.ledger.store)
    reason = sessions.check(p.token)
    if reason is not None:
        return reason
    user = UserStore(ctx.ledger.store).get(p.tenant, p.user.username)
    if user is None or user.disabled_ns is not None:
        sessions.end(p.token)
        return "the account is disabled"
    return None


async def _guard(ctx: ServerContext, stream: EventStream, p: Person) -> None:
    """Re-check the session and the account every SESSION_CHECK_INTERVAL; end the stream
    (it sends the reason as an ``error`` event) once they are no longer valid."""
    while not stream.done():
        await asyncio.sleep(SESSION_CHECK_INTERVAL)
        try:
            reason = await run_in_threadpool(_invalid, ctx, p)
        except Exception as exc:  # the store is unreachable: keep the stream, retry
            log.warning("live tail: cannot check the session: %s", exc)
            continue
        if reason is not None:
            stream.end(reason)
            return


async def _open(request: Request) -> tuple[EventStream, Person]:
    ctx = console(request)
    p = await person(request)
    raw = _filters(request)
    parsed = Filters.parse(raw)
    start: int | None = None
    given = request.headers.get("last-event-id") or request.query_params.get("from_index")
    if given:
        start = int_value(given, "from_index", 0, MAX_INDEX - 1)
    await run_in_threadpool(
        record, ctx, request, p.tenant, p.user.username, "auditkeep.console.live.open", category="data_access",
        resource={"type": "stream"}, metadata={"filters": raw, "from_index": start},
    )  # fmt: skip
    o = ctx.options
    stream = EventStream(ctx.ledger, ctx.hub, ctx.metrics, p.tenant, start, matcher(parsed), o.heartbeat, o.send_timeout)
    return stream, p


routes = [
    Route("/live", live_page, methods=["GET"]),
    Route("/live/stream", _Stream(), methods=["GET"]),
]
