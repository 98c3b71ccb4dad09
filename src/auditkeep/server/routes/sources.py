"""Source endpoints: the Kubernetes audit webhook, OTLP/HTTP logs, ``auditkeep collect``
batches, and the quarantine listing. Each reads and authenticates the request, then hands
it to :class:`auditkeep.sources.service.SourceService`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from auditkeep.errors import ClosedError
from auditkeep.ledger.ledger import check_tenant
from auditkeep.model.errors import ValidationError
from auditkeep.model.event import Submitter
from auditkeep.server import body
from auditkeep.server.auth import Caller
from auditkeep.server.context import ServerContext, context
from auditkeep.server.errors import ApiError
from auditkeep.server.params import int_param
from auditkeep.server.peercert import client_subject
from auditkeep.server.routes.events import ReceiptOut
from auditkeep.sources.service import CollectedBatch, Delivery

OTLP_TYPES = frozenset({"application/x-protobuf", "application/protobuf", "application/json"})
_MAX_CLUSTER = 253  # a DNS name


class SourceResult(msgspec.Struct):
    """The answer to a source delivery. ``accepted`` events are durable (their receipts
    follow); ``dropped`` were dropped by the capture policy; ``held`` Kubernetes stages wait
    for their final stage; ``quarantined`` are the ids of records kept in quarantine, with
    their ``reasons``; ``lost`` records the sender reported lost (a source.dropped event)."""

    tenant: str
    accepted: int
    receipts: list[ReceiptOut]
    dropped: int = 0
    held: int = 0
    quarantined: list[str] = []
    reasons: list[str] = []
    lost: int = 0


class QuarantineItem(msgspec.Struct):
    id: str
    source: str
    tenant: str
    reason: str
    reason_class: str
    received_at: str
    size: int
    truncated: bool
    attempts: int
    context: dict[str, str]


class QuarantineList(msgspec.Struct):
    items: list[QuarantineItem]
    total: int


_encode = msgspec.json.Encoder()
_collected = msgspec.json.Decoder(CollectedBatch)


async def _deliver(fn: Callable[..., Delivery], *args: Any) -> Delivery:
    """Run a delivery in a thread; a ledger closing under it (shutdown) is a 503."""
    try:
        return await run_in_threadpool(fn, *args)
    except ClosedError as exc:
        raise ApiError(503, "server is shutting down; retry", {"Retry-After": "1"}) from exc


def _json(value: Any, status: int = 200) -> Response:
    return Response(_encode.encode(value), status, media_type="application/json")


def _result(d: Delivery) -> SourceResult:
    r = d.result
    return SourceResult(
        tenant=r.tenant,
        accepted=len(r.receipts),
        receipts=[ReceiptOut(x.id, x.index, x.leaf_hash, x.received_at) for x in r.receipts],
        dropped=r.filtered,
        held=d.held,
        quarantined=[q.id for q in r.quarantined],
        reasons=[q.reason for q in r.quarantined[:10]],
        lost=r.lost,
    )


async def _read(request: Request, ctx: ServerContext) -> bytes:
    """The body, gunzipped when sent with ``Content-Encoding: gzip``."""
    s = ctx.settings
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", "x-gzip"):
        raise ApiError(415, f"unsupported content encoding {encoding}; use gzip or none", reason="media_type")
    raw = await body.read_limited(request, s.max_body_bytes, ctx.options.body_timeout)
    if encoding != "identity":
        raw = await run_in_threadpool(body.gunzip, raw, s.max_body_bytes)
    return raw


def key_submitter(caller: Caller) -> Submitter:
    return Submitter("key", caller.key.keyid)


async def _webhook_tenant(request: Request, ctx: ServerContext) -> tuple[str, Submitter]:
    """An ingest key's tenant, or (without a key, over mutual TLS) the tenant that
    ``client_cert_tenants`` maps the client certificate to; and who submits (the key, or the
    certificate's subject)."""
    subject = client_subject(request.scope) if "authorization" not in request.headers else None
    if subject is None:
        caller = await ctx.guard.check(request, ("ingest",))
        return caller.tenant, key_submitter(caller)
    table = ctx.settings.client_cert_tenants
    names = ([f"CN={subject.common_name}"] if subject.common_name else []) + [f"O={o}" for o in subject.organisations]
    tenant = next((table[n] for n in names if n in table), None)
    if tenant is None:
        ctx.metrics.auth_failures.labels("certificate").inc()
        raise ApiError(403, "no tenant is configured for this client certificate (client_cert_tenants)")
    asked = request.query_params.get("tenant")
    if asked and asked != tenant:
        ctx.metrics.auth_failures.labels("tenant").inc()
        raise ApiError(403, "this client certificate may not act on that tenant")
    check_tenant(tenant)
    return tenant, Submitter("cert", subject.rfc4514[:1024])


async def kubernetes(request: Request) -> Response:
    ctx = context(request)
    tenant, submitter = await _webhook_tenant(request, ctx)
    cluster = request.query_params.get("cluster") or None
    if cluster is not None and len(cluster) > _MAX_CLUSTER:
        raise ValidationError(f"longer than {_MAX_CLUSTER} characters", "cluster")
    data = await _read(request, ctx)
    delivery = await _deliver(ctx.sources.kubernetes, data, tenant, cluster, submitter)
    if delivery.refused:
        raise ApiError(400, delivery.reasons[0], quarantined=[q.id for q in delivery.result.quarantined])
    return _json(_result(delivery))


async def otlp_logs(request: Request) -> Response:
    ctx = context(request)
    caller = await ctx.guard.check(request, ("ingest",))
    ctype = body.media_type(request)
    if ctype not in OTLP_TYPES:
        shown = ctype or "none"
        raise ApiError(415, f"unsupported content type {shown}; send application/x-protobuf or application/json")
    # parse_otlp_logs inflates gzip itself (bounded), so the body is read as sent.
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", "x-gzip"):
        raise ApiError(415, f"unsupported content encoding {encoding}; use gzip or none")
    raw = await body.read_limited(request, ctx.settings.max_body_bytes, ctx.options.body_timeout)
    # the OTLP classes (protobuf) load on the first OTLP request, not at every server's start
    from auditkeep.sources.otlp import otlp_response, otlp_status

    delivery = await _deliver(ctx.sources.otlp, raw, ctype, caller.tenant, key_submitter(caller))
    if delivery.refused:
        return Response(otlp_status(delivery.reasons[0], ctype), 400, media_type=ctype)
    refused = delivery.result.quarantined
    message = ""
    if refused:
        shown = "; ".join(sorted({q.reason for q in refused})[:3])
        message = f"{len(refused)} log record(s) kept in quarantine: {shown}"
    return Response(otlp_response(len(refused), message, ctype), 200, media_type=ctype)


async def auditd(request: Request) -> Response:
    ctx = context(request)
    caller = await ctx.guard.check(request, ("ingest",))
    if body.media_type(request) != "application/json":
        raise ApiError(415, "send application/json (a batch of auditkeep collect)", reason="media_type")
    data = await _read(request, ctx)
    try:
        batch = _collected.decode(data)
    except msgspec.ValidationError as exc:
        raise ValidationError(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, f"malformed JSON: {exc}", reason="malformed") from None
    if len(batch.events) > ctx.settings.max_batch_events:
        raise ApiError(413, f"more than {ctx.settings.max_batch_events} events in one request", reason="too_many")
    if batch.lost < 0:
        raise ValidationError("must not be negative", "lost")
    delivery = await _deliver(ctx.sources.collected, "auditd", batch, caller.tenant, key_submitter(caller))
    return _json(_result(delivery))


async def quarantine_list(request: Request) -> Response:
    ctx = context(request)
    caller = await ctx.guard.check(request, ("admin",))
    source = request.query_params.get("source") or None
    limit = int_param(request, "limit", 1, 1000) or 100
    q = ctx.sources.quarantine

    def load() -> QuarantineList:
        items = [QuarantineItem(**r.summary()) for r in q.list(source, caller.tenant, limit)]
        return QuarantineList(items, q.count(source, caller.tenant))

    return _json(await run_in_threadpool(load))


routes = [
    Route("/v1/sources/kubernetes", kubernetes, methods=["POST"]),
    Route("/v1/sources/auditd", auditd, methods=["POST"]),
    Route("/v1/logs", otlp_logs, methods=["POST"]),
    Route("/v1/quarantine", quarantine_list, methods=["GET"]),
]
