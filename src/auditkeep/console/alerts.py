"""Alerts of the tenant: list by state; auditors acknowledge or resolve with a comment
(through the alert service, which records each change in the tenant's log)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from auditkeep.alerts.state import MAX_NOTE, AlertRecord, TransitionError, decode_cursor
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
from auditkeep.model.errors import ValidationError

STATUSES = ("open", "acknowledged", "resolved")
PAGE_SIZE = 50


async def alerts_page(request: Request) -> Response:
    ctx = console(request)
    p = await person(request)
    status = request.query_params.get("status", "open")
    if status not in (*STATUSES, "all"):
        raise ValidationError(f"must be one of {', '.join(STATUSES)} or all", "status")
    cursor = request.query_params.get("cursor", "")
    try:
        decode_cursor(cursor)
    except ValueError:
        raise ValidationError("not a cursor of a previous page", "cursor") from None
    # keyset paging, newest first: the cursor is the creation time of the last alert shown, so
    # a page never repeats or skips an alert as new ones are raised
    items, nxt = await run_in_threadpool(
        ctx.alerts.book.find, p.tenant, None if status == "all" else status, None, PAGE_SIZE, cursor or None
    )
    return render(request, "alerts.html", me=p, alerts=items, current=status, statuses=(*STATUSES, "all"),
                  max_note=MAX_NOTE, cursor=cursor, next_cursor=nxt)  # fmt: skip


async def change_alert(request: Request) -> Response:
    ctx = console(request)
    p = await person(request, "auditor")
    form = await read_form(request)
    check_csrf(request, form, p.session.csrf)
    alert_id = request.path_params["alert_id"]
    op = field(form, "op", 20)
    note = field(form, "note", MAX_NOTE).strip() or None
    book = ctx.alerts.book

    def change() -> AlertRecord:
        if op == "ack":
            return book.acknowledge(alert_id, p.user.username, tenant=p.tenant, note=note, actor_type="user")
        if op == "resolve":
            return book.resolve(alert_id, p.user.username, tenant=p.tenant, note=note, actor_type="user")
        raise Refused(400, "Unknown alert operation.")

    try:
        await run_in_threadpool(change)
    except TransitionError as exc:
        raise Refused(409, str(exc)) from None
    back = field(form, "back", 20)
    return redirect(f"{PREFIX}/alerts?status={back if back in (*STATUSES, 'all') else 'open'}")


routes = [
    Route("/alerts", alerts_page, methods=["GET"]),
    Route("/alerts/{alert_id}", change_alert, methods=["POST"]),
]
