"""Reading an ingest body within bounds: content type, size (also after gunzip), time."""

from __future__ import annotations

import asyncio
import zlib

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request

from auditkeep.model.event import Event
from auditkeep.model.validate import decode_batch
from auditkeep.server.errors import ApiError

JSON_TYPES = frozenset({"application/json", "application/x-ndjson", "application/jsonl", "application/json-seq"})
# Below this many bytes, decoding inline is cheaper than a hop to the thread pool.
INLINE_BYTES = 32 * 1024


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def check_content_type(request: Request) -> None:
    kind = media_type(request)
    if kind not in JSON_TYPES:
        shown = kind or "none"
        raise ApiError(415, f"unsupported content type {shown}; send application/json or application/x-ndjson", reason="media_type")


async def read_limited(request: Request, limit: int, timeout: float) -> bytes:
    """The raw (possibly compressed) body; 413 past ``limit`` bytes, 408 past ``timeout``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ApiError(400, "Content-Length is not a number") from None
        if size > limit:
            raise ApiError(413, f"body of {size} bytes is larger than the {limit} allowed", reason="too_large")

    async def collect() -> bytes:
        chunks: list[bytes] = []
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise ApiError(413, f"body is larger than the {limit} bytes allowed", reason="too_large")
            chunks.append(chunk)
        return b"".join(chunks)

    try:
        return await asyncio.wait_for(collect(), timeout)
    except TimeoutError:
        raise ApiError(408, f"the body did not arrive within {timeout:g} seconds", reason="timeout") from None
    except ClientDisconnect:
        raise ApiError(400, "client disconnected before sending the whole body", reason="disconnect") from None


def gunzip(data: bytes, limit: int) -> bytes:
    """Decompress a gzip body, refusing (413) when it would exceed ``limit`` bytes."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(data, limit + 1)
        if len(out) > limit or d.unconsumed_tail:
            raise ApiError(413, f"decompressed body is larger than the {limit} bytes allowed", reason="too_large")
        out += d.flush()
    except zlib.error:
        raise ApiError(400, "body is not valid gzip", reason="malformed") from None
    if len(out) > limit:
        raise ApiError(413, f"decompressed body is larger than the {limit} bytes allowed", reason="too_large")
    if not d.eof:
        raise ApiError(400, "gzip body is truncated", reason="malformed")
    return out


def decode(raw: bytes, encoding: str, limit: int, max_events: int) -> list[Event]:
    """Decompress (if asked) and decode a batch; CPU work, so large bodies run in a thread."""
    if encoding == "gzip":
        raw = gunzip(raw, limit)
    if not raw.strip():
        raise ApiError(400, "request body is empty; send one event, a JSON array or NDJSON", reason="malformed")
    try:
        events = decode_batch(raw)
    except RecursionError:  # msgspec's guard against pathological nesting
        raise ApiError(400, "malformed JSON: nested too deeply", reason="malformed") from None
    if len(events) > max_events:
        raise ApiError(413, f"{len(events)} events in one request, more than the {max_events} allowed", reason="too_many")
    return events


async def read_body(request: Request, limit: int, timeout: float) -> tuple[bytes, str]:
    """The raw body of an ingest request and its content encoding (``identity`` or ``gzip``),
    after the content type and encoding are checked; decode it with :func:`decode`."""
    check_content_type(request)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", "x-gzip"):
        raise ApiError(415, f"unsupported content encoding {encoding}; use gzip or none", reason="media_type")
    encoding = "gzip" if encoding == "x-gzip" else encoding
    return await read_limited(request, limit, timeout), encoding


def inline(raw: bytes, encoding: str) -> bool:
    """Whether decoding ``raw`` on the event loop costs less than a hop to the thread pool."""
    return len(raw) < INLINE_BYTES and encoding == "identity"


async def read_events(request: Request, limit: int, max_events: int, timeout: float) -> list[Event]:
    raw, encoding = await read_body(request, limit, timeout)
    if inline(raw, encoding):
        return decode(raw, encoding, limit, max_events)
    return await run_in_threadpool(decode, raw, encoding, limit, max_events)
