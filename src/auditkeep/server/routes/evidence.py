"""``/v1/evidence``: an evidence bundle (a zip) of a received_at window of the caller's
tenant (format: docs/evidence.md)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import IO, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from auditkeep.evidence.build import FILTER_NAMES, BundleSummary, build_bundle
from auditkeep.ledger.reader import LogReader
from auditkeep.model.errors import ValidationError
from auditkeep.query.filters import Filters, parse_time
from auditkeep.server.context import context

MAX_ENTRIES = 100_000  # a window over more entries is refused: use `auditkeep evidence`
_FILTERS = tuple(name for name in FILTER_NAMES if name != "metadata")  # one query parameter each
_SPOOL = 8 * 2**20  # bundles up to this size stay in memory while they are built


def _params(request: Request) -> tuple[int, int, Filters, str | None, dict[str, Any]]:
    q = request.query_params
    since = q.get("since")
    if not since:
        raise ValidationError("required: the start of the window (received_at)", "since")
    since_ns = parse_time(since, "since")
    until = q.get("until") or "now"
    until_ns = parse_time(until, "until")
    meta = q.getlist("metadata")
    chosen = Filters.parse({**{name: q.get(name) for name in _FILTERS}, "metadata": meta})
    subject = q.get("reveal_subject") or None
    if subject is not None and (len(subject) > 256 or "\x00" in subject):
        raise ValidationError("at most 256 characters, no NUL", "reveal_subject")
    raw = {"since": since, "until": until, **{k: q[k] for k in _FILTERS if q.get(k)}, "metadata": meta or None,
           "reveal_subject": subject}  # fmt: skip
    return since_ns, until_ns, chosen, subject, raw


def _build(reader: LogReader, tenant: str, since_ns: int, until_ns: int, chosen: Filters, subject: str | None) -> tuple[IO[bytes], BundleSummary]:
    f = tempfile.SpooledTemporaryFile(_SPOOL)  # noqa: SIM115 - handed to the response, which closes it
    try:
        summary = build_bundle(
            reader, f, tenant, since_ns, until_ns, filters=chosen, reveal_subject=subject, max_entries=MAX_ENTRIES
        )
    except BaseException:
        f.close()
        raise
    f.seek(0)
    return f, summary


def _chunks(f: IO[bytes]) -> Iterator[bytes]:
    try:
        while chunk := f.read(1 << 20):
            yield chunk
    finally:
        f.close()


async def evidence(request: Request) -> Response:
    """The bundle is built whole (into a temporary file) before the first byte is sent, so
    a refused window is a clean 4xx; the read is recorded, with the subject revealed."""
    ctx = context(request)
    caller = await ctx.guard.check(request, ("read",))
    since_ns, until_ns, chosen, subject, raw = _params(request)
    f, summary = await run_in_threadpool(_build, ctx.ledger, caller.tenant, since_ns, until_ns, chosen, subject)
    ctx.auditor.read(
        "auditkeep.evidence",
        caller.key,
        caller.tenant,
        {**raw, "first": summary.first, "end": summary.end, "events": summary.events, "checkpoint": summary.checkpoint_size},
        {"type": "evidence"},
        caller.client_ip,
    )
    name = f"evidence-{caller.tenant}-{summary.since[:10]}.zip"
    return StreamingResponse(
        _chunks(f),
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
            "X-Evidence-Range": f"{summary.first}-{summary.end}",
        },
    )


routes = [Route("/v1/evidence", evidence, methods=["GET"])]
