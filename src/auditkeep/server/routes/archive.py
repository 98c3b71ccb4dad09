"""``/v1/archive``: the WORM archive of the caller's tenant (docs/archive.md).

Listing segments and reading a manifest need the ``read`` scope and are recorded as reads
of the log (``auditkeep.archive.list``, ``auditkeep.archive.read``), as searches are.
Starting a run needs ``admin``; it archives the caller's tenant only, under the store's
archive lease (409 when another archiver holds it), for at most ``RUN_BUDGET`` seconds: a
run cut short says ``more`` and the next request continues from the stored cursor.
"""

from __future__ import annotations

import re
import time
from typing import Annotated, Any

import msgspec
import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from auditkeep.archive.segment import manifest_name
from auditkeep.archive.target import Target, open_target
from auditkeep.errors import ConfigError, NotFound
from auditkeep.model.errors import ValidationError
from auditkeep.retention.policy import PolicyError, parse_duration
from auditkeep.server.body import read_limited
from auditkeep.server.context import ServerContext, context
from auditkeep.server.errors import ApiError, json_response
from auditkeep.server.params import int_param

MAX_BODY = 4096
MAX_PAGE = 1000
RUN_BUDGET = 30.0  # seconds of archiving per request; the cursor keeps the rest for the next
_SEGMENT_ID = re.compile(r"^([0-9]{1,15})-([0-9]{1,15})$")


class RunRequest(msgspec.Struct, forbid_unknown_fields=True):
    older_than: Annotated[str, msgspec.Meta(min_length=1, max_length=32)] | None = None


_run_request = msgspec.json.Decoder(RunRequest)


def _target(ctx: ServerContext) -> Target:
    """The configured archive target, opened once per server."""
    target = ctx.archive_target
    if target is None:
        if not ctx.settings.archive.configured:
            raise ApiError(404, "no archive is configured on this server ([archive] in auditkeep.toml)")
        try:
            target = open_target(ctx.settings.archive)
        except ConfigError as exc:
            raise ApiError(404, str(exc)) from None
        ctx.archive_target = target
    return target


async def list_archive(request: Request) -> Response:
    ctx = context(request)
    caller = await ctx.guard.check(request, ("read",))
    limit = int_param(request, "limit", 1, MAX_PAGE) or 100
    after = int_param(request, "after")
    target = _target(ctx)
    # the archive run's code (and retention's) is imported here, not at the server's start
    from auditkeep.archive.run import segment_rows

    rows, more = await run_in_threadpool(segment_rows, target, caller.tenant, after, limit)
    ctx.auditor.read(
        "auditkeep.archive.list", caller.key, caller.tenant,
        {"after": after, "limit": limit, "results": len(rows)}, {"type": "archive"}, caller.client_ip,
    )
    body: dict[str, Any] = {"segments": rows, "next_after": rows[-1]["first"] if more and rows else None}
    return json_response(body)


async def get_segment(request: Request) -> Response:
    ctx = context(request)
    caller = await ctx.guard.check(request, ("read",))
    segment_id: str = request.path_params["segment_id"]
    m = _SEGMENT_ID.match(segment_id)
    if m is None:
        raise ValidationError("not a segment id (FIRST-END, as the list gives it)", "segment_id")
    first, end = int(m[1]), int(m[2])
    target = _target(ctx)
    raw = await run_in_threadpool(target.get, manifest_name(caller.tenant, first, end))
    if raw is None:
        raise NotFound(f"no archive segment {segment_id} of tenant {caller.tenant!r}")
    ctx.auditor.read(
        "auditkeep.archive.read", caller.key, caller.tenant,
        {"first": first, "end": end}, {"type": "archive_segment", "id": segment_id}, caller.client_ip,
    )
    return Response(raw, 200, media_type="application/json")


async def start_run(request: Request) -> Response:
    ctx = context(request)
    caller = await ctx.guard.check(request, ("admin",))
    raw = await read_limited(request, MAX_BODY, ctx.options.body_timeout)
    try:
        req = _run_request.decode(raw) if raw.strip() else RunRequest()
    except msgspec.ValidationError as exc:
        raise ValidationError(str(exc).split(" - at ")[0], "older_than") from None
    except msgspec.DecodeError:
        raise ApiError(400, "malformed JSON: expected an object") from None
    try:
        older = parse_duration(req.older_than, "older_than") if req.older_than else None
    except PolicyError as exc:
        raise ValidationError(str(exc), "older_than") from None
    target = _target(ctx)
    policies = ctx.settings.retention.policies()
    if older is None and not any(p.archive_after_ns is not None for p in policies):
        raise ApiError(409, "nothing to archive: no retention policy has archive_after and older_than is not given")
    head = await run_in_threadpool(ctx.ledger.head, caller.tenant)
    deadline = time.monotonic() + RUN_BUDGET
    from auditkeep.archive.run import ArchiveBusy, archived_to, run_archive  # as in list_archive

    def run() -> Any:
        before = archived_to(ctx.ledger.store, head.tenant_id)
        [done] = run_archive(ctx.ledger, target, policies, ctx.settings.archive.segment_entries, time.time_ns(),
                             caller.tenant, older, stop=lambda: time.monotonic() > deadline)
        return before, done

    try:
        before, done = await run_in_threadpool(run)
    except ArchiveBusy as exc:
        raise ApiError(409, str(exc), lease="held") from None
    body = {
        "tenant": done.tenant, "target": target.description, "size": done.size, "archived_before": before,
        "archived_to": done.archived_to, "entries": done.entries, "segments": [[a, b] for a, b in done.segments],
        "adopted": done.adopted, "bytes": done.bytes, "more": time.monotonic() > deadline,
    }
    ctx.auditor.submit({
        "actor": {"id": caller.key.keyid, "type": "service", **({"ip": caller.client_ip} if caller.client_ip else {})},
        "action": "auditkeep.archive.run",
        "category": "admin",
        "outcome": "success",
        "source": {"service": "auditkeep-server"},
        "metadata": {"archived_before": before, "archived_to": done.archived_to, "segments": len(done.segments),
                     **({"older_than": req.older_than} if req.older_than else {})},
    }, caller.tenant, caller.key.keyid)
    return Response(orjson.dumps(body), 200, media_type="application/json")


routes = [
    Route("/v1/archive/segments", list_archive, methods=["GET"]),
    Route("/v1/archive/segments/{segment_id}", get_segment, methods=["GET"]),
    Route("/v1/archive/runs", start_run, methods=["POST"]),
]
