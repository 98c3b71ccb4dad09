"""``POST /v1/subjects/{subject_id}/erase``: GDPR erasure, for keys with the ``admin`` scope,
on the caller's tenant (see auditkeep.retention.erase)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from auditkeep.model.errors import ValidationError
from auditkeep.model.event import Submitter
from auditkeep.retention.erase import MAX_SUBJECT, erase_subject
from auditkeep.server.context import context
from auditkeep.server.errors import json_response
from auditkeep.server.routes.holds import _body


class EraseRequest(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]


class ErasureResult(msgspec.Struct):
    erasure_id: str
    tenant: str
    events: int
    ranges: list[tuple[int, int]]


_request = msgspec.json.Decoder(EraseRequest)


async def erase(request: Request) -> Response:
    ctx = context(request)
    caller = await ctx.guard.check(request, ("admin",))
    req: EraseRequest = await _body(request, _request)
    subject: str = request.path_params["subject_id"]
    if not subject or len(subject) > MAX_SUBJECT:
        raise ValidationError(f"must be 1-{MAX_SUBJECT} characters", "subject_id")
    actor = {"id": f"apikey:{caller.key.keyid}", "type": "service"}
    done = await run_in_threadpool(
        erase_subject, ctx.ledger, caller.tenant, subject, req.reason, actor, Submitter("server", caller.key.keyid)
    )
    return json_response(msgspec.to_builtins(ErasureResult(done.erasure_id, done.tenant, done.events, done.ranges)))


routes = [Route("/v1/subjects/{subject_id}/erase", erase, methods=["POST"])]
