"""Reviews: an auditor signs off a search over a time range as reviewed, with a comment. The
sign-off is an event in the tenant's log (appended durably before the page answers), and the
log is the history: the reviews page lists those events, printable and as CSV."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from auditkeep.console.audit import event_for, record
from auditkeep.console.search import SearchForm, count_matches
from auditkeep.console.web import (
    PREFIX,
    Refused,
    check_csrf,
    console,
    field,
    person,
    read_form,
    redirect,
    render,
)
from auditkeep.model.event import Submitter
from auditkeep.model.timefmt import format_rfc3339, now_ns

ACTION = "auditkeep.console.review"
MAX_COMMENT = 2000
HISTORY = 500


async def sign_off(request: Request) -> Response:
    ctx = console(request)
    p = await person(request, "auditor")
    form = await read_form(request)
    check_csrf(request, form, p.session.csrf)
    query = field(form, "query", 8000)
    comment = field(form, "comment", MAX_COMMENT).strip()
    if not comment:
        raise Refused(400, "A review needs a comment saying what was checked.")
    search = SearchForm.from_query(QueryParams(parse_qsl(query, keep_blank_values=True)))
    search.cursor = ""
    now = now_ns()
    since, until = search.bounds(now)
    if until is None:
        until = now  # "reviewed up to now": the range signed off is fixed at signing time
    filters = replace(search.filters(now), until=until)

    def run() -> None:
        count = count_matches(ctx.ledger, p.tenant, filters)
        meta: dict[str, Any] = {
            "filters": search.recorded(),
            "since": format_rfc3339(since) if since is not None else None,
            "until": format_rfc3339(until),
            "events": count,
            "events_counted_fully": True,  # the store's count is exact (kept for older readers)
            "comment": comment,
            "search": search.query(range="custom", since=format_rfc3339(since) if since is not None else "", until=format_rfc3339(until)),
        }
        ev = event_for(request, p.tenant, p.user.username, ACTION, category="data_access",
                       resource={"type": "events", "name": "review"}, metadata=meta)
        # durable before the auditor is told it is done: a sign-off must not be lost
        ctx.ledger.append_own([ev], p.tenant, Submitter("server", f"console:{p.tenant}/{p.user.username}"))

    await run_in_threadpool(run)
    return redirect(PREFIX + "/reviews")


def _history(request: Request, tenant: str, username: str) -> list[dict[str, Any]]:
    ctx = console(request)
    page = ctx.ledger.search(tenant, action=ACTION, order="newest", limit=HISTORY)
    record(ctx, request, tenant, username, "auditkeep.console.reviews.read", category="data_access",
           resource={"type": "reviews"}, metadata={"results": len(page.items)})
    out = []
    for rec in page.items:
        ev = rec.event
        m = ev.metadata or {}
        out.append({
            "id": ev.id, "time": ev.time, "reviewer": ev.actor.id, "since": m.get("since") or "(start of the log)",
            "until": m.get("until", ""), "events": m.get("events", ""), "comment": m.get("comment", ""),
            "filters": ", ".join(f"{k}={v}" for k, v in (m.get("filters") or {}).items() if k not in ("range", "since", "until")) or "(all events)",
            "search": m.get("search", ""), "index": rec.index,
        })  # fmt: skip
    return out


async def reviews_page(request: Request) -> Response:
    p = await person(request)
    rows = await run_in_threadpool(_history, request, p.tenant, p.user.username)
    printable = request.query_params.get("print") == "1"
    return render(request, "reviews.html", me=p, rows=rows, printable=printable)


async def reviews_csv(request: Request) -> Response:
    p = await person(request)
    rows = await run_in_threadpool(_history, request, p.tenant, p.user.username)
    buf = io.StringIO()
    cols = ["time", "reviewer", "since", "until", "filters", "events", "comment", "id", "index"]
    w = csv.writer(buf)
    w.writerow(cols)
    for r in rows:
        # a cell starting with = + - @ is a formula to a spreadsheet: quote it as text
        w.writerow(["'" + str(r[c]) if str(r[c])[:1] in ("=", "+", "-", "@") else r[c] for c in cols])
    return Response(buf.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="reviews-{p.tenant}.csv"', "Cache-Control": "no-store"})  # fmt: skip


routes = [
    Route("/reviews", reviews_page, methods=["GET"]),
    Route("/reviews", sign_off, methods=["POST"]),
    Route("/reviews.csv", reviews_csv, methods=["GET"]),
]
