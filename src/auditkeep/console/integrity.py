"""Integrity: the tenant's newest checkpoints with their age, each checked (signature by the
stored key, consistency with the next), and *Verify now*: the whole log recomputed."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from auditkeep.console.audit import record
from auditkeep.console.web import PREFIX, check_csrf, console, person, read_form, redirect, render
from auditkeep.errors import NotFound
from auditkeep.ledger.ledger import Ledger
from auditkeep.log.checkpoint import CheckpointError
from auditkeep.log.note import NoteError
from auditkeep.log.proofs import ProofError, verify_consistency
from auditkeep.model.errors import ValidationError
from auditkeep.model.timefmt import format_rfc3339

log = logging.getLogger(__name__)

NEWEST = 10  # checkpoints a page shows
MAX_SIZE = 1 << 41


@dataclass
class Row:
    size: int
    root: str
    signed_at: str
    age: str
    signature: str  # "ok" or why not
    consistent: str  # with the next newer checkpoint: "ok", why not, or "" for the newest


@dataclass
class VerifyJob:
    """One *Verify now* of a tenant's log, run in a thread; the page polls its progress."""

    id: str
    tenant: str
    by: str
    total: int  # entries to recompute
    started: str
    done: int = 0
    state: str = "running"  # running, done, failed
    report: dict[str, Any] | None = None
    error: str | None = None

    def status(self) -> dict[str, Any]:
        return {"id": self.id, "state": self.state, "done": min(self.done, self.total), "total": self.total,
                "started": self.started, "by": self.by, "report": self.report, "error": self.error}  # fmt: skip


class VerifyJobs:
    """The verifications of this server process: one at a time per tenant (a second *Verify
    now* while one runs joins it); the last one of each tenant is kept for its page."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, VerifyJob] = {}

    def get(self, tenant: str) -> VerifyJob | None:
        with self._lock:
            return self._jobs.get(tenant)

    def start(self, tenant: str, by: str, total: int, work: Callable[[VerifyJob], None]) -> tuple[VerifyJob, bool]:
        """The tenant's running job, or a new one running ``work`` in a thread; and whether
        it is new."""
        with self._lock:
            job = self._jobs.get(tenant)
            if job is not None and job.state == "running":
                return job, False
            job = VerifyJob(secrets.token_hex(8), tenant, by, total, format_rfc3339(time.time_ns()))
            self._jobs[tenant] = job
        threading.Thread(target=work, args=(job,), name=f"console-verify-{tenant}", daemon=True).start()
        return job, True


def age(ns: int, now: int | None = None) -> str:
    s = max(0, ((now or time.time_ns()) - ns) // 1_000_000_000)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s // size} {unit} ago"
    return f"{s} s ago"


def newest(lg: Ledger, tenant: str, below: int | None = None) -> tuple[Any, list[Row], int | None]:
    """The head, a page of NEWEST checkpoints of fewer than ``below`` entries (the newest when
    None), each checked, and the ``below`` of the next page (None on the last)."""
    head = lg.head(tenant)
    page = lg.store.checkpoints_newest(head.tenant_id, below, NEWEST + 1)
    more = len(page) > NEWEST
    page = page[:NEWEST]
    # the next newer checkpoint of this page's first row is on the previous page
    later = lg.store.checkpoint_from(head.tenant_id, below) if below is not None else None
    out: list[Row] = []
    for cp in page:
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
    return head, out, (page[-1].size if more and page else None)


def _below(request: Request) -> int | None:
    raw = request.query_params.get("below", "")
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 15 or not 0 < int(raw) <= MAX_SIZE:
        raise ValidationError("must be a tree size from a previous page", "below")
    return int(raw)


async def integrity_page(request: Request) -> Response:
    ctx = console(request)
    p = await person(request)
    below = _below(request)
    head, rows, nxt = await run_in_threadpool(_load, ctx.ledger, p.tenant, below)
    job = _jobs(request).get(p.tenant)
    return render(request, "integrity.html", me=p, head=head, rows=rows, below=below, next_below=nxt,
                  job=job.status() if job else None)  # fmt: skip


def _load(lg: Ledger, tenant: str, below: int | None = None) -> tuple[Any, list[Row], int | None]:
    try:
        return newest(lg, tenant, below)
    except NotFound:
        return None, [], None


def _jobs(request: Request) -> VerifyJobs:
    jobs: VerifyJobs = request.app.state.verify_jobs
    return jobs


async def verify_now(request: Request) -> Response:
    """Start recomputing every leaf, tile and root of the tenant's log and checking every
    checkpoint against the stored keys (what ``auditkeep verify --tenant T`` does) in the
    background, or join the run already going for this tenant; the page shows its progress."""
    ctx = console(request)
    p = await person(request)
    form = await read_form(request)
    check_csrf(request, form, p.session.csrf)
    head, _, _ = await run_in_threadpool(_load, ctx.ledger, p.tenant)

    def work(job: VerifyJob) -> None:
        t0 = time.monotonic()
        try:
            if head is None:
                report: dict[str, Any] = {"ok": True, "size": 0, "problems": [], "warnings": [], "seconds": 0.0, "checkpoints": 0}
            else:
                def progress(n: int) -> None:
                    job.done += n

                # live: the server goes on appending (its own audit events too) while this runs
                rep = ctx.ledger.verify(p.tenant, progress=progress, live=True).tenants[0]
                report = {
                    "ok": rep.ok, "size": rep.size, "checkpoints": rep.checkpoints_checked,
                    "problems": [x.render(p.tenant) for x in rep.problems][:50],
                    "warnings": [x.render(p.tenant) for x in rep.warnings][:50],
                    "seconds": round(time.monotonic() - t0, 2),
                }  # fmt: skip
            job.report = report
            job.done = job.total
            job.state = "done"
        except Exception as exc:  # a failed run is shown on the page and recorded, not lost
            log.exception("console verify of %s failed", p.tenant)
            job.error = str(exc) or type(exc).__name__
            job.state = "failed"
            report = {"ok": False, "size": head.size if head else 0, "problems": [job.error]}
        record(ctx, request, p.tenant, p.user.username, "auditkeep.console.verify", category="data_access",
               outcome="success" if report["ok"] else "failure", resource={"type": "log", "id": p.tenant},
               metadata={"size": report["size"], "ok": report["ok"], "problems": len(report["problems"]), "job": job.id})

    job, _ = _jobs(request).start(p.tenant, p.user.username, head.size if head else 0, work)
    if request.headers.get("accept", "").startswith("application/json"):
        return JSONResponse(job.status(), 202, headers={"Cache-Control": "no-store"})
    return redirect(f"{PREFIX}/integrity#report")


async def verify_status(request: Request) -> Response:
    """The tenant's current (or last) *Verify now*: polled by the page for its progress bar."""
    p = await person(request)
    job = _jobs(request).get(p.tenant)
    return JSONResponse(job.status() if job else {"state": "none"}, headers={"Cache-Control": "no-store"})


routes = [
    Route("/integrity", integrity_page, methods=["GET"]),
    Route("/integrity/verify", verify_now, methods=["POST"]),
    Route("/integrity/verify/status", verify_status, methods=["GET"]),
]
