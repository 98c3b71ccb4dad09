"""The witness over HTTP: ``POST /add-checkpoint`` (C2SP tlog-witness) on Starlette.

There is no authentication beyond the log's signature on the checkpoint, as the spec has
it; the body is read up to a bound and refused whole beyond it (413).
"""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from auditkeep.witness.witness import MAX_REQUEST_BYTES, Refusal, Witness

__all__ = ["create_witness_app"]

log = logging.getLogger("auditkeep.witness")


async def _read_bounded(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_REQUEST_BYTES):
        raise Refusal(413, f"request is larger than {MAX_REQUEST_BYTES} bytes")
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > MAX_REQUEST_BYTES:
            raise Refusal(413, f"request is larger than {MAX_REQUEST_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def create_witness_app(witness: Witness) -> Starlette:
    async def add_checkpoint(request: Request) -> Response:
        try:
            body = await _read_bounded(request)
            # The check and the fsync of the new state block: keep them off the event loop.
            lines = await run_in_threadpool(witness.add_checkpoint, body)
        except Refusal as exc:
            if exc.status in (409, 422):
                log.warning("refused a checkpoint: %s", exc.message)
            text = exc.body if exc.body is not None else exc.message + "\n"
            # Bytes and an explicit header: Starlette would add a charset to text/x.tlog.size.
            return Response(text.encode(), status_code=exc.status, headers={"content-type": exc.content_type})
        return PlainTextResponse(lines)

    async def health(request: Request) -> Response:
        return PlainTextResponse(witness.cosigner.verifier().vkey() + "\n")

    return Starlette(
        routes=[
            Route("/add-checkpoint", add_checkpoint, methods=["POST"]),
            Route("/", health, methods=["GET"]),
        ]
    )
