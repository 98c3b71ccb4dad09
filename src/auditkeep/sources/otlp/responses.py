"""The answers the OTLP specification asks for: success, partial success, and a ``Status``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as pb_service

from auditkeep.sources.base import SourceError
from auditkeep.sources.otlp.convention import JSON, PROTOBUF
from auditkeep.sources.otlp.parse import _media_type

# --------------------------------------------------------------------------- responses


def otlp_response(rejected: int = 0, message: str = "", content_type: str = PROTOBUF) -> bytes:
    """The body of a successful (HTTP 200) export response, in the request's encoding.

    With ``rejected`` > 0 (or a warning ``message``) it carries ``partial_success``, as the
    OTLP specification asks; otherwise it is the empty response.
    """
    if rejected < 0:
        raise ValueError("rejected must not be negative")
    json_out = _media_type(content_type) == JSON
    if not rejected and not message:
        return b"{}" if json_out else b""
    if json_out:
        partial: dict[str, Any] = {"rejectedLogRecords": str(rejected)} if rejected else {}
        if message:
            partial["errorMessage"] = message
        return orjson.dumps({"partialSuccess": partial})
    resp = pb_service.ExportLogsServiceResponse(
        partial_success=pb_service.ExportLogsPartialSuccess(
            rejected_log_records=rejected, error_message=message
        )
    )
    return resp.SerializeToString()


def otlp_partial_success(
    errors: Sequence[SourceError], content_type: str = PROTOBUF, shown: int = 3
) -> bytes:
    """:func:`otlp_response` for the records :func:`parse_otlp_logs` refused."""
    if not errors:
        return otlp_response(0, "", content_type)
    reasons = sorted({e.reason for e in errors})
    text = "; ".join(reasons[:shown]) + (
        f"; and {len(reasons) - shown} more" if len(reasons) > shown else ""
    )
    return otlp_response(len(errors), f"{len(errors)} log record(s) rejected: {text}", content_type)


def otlp_status(message: str, content_type: str = PROTOBUF, code: int = 3) -> bytes:
    """A ``google.rpc.Status`` body for a refused request (HTTP 400; code 3 is
    INVALID_ARGUMENT), in the request's encoding."""
    if _media_type(content_type) == JSON:
        return orjson.dumps({"code": code, "message": message})
    text = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)
