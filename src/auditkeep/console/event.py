"""An event's page: its fields, its raw JSON, the exact committed leaf, and the data the
browser needs to check the inclusion proof itself (static/verify.js)."""

from __future__ import annotations

import base64
from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from auditkeep.console.audit import record
from auditkeep.console.web import console, person, render
from auditkeep.errors import NotFound
from auditkeep.model.timefmt import format_rfc3339

MAX_ID = 64


def _rows(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Flattened ``path: value`` rows of an event, in field order."""
    out: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _rows(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, list):
        out.append((prefix, msgspec.json.encode(value).decode()))
    else:
        out.append((prefix, "" if value is None else str(value)))
    return out


async def event_page(request: Request) -> Response:
    ctx = console(request)
    p = await person(request)
    event_id = request.path_params["event_id"]
    if len(event_id) > MAX_ID:
        raise NotFound("not an event id")

    def load() -> dict[str, Any]:
        lg = ctx.ledger
        rec = lg.get(event_id, p.tenant)
        leaf = lg.entry(rec.index, p.tenant).leaf
        out: dict[str, Any] = {"rec": rec, "leaf": leaf}
        check: dict[str, Any] = {
            "index": rec.index,
            "leaf": base64.b64encode(leaf).decode("ascii"),
            "origin": lg.origin(p.tenant),
            "server_key": lg.pubkey(p.tenant),
            "log_key": lg.pubkey(),
        }
        try:
            proof = lg.prove_inclusion(rec.index, p.tenant)
            check.update(tree_size=proof.tree_size, hashes=proof.hashes, checkpoint=proof.checkpoint)
            row = lg.store.checkpoint_at(lg.tenant_id(p.tenant), proof.tree_size)
            check["signed_at"] = format_rfc3339(row.signed_ns) if row else None
        except NotFound as exc:
            check["unavailable"] = str(exc)
        out["check"] = check
        record(ctx, request, p.tenant, p.user.username, "auditkeep.console.event.read", category="data_access",
               resource={"type": "event", "id": event_id}, metadata={"index": rec.index, "proof": "unavailable" not in check})
        return out

    got = await run_in_threadpool(load)
    rec = got["rec"]
    event = msgspec.to_builtins(rec.event)
    return render(
        request, "event.html",
        me=p, rec=rec, rows=_rows(event), raw=msgspec.json.format(msgspec.json.encode(event), indent=2).decode(),
        leaf_text=got["leaf"].decode("utf-8", "replace"), leaf_size=len(got["leaf"]), check=got["check"],
    )  # fmt: skip


routes = [Route("/events/{event_id}", event_page, methods=["GET"])]
