"""``/v1/stream``: the live tail (Server-Sent Events)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from auditkeep.model.errors import ValidationError
from auditkeep.server.context import context
from auditkeep.server.matcher import matcher
from auditkeep.server.params import MAX_INDEX, filters, int_param
from auditkeep.server.stream import EventStream


class _Endpoint:
    """An ASGI endpoint (not a request/response function): the stream owns the connection."""

    __name__ = "stream"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response = await _open(request)
        await response(scope, receive, send)


async def _open(request: Request) -> EventStream | Response:
    ctx = context(request)
    caller = await ctx.guard.check(request, ("read",))
    parsed, raw = filters(request)
    start = int_param(request, "from_index")
    last = request.headers.get("last-event-id")
    if last:
        if not last.isdigit() or int(last) >= MAX_INDEX:
            raise ValidationError("expected the log index of the last event received", "Last-Event-ID")
        start = int(last) + 1
    ctx.auditor.read(
        "auditkeep.stream.open", caller.key, caller.tenant, {"filters": raw, "from_index": start}, {"type": "stream"}, caller.client_ip
    )
    o = ctx.options
    return EventStream(
        ctx.ledger, ctx.hub, ctx.metrics, caller.tenant, start, matcher(parsed), o.heartbeat, o.send_timeout, caller.key.keyid
    )


stream = _Endpoint()
