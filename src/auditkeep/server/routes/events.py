"""``/v1/events``: ingest, search, fetch (with an inclusion proof on request)."""

from __future__ import annotations

import asyncio
import base64
import time
from concurrent.futures import Future
from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from auditkeep.errors import ClosedError
from auditkeep.ledger.append import Receipt
from auditkeep.ledger.ledger import Ledger, Record
from auditkeep.model.errors import ConflictError, MalformedJSON, ValidationError
from auditkeep.model.event import Event, Submitter
from auditkeep.policy.types import GATEWAY_SOURCES
from auditkeep.server import body
from auditkeep.server.context import ServerContext, context
from auditkeep.server.errors import ApiError
from auditkeep.server.params import bool_param, filters, int_param


class ReceiptOut(msgspec.Struct):
    id: str
    index: int
    leaf_hash: str
    received_at: str


class IngestResult(msgspec.Struct):
    """One receipt per kept event; ``dropped`` counts the events the capture policy dropped
    (they have no receipt and no index)."""

    tenant: str
    receipts: list[ReceiptOut]
    dropped: int = 0


class SearchResult(msgspec.Struct):
    events: list[Record]
    next_cursor: str | None


_encode = msgspec.json.Encoder()


def _json(value: Any, status: int = 200) -> Response:
    return Response(_encode.encode(value), status, media_type="application/json")


async def ingest(request: Request) -> Response:
    ctx = context(request)
    caller = await ctx.guard.check(request, ("ingest",))
    source = _source(request)
    s = ctx.settings
    events: list[Event] = []

    def prepare(raw: bytes, encoding: str) -> Future[list[Receipt]]:
        events.extend(body.decode(raw, encoding, s.max_body_bytes, s.max_batch_events))
        return _submit(ctx.ledger, events, caller.tenant, source, caller.key.keyid)

    try:
        raw, encoding = await body.read_body(request, s.max_body_bytes, ctx.options.body_timeout)
        if body.inline(raw, encoding):
            fut = prepare(raw, encoding)
        else:  # decoding, policy and validation of a large batch are CPU work: off the loop, in one hop
            fut = await run_in_threadpool(prepare, raw, encoding)
        t0 = time.perf_counter()
        receipts = await asyncio.wrap_future(fut)
    except ApiError as exc:  # events that could not be decoded count as one
        _rejected(ctx, exc.reason or "other", max(1, len(events)))
        raise
    except ValidationError as exc:
        reason = "malformed" if isinstance(exc, MalformedJSON) else "invalid"
        _rejected(ctx, reason, max(1, len(events)))
        raise
    except ConflictError:
        _rejected(ctx, "conflict", len(events))
        raise
    m = ctx.metrics
    m.commit_seconds.observe(time.perf_counter() - t0)
    m.batch_size.observe(len(receipts))
    m.ingest_requests.inc()
    m.ingest_events.labels(caller.tenant).inc(len(receipts))
    dropped = len(events) - len(receipts)  # one receipt per event the policy kept
    if dropped:
        m.policy_dropped(source, dropped)
    out = IngestResult(
        caller.tenant, [ReceiptOut(r.id, r.index, r.leaf_hash, r.received_at) for r in receipts], dropped
    )
    return _json(out)


def _source(request: Request) -> str:
    """The source whose capture policy applies: ``api``, or a gateway that names itself."""
    source = request.query_params.get("source") or "api"
    if source != "api" and source not in GATEWAY_SOURCES:
        raise ValidationError(f"must be api or one of {', '.join(GATEWAY_SOURCES)}", "source")
    return source


def _submit(ledger: Ledger, events: list[Event], tenant: str, source: str, keyid: str) -> Future[list[Receipt]]:
    try:
        # capture policy and redaction apply; the leaf names the key, whatever the body says
        return ledger.submit(events, tenant, source=source, submitter=Submitter("key", keyid))
    except ClosedError as exc:  # the ledger is closing (shutdown)
        raise ApiError(503, "server is shutting down; retry", {"Retry-After": "1"}) from exc


def _rejected(ctx: ServerContext, reason: str, count: int) -> None:
    ctx.metrics.rejected.labels(reason).inc(count)


async def search(request: Request) -> Response:
    ctx = context(request)
    caller = await ctx.guard.check(request, ("read",))
    parsed, raw = filters(request)
    order = request.query_params.get("order", "newest")
    limit = int_param(request, "limit", 1, 10_000) or 100
    cursor = request.query_params.get("cursor") or None
    page = await run_in_threadpool(
        lambda: ctx.ledger.search(caller.tenant, order=order, cursor=cursor, limit=limit, filters=parsed)
    )
    ctx.auditor.read(
        "auditkeep.search",
        caller.key,
        caller.tenant,
        {"filters": raw, "order": order, "limit": limit, "cursor": cursor, "results": len(page.items)},
        {"type": "events"},
        caller.client_ip,
    )
    return _json(SearchResult(page.items, page.next_cursor))


async def get_event(request: Request) -> Response:
    ctx = context(request)
    caller = await ctx.guard.check(request, ("read",))
    event_id: str = request.path_params["event_id"]
    with_proof = bool_param(request, "proof")

    def load() -> dict[str, Any]:
        rec = ctx.ledger.get(event_id, caller.tenant)
        out: dict[str, Any] = msgspec.to_builtins(rec)
        if with_proof:
            leaf = ctx.ledger.entry(rec.index, caller.tenant).leaf
            out["leaf"] = base64.b64encode(leaf).decode("ascii")
            out["proof"] = msgspec.to_builtins(ctx.ledger.prove_inclusion(rec.index, caller.tenant))
        return out

    out = await run_in_threadpool(load)
    ctx.auditor.read(
        "auditkeep.event.read",
        caller.key,
        caller.tenant,
        {"index": out["index"], "proof": with_proof},
        {"type": "event", "id": event_id},
        caller.client_ip,
    )
    return _json(out)


routes = [
    Route("/v1/events", ingest, methods=["POST"]),
    Route("/v1/events", search, methods=["GET"]),
    Route("/v1/events/{event_id}", get_event, methods=["GET"]),
]
