"""C2SP tlog-tiles read endpoints, one log per tenant under ``/v1/logs/{tenant}/``.

Clients of the tlog ecosystem send the same bearer key as every other client (a key with
the ``read`` or ``verify`` scope). Entry bundles are gzip-compressed on the wire when the
client accepts gzip (the spec's SHOULD); hash tiles are random bytes and go as they are. Full tiles and bundles never change, so they may be
cached for long; partial ones are immutable too for their width but may be replaced by the
full tile, so they are cached briefly. All are ``private``: they carry a tenant's events.
"""

from __future__ import annotations

import gzip

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from auditkeep.ledger.ledger import Ledger
from auditkeep.log.tiles import TILE_WIDTH, parse_tile_path
from auditkeep.server.context import context
from auditkeep.server.errors import ApiError
from auditkeep.server.routes.proofs import cosigned_latest

SCOPES = ("read", "verify")
OCTETS = "application/octet-stream"
FULL_CACHE = "private, max-age=31536000, immutable"
PARTIAL_CACHE = "private, max-age=60"
MAX_BUNDLE_ENTRY = 0xFFFF  # entries are prefixed with a big-endian uint16 length


async def checkpoint(request: Request) -> Response:
    ctx = context(request)
    caller = await ctx.guard.check(request, SCOPES, tenant=request.path_params["tenant"])
    note = await run_in_threadpool(cosigned_latest, ctx.ledger, caller.tenant)
    return PlainTextResponse(note, media_type="text/plain; charset=utf-8", headers={"Cache-Control": "no-cache"})


async def tile(request: Request) -> Response:
    ctx = context(request)
    caller = await ctx.guard.check(request, SCOPES, tenant=request.path_params["tenant"])
    path = "tile/" + request.path_params["path"]
    try:
        level, index, width = parse_tile_path(path)
    except ValueError as exc:
        raise ApiError(404, f"not a tile path: {exc}") from None
    cache = FULL_CACHE if width == TILE_WIDTH else PARTIAL_CACHE
    headers = {"Cache-Control": cache}
    if level is None:
        compress = accepts_gzip(request.headers.get("accept-encoding"))
        data = await run_in_threadpool(_bundle, ctx.ledger, caller.tenant, index, width, compress)
        headers["Vary"] = "Accept-Encoding"  # a cache must not serve the gzip form to everyone
        if compress:
            headers["Content-Encoding"] = "gzip"
    else:
        data = await run_in_threadpool(ctx.ledger.tile, caller.tenant, level, index, width)
    ctx.auditor.tiles(caller.key, caller.tenant, caller.client_ip)
    return Response(data, media_type=OCTETS, headers=headers)


def accepts_gzip(header: str | None) -> bool:
    """Whether an ``Accept-Encoding`` value (RFC 9110 12.5.3) admits gzip: listed (or as
    ``x-gzip``), or covered by ``*``, with a q-value above 0."""
    if not header:
        return False
    named: float | None = None
    star: float | None = None
    for item in header.split(",")[:32]:  # bounded: a header of thousands of codings is junk
        coding, _, params = item.partition(";")
        coding = coding.strip().lower()
        q = 1.0
        for param in params.split(";"):
            k, _, v = param.partition("=")
            if k.strip().lower() == "q":
                try:
                    q = float(v.strip())
                except ValueError:
                    q = 0.0
        if coding in ("gzip", "x-gzip"):
            named = q if named is None else max(named, q)
        elif coding == "*":
            star = q
    chosen = named if named is not None else star
    return chosen is not None and chosen > 0


def _bundle(ledger: Ledger, tenant: str, index: int, width: int, compress: bool = False) -> bytes:
    parts: list[bytes] = []
    for e in ledger.tile_entries(tenant, index, width):
        if len(e.leaf) > MAX_BUNDLE_ENTRY:
            raise ApiError(422, f"entry {e.index} is too large for a tlog-tiles bundle; fetch it with GET /v1/events")
        parts.append(len(e.leaf).to_bytes(2, "big"))
        parts.append(e.leaf)
    data = b"".join(parts)
    # mtime 0: the same bundle compresses to the same bytes every time (ETags, caches)
    return gzip.compress(data, compresslevel=6, mtime=0) if compress else data


routes = [
    Route("/v1/logs/{tenant}/checkpoint", checkpoint, methods=["GET"]),
    Route("/v1/logs/{tenant}/tile/{path:path}", tile, methods=["GET"]),
]
