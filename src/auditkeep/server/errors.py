"""Errors as JSON: every refusal is ``{"error": "..."}`` with a 4xx status, and anything
unexpected a 500 that says nothing about the internals."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from auditkeep.errors import APIError, Expired, NotFound
from auditkeep.log.checkpoint import CheckpointError
from auditkeep.log.proofs import ProofError
from auditkeep.model.errors import ConflictError, MalformedJSON, ValidationError
from auditkeep.retention.holds import HoldError
from auditkeep.server.ratelimit import retry_after
from auditkeep.store.base import StoreUnavailable

log = logging.getLogger("auditkeep.server")


class ApiError(APIError):
    """A refusal with an HTTP status and a message for the client: :class:`auditkeep.errors.APIError`
    with the routes' argument order (``headers`` third); ``str()`` is the message alone."""

    def __init__(
        self,
        status: int,
        message: str,
        headers: Mapping[str, str] | None = None,
        reason: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(status, message, headers=headers, reason=reason, **extra)

    def __str__(self) -> str:
        return self.message


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers=dict(headers or {}), media_type="application/json")


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None, **extra: Any) -> Response:
    return json_response({"error": message, **extra}, status, headers)


def validation_body(exc: ValidationError) -> dict[str, Any]:
    body = exc.to_dict()
    body.setdefault("position", None)
    return body


def to_response(exc: BaseException) -> Response | None:
    """The JSON response for an error a client can cause; None for anything else."""
    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.message, exc.headers, **exc.extra)
    if isinstance(exc, ValidationError):
        if isinstance(exc, MalformedJSON):
            return json_response(validation_body(exc), 400)
        return json_response(validation_body(exc), 422)
    if isinstance(exc, HoldError):
        return error_response(409, str(exc), reason="held")
    if isinstance(exc, ConflictError):
        return error_response(409, str(exc), position=exc.position, id=exc.event_id)
    if isinstance(exc, Expired):
        # Gone, not missing: the entry's leaf hash stays in the tree and proofs of it verify.
        body = {"error": str(exc), "status": "expired", "index": exc.index, "leaf_hash": exc.leaf_hash}
        return json_response(body, 410)
    if isinstance(exc, NotFound):
        return error_response(404, str(exc))
    if isinstance(exc, (ProofError, CheckpointError)):
        return error_response(422, str(exc))
    if isinstance(exc, StoreUnavailable):
        return error_response(503, "storage unavailable; retry later", {"Retry-After": retry_after(exc.retry_after)})
    if isinstance(exc, HTTPException):
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        return error_response(exc.status_code, message, exc.headers)
    return None


async def handle(request: Request, exc: Exception) -> Response:
    """Starlette exception handler for the known error types."""
    response = to_response(exc)
    if response is None:  # not reached: only registered for the known types
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal server error")
    return response


HANDLED: tuple[type[Exception], ...] = (
    ApiError,
    ValidationError,
    ConflictError,
    HoldError,
    NotFound,
    ProofError,
    CheckpointError,
    StoreUnavailable,
    HTTPException,
)
