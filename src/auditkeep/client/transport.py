"""Sending one batch to ``POST /v1/events`` and classifying the answer.

The worker needs to know one of four things about an attempt:

- ``OK``: every event has a receipt (or had one already: resends are idempotent);
- ``RETRY``: the network failed, or the server is busy or down (408, 429, 5xx): wait and
  send the same batch again;
- ``STUCK``: the request cannot succeed until someone fixes the set-up (401, 403, 404,
  415): keep the events, retry slowly, say so in the log;
- ``REFUSED``: the server refused this batch's content (400, 409, 413, 422, ...): some
  event in it is poison, or the batch is too big; split it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec

from auditkeep.client.backoff import parse_retry_after

__all__ = ["Answer", "Kind", "classify", "post_batch"]

_STUCK = frozenset({401, 403, 404, 405, 415})
_RETRY_4XX = frozenset({408, 425, 429})
_decode_json = msgspec.json.Decoder().decode


class Kind(enum.Enum):
    OK = "ok"
    RETRY = "retry"
    STUCK = "stuck"
    REFUSED = "refused"


@dataclass(frozen=True)
class Answer:
    kind: Kind
    status: int | None = None
    detail: str = ""
    retry_after: float | None = None
    position: int | None = None  # the refused event's position, when the server names it


def body_of(raw: bytes) -> Any:
    try:
        return _decode_json(raw)
    except msgspec.DecodeError:
        return None


def classify(status: int, headers: httpx.Headers, content: bytes, count: int) -> Answer:
    """What a response with ``status`` means for a batch of ``count`` events."""
    if 200 <= status < 300:
        return Answer(Kind.OK, status)
    body = body_of(content)
    detail = str(body.get("error", "")) if isinstance(body, dict) else content[:200].decode("utf-8", "replace")
    if status in _RETRY_4XX or status >= 500:
        return Answer(Kind.RETRY, status, detail, parse_retry_after(headers.get("retry-after")))
    if status in _STUCK:
        return Answer(Kind.STUCK, status, detail, parse_retry_after(headers.get("retry-after")))
    position = body.get("position") if isinstance(body, dict) else None
    if not (isinstance(position, int) and not isinstance(position, bool) and 0 <= position < count):
        position = None
    return Answer(Kind.REFUSED, status, detail, None, position)


def post_batch(http: httpx.Client, tenant: str | None, events: list[bytes], source: str | None = None) -> Answer:
    """One attempt at delivering ``events`` (JSON objects) as one request; ``source`` names
    the gateway whose capture policy the server applies (default: ``api``)."""
    body = b"[" + b",".join(events) + b"]"
    params = {"tenant": tenant} if tenant else {}
    if source:
        params["source"] = source
    try:
        r = http.post("/v1/events", content=body, params=params or None)
    except httpx.TransportError as exc:
        return Answer(Kind.RETRY, None, f"{type(exc).__name__}: {exc}")
    return classify(r.status_code, r.headers, r.content, len(events))
