"""An actor's timeline: what one actor did over a time range, oldest first, by day."""

from __future__ import annotations

from itertools import groupby
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from auditkeep.console.audit import record
from auditkeep.console.search import PRESET_LABELS, PRESETS
from auditkeep.console.web import console, person, render
from auditkeep.model.errors import ValidationError
from auditkeep.model.timefmt import now_ns

LIMIT = 1000
SEC = 1_000_000_000


async def timeline_page(request: Request) -> Response:
    ctx = console(request)
    p = await person(request)
    actor = request.path_params["actor"]
    if not actor or len(actor) > 1024:
        raise ValidationError("expected an actor id of 1 to 1024 characters", "actor")
    preset = request.query_params.get("range", "7d")
    if preset not in PRESETS or preset == "custom":
        raise ValidationError(f"must be one of {', '.join(k for k in PRESETS if k != 'custom')}", "range")
    seconds = PRESETS[preset]
    since = None if seconds is None else now_ns() - seconds * SEC

    def load() -> Any:
        page = ctx.ledger.search(p.tenant, order="newest", limit=LIMIT, actor=actor, since=since)
        record(ctx, request, p.tenant, p.user.username, "auditkeep.console.timeline", category="data_access",
               resource={"type": "actor", "id": actor}, metadata={"range": preset, "results": len(page.items)})
        return page

    page = await run_in_threadpool(load)
    items = list(reversed(page.items))  # the newest LIMIT, shown oldest first
    days = [(day, list(recs)) for day, recs in groupby(items, key=lambda r: (r.event.time or "")[:10])]
    return render(request, "timeline.html", me=p, actor=actor, days=days, preset=preset, presets=PRESET_LABELS,
                  more=page.next_cursor is not None, limit=LIMIT)  # fmt: skip


routes = [Route("/actors/{actor:path}", timeline_page, methods=["GET"])]
