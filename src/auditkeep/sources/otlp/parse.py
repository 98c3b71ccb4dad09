"""A whole ``ExportLogsServiceRequest`` body read (protobuf or JSON) into events and refusals."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any

import msgspec
import orjson
from google.protobuf.message import DecodeError as ProtoDecodeError
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as pb_service
from opentelemetry.proto.logs.v1 import logs_pb2 as pb_logs

from auditkeep.model import (
    Event,
)
from auditkeep.model.jsonkeys import duplicate_key_reason
from auditkeep.sources.base import SourceError, UnreadableRequest
from auditkeep.sources.otlp.convention import JSON, MAX_BODY_BYTES, PROTOBUF, SOURCE, _Bad
from auditkeep.sources.otlp.json_form import (
    _hex_id,
    _int64,
    _j_attrs,
    _j_value,
    _JResource,
    _JScope,
    _json_encode,
    _json_record,
    _json_request,
)
from auditkeep.sources.otlp.mapping import _map_record, _Record
from auditkeep.sources.otlp.protobuf_form import _p_attrs, _p_id, _p_value

# --------------------------------------------------------------------------- requests


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def parse_otlp_logs(body: bytes, content_type: str) -> tuple[list[Event], list[SourceError]]:
    """Events from an OTLP/HTTP logs request.

    A log record that cannot be mapped becomes a :class:`SourceError` whose ``raw`` is a
    request (same encoding) holding only that record, so it can be sent again after a fix.
    A body that cannot be decoded at all becomes one error holding the body.
    """
    body = bytes(body)
    if body[:2] == b"\x1f\x8b":
        try:
            d = zlib.decompressobj(wbits=31)
            inflated = d.decompress(body, MAX_BODY_BYTES)
            if d.unconsumed_tail or not d.eof:
                raise ValueError("too large or truncated")
        except (zlib.error, ValueError) as exc:
            return [], [UnreadableRequest(SOURCE, f"bad gzip data: {exc}", body)]
        body = inflated
    if len(body) > MAX_BODY_BYTES:
        return [], [
            UnreadableRequest(SOURCE, f"request is {len(body)} bytes, more than {MAX_BODY_BYTES}", body)
        ]
    media = _media_type(content_type)
    if media in (PROTOBUF, "application/protobuf"):
        return _parse_protobuf(body)
    if media == JSON:
        return _parse_json(body)
    return [], [UnreadableRequest(SOURCE, f"unsupported content type {content_type!r}", body)]


def _collect(
    items: Iterator[tuple[_Record | _Bad, dict[str, Any], dict[str, Any] | None, bytes, Any]],
    raw_for: Any,
) -> tuple[list[Event], list[SourceError]]:
    events: list[Event] = []
    errors: list[SourceError] = []
    for rec, resource, scope, seed, ctx in items:
        try:
            if isinstance(rec, _Bad):
                raise rec
            events.append(_map_record(rec, resource, scope, seed))
        except _Bad as exc:
            errors.append(SourceError(SOURCE, str(exc), raw_for(ctx)))
    return events, errors


def _parse_protobuf(body: bytes) -> tuple[list[Event], list[SourceError]]:
    try:
        req = pb_service.ExportLogsServiceRequest.FromString(body)
    except (ProtoDecodeError, RuntimeError, ValueError) as exc:
        return [], [UnreadableRequest(SOURCE, f"malformed protobuf: {exc}", body)]

    def records() -> Iterator[
        tuple[_Record | _Bad, dict[str, Any], dict[str, Any] | None, bytes, Any]
    ]:
        for rl in req.resource_logs:
            resource = _p_attrs(rl.resource.attributes)
            res_seed = rl.resource.SerializeToString(deterministic=True)
            for sl in rl.scope_logs:
                scope = _scope(sl.scope.name, sl.scope.version, _p_attrs(sl.scope.attributes))
                seed = res_seed + b"\x00" + sl.scope.SerializeToString(deterministic=True) + b"\x00"
                for lr in sl.log_records:
                    one: _Record | _Bad
                    try:
                        one = _Record(
                            time=lr.time_unix_nano,
                            observed=lr.observed_time_unix_nano,
                            severity_number=lr.severity_number,
                            severity_text=lr.severity_text,
                            body=_p_value(lr.body) if lr.HasField("body") else None,
                            attributes=_p_attrs(lr.attributes),
                            trace_id=_p_id(lr.trace_id, 16, "traceId"),
                            span_id=_p_id(lr.span_id, 8, "spanId"),
                            flags=lr.flags,
                            event_name=lr.event_name,
                            dropped=lr.dropped_attributes_count,
                        )
                    except _Bad as exc:
                        one = exc
                    yield (
                        one,
                        resource,
                        scope,
                        seed + lr.SerializeToString(deterministic=True),
                        (rl, sl, lr),
                    )

    def raw_for(ctx: Any) -> bytes:
        rl, sl, lr = ctx
        single = pb_service.ExportLogsServiceRequest(
            resource_logs=[
                pb_logs.ResourceLogs(
                    resource=rl.resource,
                    schema_url=rl.schema_url,
                    scope_logs=[
                        pb_logs.ScopeLogs(
                            scope=sl.scope, schema_url=sl.schema_url, log_records=[lr]
                        )
                    ],
                )
            ]
        )
        return single.SerializeToString(deterministic=True)

    return _collect(records(), raw_for)


def _scope(name: str, version: str, attrs: dict[str, Any]) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    if name:
        out["name"] = name
    if version:
        out["version"] = version
    if attrs:
        out["attributes"] = attrs
    return out or None


def _parse_json(body: bytes) -> tuple[list[Event], list[SourceError]]:
    try:
        req = _json_request.decode(body)
    except msgspec.ValidationError as exc:
        return [], [UnreadableRequest(SOURCE, f"not an OTLP logs request: {exc}", body)]
    except msgspec.DecodeError as exc:
        return [], [UnreadableRequest(SOURCE, f"malformed JSON: {exc}", body)]
    # attributes and bodies are kept in leaves: a repeated key would give them two readings
    try:
        plain: Any = orjson.loads(body)
    except orjson.JSONDecodeError:  # e.g. an integer past 64 bits: the exact check decides
        plain = None
    repeated = duplicate_key_reason(body, plain)
    if repeated is not None:
        return [], [UnreadableRequest(SOURCE, repeated, body)]

    def records() -> Iterator[
        tuple[_Record | _Bad, dict[str, Any], dict[str, Any] | None, bytes, Any]
    ]:
        for rl in req.resource_logs:
            res = rl.resource or _JResource()
            resource = _j_attrs(res.attributes)
            res_seed = _json_encode.encode(res)
            for sl in rl.scope_logs:
                sc = sl.scope or _JScope()
                scope = _scope(sc.name, sc.version, _j_attrs(sc.attributes))
                seed = res_seed + b"\x00" + _json_encode.encode(sc) + b"\x00"
                for raw in sl.log_records:
                    one: _Record | _Bad
                    try:
                        lr = _json_record.decode(raw)
                        one = _Record(
                            time=_int64(lr.time_unix_nano, "timeUnixNano"),
                            observed=_int64(lr.observed_time_unix_nano, "observedTimeUnixNano"),
                            severity_number=lr.severity_number,
                            severity_text=lr.severity_text,
                            body=_j_value(lr.body),
                            attributes=_j_attrs(lr.attributes),
                            trace_id=_hex_id(lr.trace_id, 16, "traceId"),
                            span_id=_hex_id(lr.span_id, 8, "spanId"),
                            flags=lr.flags,
                            event_name=lr.event_name,
                            dropped=lr.dropped_attributes_count,
                        )
                    except msgspec.ValidationError as exc:
                        one = _Bad(f"not an OTLP log record: {exc}")
                    except _Bad as exc:
                        one = exc
                    yield one, resource, scope, seed + bytes(raw), (rl, sl, raw)

    def raw_for(ctx: Any) -> bytes:
        rl, sl, raw = ctx
        single = {
            "resourceLogs": [
                {
                    "resource": rl.resource,
                    "schemaUrl": rl.schema_url,
                    "scopeLogs": [
                        {"scope": sl.scope, "schemaUrl": sl.schema_url, "logRecords": [raw]}
                    ],
                }
            ]
        }
        return _json_encode.encode(single)

    return _collect(records(), raw_for)
