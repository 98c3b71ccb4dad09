"""Integrity: the tenant's newest checkpoints with their age, each checked (signature by the
stored key, consistency with the next), and *Verify now*: the whole log recomputed."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from auditkeep.console.audit import record
from auditkeep.console.web import check_csrf, console, person, read_form, render
from auditkeep.errors import NotFound
from auditkeep.ledger.ledger import Ledger
from auditkeep.log.checkpoint import CheckpointError
from auditkeep.log.note import NoteError
from auditkeep.log.proofs import ProofError, verify_consistency
from auditkeep.model.timefmt import format_rfc3339

NEWEST = 10


@dataclass
class Row:
    size: int
    root: str
    signed_at: str
    age: str
    signature: str  # "ok" or why not
    consistent: str  # with the next newer checkpoint: "ok", why not, or "" for the newest


def age(ns: int, now: int | None = None) -> str:
    s = max(0, ((now or time.time_ns()) - ns) // 1_000_000_000)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s // size} {unit} ago"
    return f"{s} s ago"


def newest(lg: Ledger, tenant: str) -> tuple[Any, list[Row]]:
    head = lg.head(tenant)
    rows = deque(lg.store.checkpoints(head.tenant_id), maxlen=NEWEST)
    out: list[Row] = []
    later = None
    for cp in reversed(rows):
        try:
            lg.verify_checkpoint(cp.note, tenant)
            sig = "ok"
        except (CheckpointError, NoteError, ValueError) as exc:
            sig = str(exc)
        consistent = ""
        if later is not None:
            try:
                proof = lg.prove_consistency(cp.size, later.size, tenant)
                verify_consistency(cp.size, later.size, [bytes.fromhex(h) for h in proof.hashes], cp.root, later.root)
                consistent = "ok"
            except (ProofError, NotFound, ValueError) as exc:
                consistent = str(exc)
        out.append(Row(cp.size, cp.root.hex(), format_rfc3339(cp.signed_ns), age(cp.signed_ns), sig, consistent))
        later = cp
    return head, out


async def integrity_page(request: Request) -> Response:
    ctx = console(request)
    p = await person(request)
    head, rows = await run_in_threadpool(_load, ctx.ledger, p.tenant)
    return render(request, "integrity.html", me=p, head=head, rows=rows, report=None)


def _load(lg: Ledger, tenant: str) -> tuple[Any, list[Row]]:
    try:
        return newest(lg, tenant)
    except NotFound:
        return None, []


async def verify_now(request: Request) -> Response:
    """Recompute every leaf, tile and root of the tenant's log and check every checkpoint
    against the stored keys (what ``auditkeep verify --tenant T`` does)."""
    ctx = console(request)
    p = await person(request)
    form = await read_form(request)
    check_csrf(request, form, p.session.csrf)

    def run() -> tuple[Any, list[Row], dict[str, Any]]:
        head, rows = _load(ctx.ledger, p.tenant)
        t0 = time.monotonic()
        if head is None:
            report: dict[str, Any] = {"ok": True, "size": 0, "problems": [], "warnings": [], "seconds": 0.0, "checkpoints": 0}
        else:
            rep = ctx.ledger.verify(p.tenant).tenants[0]
            report = {
                "ok": rep.ok, "size": rep.size, "checkpoints": rep.checkpoints_checked,
                "problems": [x.render(p.tenant) for x in rep.problems][:50],
                "warnings": [x.render(p.tenant) for x in rep.warnings][:50],
                "seconds": round(time.monotonic() - t0, 2),
            }  # fmt: skip
        record(ctx, request, p.tenant, p.user.username, "auditkeep.console.verify", category="data_access",
               outcome="success" if report["ok"] else "failure", resource={"type": "log", "id": p.tenant},
               metadata={"size": report["size"], "ok": report["ok"], "problems": len(report["problems"])})
        return head, rows, report

    head, rows, report = await run_in_threadpool(run)
    return render(request, "integrity.html", me=p, head=head, rows=rows, report=report)


routes = [
    Route("/integrity", integrity_page, methods=["GET"]),
    Route("/integrity/verify", verify_now, methods=["POST"]),
]
