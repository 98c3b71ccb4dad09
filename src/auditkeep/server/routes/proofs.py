"""Proofs, checkpoints and the verifier key."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from auditkeep.ledger.ledger import Ledger
from auditkeep.model.errors import ValidationError
from auditkeep.server.context import context
from auditkeep.server.errors import json_response
from auditkeep.server.params import int_param, int_value

PROOF_SCOPES = ("read", "verify")
NOTE_TYPE = "text/plain; charset=utf-8"


async def inclusion(request: Request) -> Response:
    ctx = context(request)
    caller = await ctx.guard.check(request, PROOF_SCOPES)
    index = int_param(request, "index")
    event_id = request.query_params.get("id") or None
    size = int_param(request, "size", 1)
    if (index is None) == (event_id is None):
        raise ValidationError("give exactly one of index or id", "index")
    proof = await run_in_threadpool(ctx.ledger.prove_inclusion, index, caller.tenant, size, event_id=event_id)
    ctx.auditor.read(
        "auditkeep.proof.read",
        caller.key,
        caller.tenant,
        {"proof": "inclusion", "index": proof.index, "id": event_id, "tree_size": proof.tree_size},
        {"type": "proof"},
        caller.client_ip,
    )
    return json_response(msgspec.to_builtins(proof))


async def consistency(request: Request) -> Response:
    ctx = context(request)
    caller = await ctx.guard.check(request, PROOF_SCOPES)
    old = int_param(request, "from")
    new = int_param(request, "to", 1)
    if old is None:
        raise ValidationError("required", "from")
    proof = await run_in_threadpool(ctx.ledger.prove_consistency, old, new, caller.tenant)
    body: dict[str, Any] = msgspec.to_builtins(proof)
    ctx.auditor.read(
        "auditkeep.proof.read",
        caller.key,
        caller.tenant,
        {"proof": "consistency", "from": proof.from_, "to": proof.to},
        {"type": "proof"},
        caller.client_ip,
    )
    return json_response(body)


def cosigned_latest(ledger: Ledger, tenant: str) -> str:
    """The latest checkpoint with its cosignatures (a writer signs one first if there is none)."""
    ledger.checkpoint(tenant)
    return ledger.cosigned_checkpoint(tenant)


async def latest_checkpoint(request: Request) -> Response:
    ctx = context(request)
    caller = await ctx.guard.check(request, PROOF_SCOPES)
    note = await run_in_threadpool(cosigned_latest, ctx.ledger, caller.tenant)
    return PlainTextResponse(note, media_type=NOTE_TYPE, headers={"Cache-Control": "private, max-age=1"})


async def checkpoint_at(request: Request) -> Response:
    ctx = context(request)
    caller = await ctx.guard.check(request, PROOF_SCOPES)
    size = int_value(request.path_params["tree_size"], "tree_size", 1)
    # Cosignatures arrive after the checkpoint: the note may gain lines, so only a short cache.
    note = await run_in_threadpool(ctx.ledger.cosigned_checkpoint, caller.tenant, size)
    return PlainTextResponse(note, media_type=NOTE_TYPE, headers={"Cache-Control": "private, max-age=60"})


async def pubkey(request: Request) -> Response:
    """The verifier key is public: anyone may check a checkpoint, no key needed."""
    ctx = context(request)
    return PlainTextResponse(ctx.ledger.identity.signer.verifier_key() + "\n", media_type=NOTE_TYPE)


routes = [
    Route("/v1/proofs/inclusion", inclusion, methods=["GET"]),
    Route("/v1/proofs/consistency", consistency, methods=["GET"]),
    Route("/v1/checkpoints/latest", latest_checkpoint, methods=["GET"]),
    Route("/v1/checkpoints/{tree_size}", checkpoint_at, methods=["GET"]),
    Route("/v1/pubkey", pubkey, methods=["GET"]),
]
