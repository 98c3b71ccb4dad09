"""C2SP tlog-tiles read endpoints, one log per tenant under ``/v1/logs/{tenant}/``.

Clients of the tlog ecosystem send the same bearer key as every other client (a key with
the ``read`` or ``verify`` scope). Full tiles and bundles never change, so they may be
cached for long; partial ones are immutable too for their width but may be replaced by the
full tile, so they are cached briefly. All are ``private``: they carry a tenant's events.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from auditkeep.ledger.ledger import Ledger, NotFound
from auditkeep.log.hashing import HASH_SIZE
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
    if level is None:
        data = await run_in_threadpool(_bundle, ctx.ledger, caller.tenant, index, width)
    else:
        data = await run_in_threadpool(_hashes, ctx.ledger, caller.tenant, level, index, width)
    ctx.auditor.tiles(caller.key, caller.tenant, caller.client_ip)
    cache = FULL_CACHE if width == TILE_WIDTH else PARTIAL_CACHE
    return Response(data, media_type=OCTETS, headers={"Cache-Control": cache})


def _hashes(ledger: Ledger, tenant: str, level: int, index: int, width: int) -> bytes:
    tid = ledger.tenant_id(tenant)
    data = ledger.store.read_tiles(tid, [(level, index)]).get((level, index))
    # A stored tile may be wider than asked (it grew since); its prefix is the tile asked for.
    if data is None or len(data) < width * HASH_SIZE:
        raise NotFound(f"no tile {level}/{index} of width {width} in this log")
    return data[: width * HASH_SIZE]


def _bundle(ledger: Ledger, tenant: str, index: int, width: int) -> bytes:
    tid = ledger.tenant_id(tenant)
    start = index * TILE_WIDTH
    entries = list(ledger.store.entries(tid, start, start + width))
    if len(entries) != width:
        raise NotFound(f"no entry bundle {index} of width {width} in this log")
    parts: list[bytes] = []
    for e in entries:
        if len(e.leaf) > MAX_BUNDLE_ENTRY:
            raise ApiError(422, f"entry {e.index} is too large for a tlog-tiles bundle; fetch it with GET /v1/events")
        parts.append(len(e.leaf).to_bytes(2, "big"))
        parts.append(e.leaf)
    return b"".join(parts)


routes = [
    Route("/v1/logs/{tenant}/checkpoint", checkpoint, methods=["GET"]),
    Route("/v1/logs/{tenant}/tile/{path:path}", tile, methods=["GET"]),
]
