"""``/v1/holds``: legal holds, for keys with the ``admin`` scope, on the caller's tenant.

Placing and releasing a hold is recorded in the tenant's log (durably, before the answer).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from auditkeep.model.errors import ValidationError
from auditkeep.model.event import Submitter
from auditkeep.model.timeargs import parse_time_arg
from auditkeep.retention.holds import Hold, HoldBook, new_hold
from auditkeep.retention.service import add_hold, release_hold
from auditkeep.server.body import read_limited
from auditkeep.server.context import context
from auditkeep.server.errors import ApiError, json_response
from auditkeep.server.params import int_param

MAX_BODY = 16 * 1024
_Short = msgspec.Meta(min_length=1, max_length=256)
_Reason = msgspec.Meta(min_length=1, max_length=1000)


class HoldRequest(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, _Reason]
    actor: Annotated[str, _Short] | None = None
    resource_type: Annotated[str, _Short] | None = None
    resource_id: Annotated[str, _Short] | None = None
    since: Annotated[str, _Short] | None = None  # event time: RFC 3339 or an age such as 30d
    until: Annotated[str, _Short] | None = None


class HoldRelease(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, _Reason]


class HoldList(msgspec.Struct):
    holds: list[Hold]


_request = msgspec.json.Decoder(HoldRequest)
_release = msgspec.json.Decoder(HoldRelease)


async def _body(request: Request, decoder: msgspec.json.Decoder[Any]) -> Any:
    raw = await read_limited(request, MAX_BODY, context(request).options.body_timeout)
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        text = str(exc)
        field = text.split("at `$.", 1)[1].rstrip("`") if "at `$." in text else "body"
        raise ValidationError(text.split(" - at ")[0], field) from None
    except msgspec.DecodeError:
        raise ApiError(400, "malformed JSON: expected an object") from None


def _actor(keyid: str) -> dict[str, str]:
    return {"id": f"apikey:{keyid}", "type": "service"}


async def list_holds(request: Request) -> Response:
    ctx = context(request)
    caller = await ctx.guard.check(request, ("admin",))
    status = request.query_params.get("status") or "active"
    if status not in ("active", "all"):
        raise ValidationError("must be active or all", "status")
    limit = int_param(request, "limit", 1, 10_000) or 1000
    holds = await run_in_threadpool(HoldBook(ctx.ledger.store).all, caller.tenant, active_only=status == "active", limit=limit)
    return json_response(msgspec.to_builtins(HoldList(holds)))


async def create_hold(request: Request) -> Response:
    ctx = context(request)
    caller = await ctx.guard.check(request, ("admin",))
    req: HoldRequest = await _body(request, _request)
    hold = new_hold(
        caller.tenant, req.reason, f"apikey:{caller.key.keyid}", actor=req.actor, resource_type=req.resource_type,
        resource_id=req.resource_id,
        since_ns=parse_time_arg(req.since, "since") if req.since is not None else None,
        until_ns=parse_time_arg(req.until, "until") if req.until is not None else None,
    )
    await run_in_threadpool(add_hold, ctx.ledger, hold, _actor(caller.key.keyid), Submitter("server", caller.key.keyid))
    return json_response(msgspec.to_builtins(hold), 201)


async def release(request: Request) -> Response:
    ctx = context(request)
    caller = await ctx.guard.check(request, ("admin",))
    req: HoldRelease = await _body(request, _release)
    hold_id: str = request.path_params["hold_id"]
    if len(hold_id) > 64:
        raise ValidationError("not a hold id", "hold_id")
    hold = await run_in_threadpool(
        release_hold, ctx.ledger, hold_id, _actor(caller.key.keyid), req.reason, caller.tenant,
        Submitter("server", caller.key.keyid),
    )
    return json_response(msgspec.to_builtins(hold))


routes = [
    Route("/v1/holds", list_holds, methods=["GET"]),
    Route("/v1/holds", create_hold, methods=["POST"]),
    Route("/v1/holds/{hold_id}/release", release, methods=["POST"]),
]
