"""``/v1/export``: a tenant's events streamed as JSON Lines, CSV, OCSF or CEF."""

from __future__ import annotations

from collections.abc import Iterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from auditkeep.export import MEDIA_TYPES, Formatter, iter_chunks
from auditkeep.export.formats import EXTENSIONS
from auditkeep.ledger.ledger import Ledger
from auditkeep.query.filters import Filters
from auditkeep.server.context import context
from auditkeep.server.params import filters


async def export(request: Request) -> Response:
    """Streamed page by page from a thread (constant memory, whatever the size). The read
    is recorded before the first byte is sent."""
    ctx = context(request)
    caller = await ctx.guard.check(request, ("read",))
    parsed, raw = filters(request)
    fmt = request.query_params.get("format", "jsonl")
    formatter = Formatter(fmt)  # 422 for an unknown format, before anything is streamed
    ctx.auditor.read(
        "auditkeep.export",
        caller.key,
        caller.tenant,
        {"filters": raw, "format": fmt},
        {"type": "events"},
        caller.client_ip,
    )
    if parsed:
        # a bad filter is a 422 now rather than a broken stream later
        ctx.ledger.search(caller.tenant, order="oldest", limit=1, filters=parsed)
    name = f"{caller.tenant}.{EXTENSIONS[fmt]}"
    return StreamingResponse(
        _stream(ctx.ledger, caller.tenant, parsed, formatter),
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )


def _stream(ledger: Ledger, tenant: str, parsed: Filters, formatter: Formatter) -> Iterator[bytes]:
    for _, chunk in iter_chunks(ledger, tenant, parsed, formatter):
        yield chunk


routes = [Route("/v1/export", export, methods=["GET"])]
