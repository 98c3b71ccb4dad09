"""``/v1/approvals``: requests the gateways put on hold, and the decisions on them. Every
request acts on the key's tenant.

Scopes: ``admin`` lists, shows, approves and rejects; ``ingest`` (a gateway's key) files a
request and may read the requests it filed, waiting on one with ``?wait=SECONDS``. The
approver is the key (its name, else its id): a key cannot decide what it filed, and a key
named like the requester cannot decide the requester's request. The work is done by
:class:`auditkeep.gateway.approvals.ApprovalBook`; these handlers only map HTTP to it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from auditkeep.gateway.approvals import (
    MAX_NOTE,
    STATUSES,
    Approval,
    ApprovalBook,
    ApprovalConflict,
    ApprovalNotFound,
    SelfApproval,
)
from auditkeep.model.errors import ValidationError
from auditkeep.server.auth import Caller
from auditkeep.server.body import read_limited
from auditkeep.server.context import context
from auditkeep.server.errors import ApiError
from auditkeep.server.params import int_param

MAX_BODY = 64 * 1024
MAX_WAIT = 60  # seconds a GET may hold the request open
WAIT_POLL = 0.25


class ApprovalList(msgspec.Struct):
    approvals: list[Approval]
    next_cursor: str | None


class ApprovalChange(msgspec.Struct, forbid_unknown_fields=True):
    note: str | None = None


class ApprovalRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """What a gateway files: who waits, for what, under which rule, for how long."""

    gateway: str
    requester: str
    action: str
    summary: str
    timeout: float
    rule: str | None = None
    details: dict[str, Any] = msgspec.field(default_factory=dict)


_encode = msgspec.json.Encoder()
_change = msgspec.json.Decoder(ApprovalChange)
_request = msgspec.json.Decoder(ApprovalRequest)


def _json(value: Any, status: int = 200) -> Response:
    return Response(_encode.encode(value), status, media_type="application/json")


def _book(request: Request) -> ApprovalBook:
    book: ApprovalBook = context(request).approvals
    return book


def _approver(caller: Caller) -> str:
    return caller.key.name or caller.key.keyid


async def _body(request: Request, decoder: msgspec.json.Decoder[Any], example: str) -> Any:
    raw = await read_limited(request, MAX_BODY, context(request).options.body_timeout)
    if not raw.strip():
        return None
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        text = str(exc)
        field = text.split("at `$.", 1)[1].rstrip("`") if "at `$." in text else "body"
        raise ValidationError(text.split(" - at ")[0], field) from None
    except msgspec.DecodeError:
        raise ApiError(400, f"malformed JSON: expected {example}") from None


async def list_approvals(request: Request) -> Response:
    caller = await context(request).guard.check(request, ("admin",))
    q = request.query_params
    status = q.get("status") or None
    if status is not None and status not in STATUSES:
        raise ValidationError(f"must be one of {', '.join(STATUSES)}", "status")
    limit = int_param(request, "limit", 1, 1000) or 100
    cursor = q.get("cursor") or None
    items, nxt = await run_in_threadpool(_book(request).find, caller.tenant, status, limit, cursor)
    return _json(ApprovalList(items, nxt))


async def get_approval(request: Request) -> Response:
    caller = await context(request).guard.check(request, ("admin", "ingest"))
    book = _book(request)
    approval_id = request.path_params["approval_id"]
    wait = int_param(request, "wait", 0, MAX_WAIT) or 0
    req = await run_in_threadpool(book.get, approval_id, caller.tenant)
    if not caller.key.allows("admin") and req.requested_by != caller.key.keyid:
        raise ApprovalNotFound(f"no approval request {approval_id}")  # not this key's to see
    deadline = time.monotonic() + wait
    while not req.final and time.monotonic() < deadline:
        await asyncio.sleep(min(WAIT_POLL, max(0.0, deadline - time.monotonic())))
        req = await run_in_threadpool(book.get, approval_id, caller.tenant)
    return _json(req)


async def create_approval(request: Request) -> Response:
    caller = await context(request).guard.check(request, ("ingest",))
    body: ApprovalRequest | None = await _body(request, _request, '{"gateway", "requester", "action", "summary", "timeout"}')
    if body is None:
        raise ValidationError("a JSON body is required", "body")

    def file() -> Approval:
        return _book(request).request(
            caller.tenant, gateway=body.gateway, requester=body.requester, action=body.action,
            summary=body.summary, timeout=body.timeout, rule=body.rule, details=body.details,
            requested_by=caller.key.keyid,
        )  # fmt: skip

    return _json(await run_in_threadpool(file), 201)


async def _decide(request: Request, to: str) -> Response:
    caller = await context(request).guard.check(request, ("admin",))
    change: ApprovalChange | None = await _body(request, _change, '{"note": "..."} or an empty body')
    note = change.note if change is not None else None
    if note is not None and len(note) > MAX_NOTE:
        raise ValidationError(f"a note is at most {MAX_NOTE} characters", "note")
    book = _book(request)
    approval_id = request.path_params["approval_id"]

    def decide() -> Approval:
        fn = book.approve if to == "approved" else book.reject
        return fn(approval_id, _approver(caller), tenant=caller.tenant, note=note,
                  approver_key=caller.key.keyid, approver_type="user")  # fmt: skip

    try:
        return _json(await run_in_threadpool(decide))
    except SelfApproval as exc:
        raise ApiError(403, str(exc), kind="self_approval") from None
    except ApprovalConflict as exc:
        raise ApiError(409, str(exc), current=exc.current) from None


async def approve(request: Request) -> Response:
    return await _decide(request, "approved")


async def reject(request: Request) -> Response:
    return await _decide(request, "rejected")


routes = [
    Route("/v1/approvals", list_approvals, methods=["GET"]),
    Route("/v1/approvals", create_approval, methods=["POST"]),
    Route("/v1/approvals/{approval_id}", get_approval, methods=["GET"]),
    Route("/v1/approvals/{approval_id}/approve", approve, methods=["POST"]),
    Route("/v1/approvals/{approval_id}/reject", reject, methods=["POST"]),
]
