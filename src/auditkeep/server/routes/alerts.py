"""``/v1/alerts`` and ``/v1/rules``: alerts and their lifecycle, dead letters, and rules
managed through the API. Every request acts on the key's tenant.

Scopes: ``read`` lists and shows alerts and rules; ``admin`` acknowledges and resolves
alerts, re-sends dead letters and changes rules. The work is done by the alert layer
(:mod:`auditkeep.alerts.state`, :mod:`auditkeep.alerts.catalog`); these handlers only map
HTTP to it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from auditkeep.alerts.catalog import RuleConflict, RuleInfo, RuleSetError
from auditkeep.alerts.errors import RuleError
from auditkeep.alerts.service import AlertService
from auditkeep.alerts.state import AlertRecord, DeadLetterView, Delivery, TransitionError
from auditkeep.model.errors import ValidationError
from auditkeep.server.auth import Caller
from auditkeep.server.body import media_type, read_limited
from auditkeep.server.context import ServerContext, context
from auditkeep.server.errors import ApiError
from auditkeep.server.params import int_param

STATUSES = ("open", "acknowledged", "resolved")
MAX_CHANGE_BODY = 16 * 1024
RULE_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "application/json", "text/plain"})


class AlertList(msgspec.Struct):
    alerts: list[AlertRecord]
    next_cursor: str | None


class AlertDetail(AlertRecord, kw_only=True):
    deliveries: list[Delivery] = msgspec.field(default_factory=list)


class AlertChange(msgspec.Struct, forbid_unknown_fields=True):
    note: str | None = None


class DeadLetterList(msgspec.Struct):
    dead_letters: list[DeadLetterView]


class Requeued(msgspec.Struct):
    queued: DeadLetterView


class RuleErrorInfo(msgspec.Struct):
    file: str | None
    line: int | None
    rule_id: str | None
    reason: str


class RuleList(msgspec.Struct):
    rules: list[RuleInfo]
    errors: list[RuleErrorInfo]


class RuleSetResult(msgspec.Struct):
    rule_set: str
    replaced: bool
    rules: list[RuleInfo]


class RulesRemoved(msgspec.Struct):
    removed: list[str]


_encode = msgspec.json.Encoder()
_change = msgspec.json.Decoder(AlertChange)


def _json(value: Any, status: int = 200) -> Response:
    return Response(_encode.encode(value), status, media_type="application/json")


def _service(ctx: ServerContext) -> AlertService:
    svc: AlertService = ctx.alerts
    return svc


def _error_info(e: RuleError) -> RuleErrorInfo:
    return RuleErrorInfo(e.file, e.line, e.rule_id, e.reason)


# -- alerts --------------------------------------------------------------------------------


async def list_alerts(request: Request) -> Response:
    ctx = context(request)
    caller = await ctx.guard.check(request, ("read",))
    q = request.query_params
    status = q.get("status") or None
    if status is not None and status not in STATUSES:
        raise ValidationError(f"must be one of {', '.join(STATUSES)}", "status")
    rule = q.get("rule") or None
    if rule is not None and len(rule) > 200:
        raise ValidationError("longer than 200 characters", "rule")
    limit = int_param(request, "limit", 1, 1000) or 100
    cursor = q.get("cursor") or None
    book = _service(ctx).book
    try:
        items, nxt = await run_in_threadpool(book.find, caller.tenant, status, rule, limit, cursor)
    except ValueError as exc:
        raise ValidationError(str(exc), "cursor") from None
    return _json(AlertList(items, nxt))


async def get_alert(request: Request) -> Response:
    ctx = context(request)
    caller = await ctx.guard.check(request, ("read",))
    book = _service(ctx).book
    alert_id = request.path_params["alert_id"]

    def load() -> AlertDetail:
        rec = book.get(alert_id, caller.tenant)
        return AlertDetail(**msgspec.structs.asdict(rec), deliveries=book.deliveries(rec))

    return _json(await run_in_threadpool(load))


async def _note(request: Request, timeout: float) -> str | None:
    raw = await read_limited(request, MAX_CHANGE_BODY, timeout)
    if not raw.strip():
        return None
    try:
        return _change.decode(raw).note
    except msgspec.ValidationError as exc:
        raise ValidationError(str(exc).split(" - at ")[0], "body") from None
    except msgspec.DecodeError:
        raise ApiError(400, "malformed JSON: expected {\"note\": \"...\"} or an empty body") from None


async def _change_state(request: Request, to: str) -> Response:
    ctx = context(request)
    caller = await ctx.guard.check(request, ("admin",))
    note = await _note(request, ctx.options.body_timeout)
    book = _service(ctx).book
    alert_id = request.path_params["alert_id"]

    def change() -> AlertRecord:
        if to == "acknowledged":
            return book.acknowledge(alert_id, caller.key.keyid, tenant=caller.tenant, note=note, actor_type="service")
        return book.resolve(alert_id, caller.key.keyid, tenant=caller.tenant, note=note, actor_type="service")

    try:
        rec = await run_in_threadpool(change)
    except TransitionError as exc:
        raise ApiError(409, str(exc), current=exc.current) from None
    except ValidationError:
        raise
    except ValueError as exc:
        raise ValidationError(str(exc), "note") from None
    return _json(rec)


async def ack_alert(request: Request) -> Response:
    return await _change_state(request, "acknowledged")


async def resolve_alert(request: Request) -> Response:
    return await _change_state(request, "resolved")


async def list_dead_letters(request: Request) -> Response:
    ctx = context(request)
    caller = await ctx.guard.check(request, ("admin",))
    limit = int_param(request, "limit", 1, 10_000) or 1000
    items = await run_in_threadpool(_service(ctx).book.dead_letters, caller.tenant, limit)
    return _json(DeadLetterList(items))


async def resend_dead_letter(request: Request) -> Response:
    ctx = context(request)
    caller = await ctx.guard.check(request, ("admin",))
    svc = _service(ctx)
    view = await run_in_threadpool(svc.book.requeue, request.path_params["letter_id"], caller.tenant)
    svc.wake()
    return _json(Requeued(view), 202)


# -- rules ---------------------------------------------------------------------------------


async def list_rules(request: Request) -> Response:
    ctx = context(request)
    caller = await ctx.guard.check(request, ("read",))
    catalog = _service(ctx).catalog

    def load() -> RuleList:
        catalog.refresh()
        return RuleList(catalog.describe(caller.tenant), [_error_info(e) for e in catalog.errors_for(caller.tenant)])

    return _json(await run_in_threadpool(load))


async def _record(ctx: ServerContext, caller: Caller, action: str, rule_ids: list[str], rule_set: str | None) -> None:
    event = {
        "actor": {"id": caller.key.keyid, "type": "service", **({"ip": caller.client_ip} if caller.client_ip else {})},
        "action": action,
        "category": "configuration",
        "outcome": "success",
        "resource": {"type": "alert_rule_set", "id": rule_set or (rule_ids[0] if rule_ids else "")},
        "source": {"service": "auditkeep-server"},
        "metadata": {"rule_ids": rule_ids},
    }
    fut = ctx.auditor.submit(event, caller.tenant, caller.key.keyid)
    if fut is not None:
        await asyncio.wrap_future(fut)


async def post_rules(request: Request) -> Response:
    ctx = context(request)
    caller = await ctx.guard.check(request, ("admin",))
    kind = media_type(request)
    if kind not in RULE_TYPES:
        raise ApiError(415, f"unsupported content type {kind or 'none'}; send application/yaml or application/json")
    catalog = _service(ctx).catalog
    raw = await read_limited(request, catalog.max_bytes, ctx.options.body_timeout)
    try:
        set_id, created, rules = await run_in_threadpool(catalog.put, caller.tenant, raw)
    except RuleSetError as exc:
        errors = [msgspec.to_builtins(_error_info(e)) for e in exc.errors]
        first = exc.errors[0].render() if exc.errors else str(exc)
        raise ApiError(422, first, errors=errors) from None
    except RuleConflict as exc:
        raise ApiError(409, str(exc)) from None
    await _record(ctx, caller, "auditkeep.rules.put", [r.id for r in rules], set_id)
    infos = [i for i in catalog.describe(caller.tenant) if i.rule_set == set_id]
    return _json(RuleSetResult(set_id, not created, infos), 201)


async def delete_rule(request: Request) -> Response:
    ctx = context(request)
    caller = await ctx.guard.check(request, ("admin",))
    rule_id = request.path_params["rule_id"]
    if len(rule_id) > 200:
        raise ApiError(404, "no such rule")
    try:
        removed = await run_in_threadpool(_service(ctx).catalog.delete, caller.tenant, rule_id)
    except RuleConflict as exc:
        raise ApiError(409, str(exc)) from None
    await _record(ctx, caller, "auditkeep.rules.delete", removed, None)
    return _json(RulesRemoved(removed))


routes = [
    Route("/v1/alerts", list_alerts, methods=["GET"]),
    Route("/v1/alerts/dead-letters", list_dead_letters, methods=["GET"]),
    Route("/v1/alerts/dead-letters/{letter_id}/resend", resend_dead_letter, methods=["POST"]),
    Route("/v1/alerts/{alert_id}", get_alert, methods=["GET"]),
    Route("/v1/alerts/{alert_id}/ack", ack_alert, methods=["POST"]),
    Route("/v1/alerts/{alert_id}/resolve", resolve_alert, methods=["POST"]),
    Route("/v1/rules", list_rules, methods=["GET"]),
    Route("/v1/rules", post_rules, methods=["POST"]),
    Route("/v1/rules/{rule_id}", delete_rule, methods=["DELETE"]),
]
