"""OpenTelemetry logs (OTLP/HTTP ``/v1/logs``) mapped to :class:`Event`.

A log record becomes an audit event through a small attribute convention (``audit.action``,
``audit.actor.id``, ...; see ``docs/sources/opentelemetry.md``). Both encodings are read:
``application/x-protobuf`` (``ExportLogsServiceRequest``, decoded with the
``opentelemetry-proto`` classes) and ``application/json`` (the OTLP JSON mapping:
lowerCamelCase keys, hex trace and span ids, integer enums, 64-bit integers as decimal
strings or numbers). :func:`otlp_response` and :func:`otlp_status` build the answers the
OTLP specification asks for.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import msgspec
import orjson
from google.protobuf.message import DecodeError as ProtoDecodeError
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as pb_service
from opentelemetry.proto.common.v1 import common_pb2 as pb_common
from opentelemetry.proto.logs.v1 import logs_pb2 as pb_logs

from auditkeep.model import (
    ACTOR_TYPES,
    CATEGORIES,
    OUTCOMES,
    SEVERITIES,
    Actor,
    Event,
    Resource,
    Source,
)
from auditkeep.model.jsonkeys import duplicate_key_reason
from auditkeep.model.timefmt import MAX_NS, format_rfc3339
from auditkeep.policy.limits import TooLarge, fit_metadata
from auditkeep.sources.base import SourceError
from auditkeep.sources.common import derived_id

SOURCE = "otlp"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MAX_BODY_BYTES = 64 << 20
BODY_PATHS = ("otel.body",)

# The convention: log record attributes that fill the event's fields.
ATTR_ACTION = "audit.action"
ATTR_ACTOR_ID = "audit.actor.id"
_STRING_FIELDS: dict[str, str] = {
    "audit.actor.id": "actor.id",
    "audit.actor.type": "actor.type",
    "audit.actor.name": "actor.name",
    "audit.actor.ip": "actor.ip",
    "audit.actor.user_agent": "actor.user_agent",
    "audit.actor.session_id": "actor.session_id",
    "audit.action": "action",
    "audit.outcome": "outcome",
    "audit.category": "category",
    "audit.severity": "severity",
    "audit.reason": "reason",
    "audit.resource.type": "resource.type",
    "audit.resource.id": "resource.id",
    "audit.resource.name": "resource.name",
    "audit.id": "id",
    "audit.tenant": "tenant",
    "audit.request_id": "source.request_id",
}
# Semantic-convention attributes used when the audit.* one is absent.
_FALLBACKS: dict[str, tuple[str, ...]] = {
    "actor.id": ("user.id", "enduser.id"),
    "actor.user_agent": ("user_agent.original",),
    "actor.session_id": ("session.id",),
}
_CHOICES: dict[str, tuple[str, ...]] = {
    "actor.type": ACTOR_TYPES,
    "outcome": OUTCOMES,
    "category": CATEGORIES,
    "severity": SEVERITIES,
}
_ACTION = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_TENANT = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
_HEX = re.compile(r"[0-9a-fA-F]*")
_ID_NAMESPACE = b"auditkeep:otlp:"


# --------------------------------------------------------------------------- JSON encoding


class _JKeyValue(msgspec.Struct, rename="camel"):
    key: str = ""
    value: _JAnyValue | None = None


class _JArray(msgspec.Struct, rename="camel"):
    values: list[_JAnyValue] = []


class _JKvList(msgspec.Struct, rename="camel"):
    values: list[_JKeyValue] = []


class _JAnyValue(msgspec.Struct, rename="camel"):
    string_value: str | None = None
    bool_value: bool | None = None
    int_value: int | str | None = None
    double_value: float | str | None = None
    array_value: _JArray | None = None
    kvlist_value: _JKvList | None = None
    bytes_value: str | None = None


class _JResource(msgspec.Struct, rename="camel"):
    attributes: list[_JKeyValue] = []
    dropped_attributes_count: int = 0


class _JScope(msgspec.Struct, rename="camel"):
    name: str = ""
    version: str = ""
    attributes: list[_JKeyValue] = []
    dropped_attributes_count: int = 0


class _JLogRecord(msgspec.Struct, rename="camel"):
    time_unix_nano: int | str = 0
    observed_time_unix_nano: int | str = 0
    severity_number: int | str = 0
    severity_text: str = ""
    body: _JAnyValue | None = None
    attributes: list[_JKeyValue] = []
    dropped_attributes_count: int = 0
    flags: int = 0
    trace_id: str = ""
    span_id: str = ""
    event_name: str = ""


class _JScopeLogs(msgspec.Struct, rename="camel"):
    scope: _JScope | None = None
    log_records: list[msgspec.Raw] = []
    schema_url: str = ""


class _JResourceLogs(msgspec.Struct, rename="camel"):
    resource: _JResource | None = None
    scope_logs: list[_JScopeLogs] = []
    schema_url: str = ""


class _JRequest(msgspec.Struct, rename="camel"):
    resource_logs: list[_JResourceLogs] = []


_json_request = msgspec.json.Decoder(_JRequest)
_json_record = msgspec.json.Decoder(_JLogRecord)
_json_encode = msgspec.json.Encoder()


class _Bad(ValueError):
    """A record that breaks the convention or the encoding; the message is the reason."""


def _j_value(v: _JAnyValue | None) -> Any:
    if v is None:
        return None
    if v.string_value is not None:
        return v.string_value
    if v.bool_value is not None:
        return v.bool_value
    if v.int_value is not None:
        return _int64(v.int_value, "intValue")
    if v.double_value is not None:
        d = v.double_value
        if isinstance(d, str):
            try:
                return float(d)  # "NaN", "Infinity": kept by the limits as text
            except ValueError:
                raise _Bad(f"doubleValue {d[:20]!r} is not a number") from None
        return d
    if v.array_value is not None:
        return [_j_value(x) for x in v.array_value.values]
    if v.kvlist_value is not None:
        return {kv.key: _j_value(kv.value) for kv in v.kvlist_value.values}
    if v.bytes_value is not None:
        return v.bytes_value  # base64 in JSON already; kept as that text
    return None


def _j_attrs(kvs: list[_JKeyValue]) -> dict[str, Any]:
    return {kv.key: _j_value(kv.value) for kv in kvs}


def _int64(v: int | str, name: str) -> int:
    if isinstance(v, int):
        return v
    try:
        return int(v)
    except ValueError:
        raise _Bad(f"{name} {v[:24]!r} is not an integer") from None


def _hex_id(text: str, size: int, name: str) -> str | None:
    """A trace or span id from JSON: hex as OTLP asks; base64 (protobuf's own JSON
    mapping, which some exporters send) is accepted too. All zeros means absent."""
    if not text:
        return None
    if len(text) == size * 2 and _HEX.fullmatch(text):
        raw = bytes.fromhex(text)
    else:
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != size:
            raise _Bad(f"{name} is not {size * 2} hex digits")
    return None if raw == bytes(size) else raw.hex()


# --------------------------------------------------------------------------- protobuf encoding


def _p_value(v: pb_common.AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "string_value":
        return v.string_value
    if kind == "bool_value":
        return v.bool_value
    if kind == "int_value":
        return v.int_value
    if kind == "double_value":
        return v.double_value
    if kind == "array_value":
        return [_p_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _p_value(kv.value) for kv in v.kvlist_value.values}
    return base64.b64encode(v.bytes_value).decode()


def _p_attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: _p_value(kv.value) for kv in kvs}


def _p_id(raw: bytes, size: int, name: str) -> str | None:
    if not raw:
        return None
    if len(raw) != size:
        raise _Bad(f"{name} is {len(raw)} bytes, not {size}")
    return None if raw == bytes(size) else raw.hex()


# --------------------------------------------------------------------------- mapping


class _Record(msgspec.Struct):
    """A log record in neutral form, whichever encoding it came in."""

    time: int
    observed: int
    severity_number: int | str
    severity_text: str
    body: Any
    attributes: dict[str, Any]
    trace_id: str | None
    span_id: str | None
    flags: int
    event_name: str
    dropped: int


def _text_attr(attrs: dict[str, Any], key: str) -> str | None:
    v = attrs.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, str | int):
        raise _Bad(f"attribute {key} must be a string")
    text = str(v)
    if len(text) > 8192:
        raise _Bad(f"attribute {key} is longer than 8192 characters")
    return text or None


def _map_record(
    rec: _Record, resource: dict[str, Any], scope: dict[str, Any] | None, id_seed: bytes
) -> Event:
    attrs = rec.attributes
    fields: dict[str, str] = {}
    consumed: set[str] = set()
    for key, field in _STRING_FIELDS.items():
        v = _text_attr(attrs, key)
        if v is not None:
            fields[field] = v
            consumed.add(key)
    for field, keys in _FALLBACKS.items():
        if field not in fields:
            for key in keys:
                v = _text_attr(attrs, key)
                if v is not None:
                    fields[field] = v
                    break
    action = fields.get("action")
    if action is None:
        raise _Bad(f"attribute {ATTR_ACTION} is missing")
    if len(action) > 256 or not _ACTION.fullmatch(action):
        raise _Bad(f"attribute {ATTR_ACTION} {action[:40]!r} is not a dotted name like user.login")
    actor_id = fields.get("actor.id")
    if actor_id is None:
        raise _Bad(f"attribute {ATTR_ACTOR_ID} is missing (nor user.id, enduser.id)")
    if len(actor_id) > 1024:
        raise _Bad(f"attribute {ATTR_ACTOR_ID} is longer than 1024 characters")
    for field, allowed in _CHOICES.items():
        v = fields.get(field)
        if v is not None and v not in allowed:
            raise _Bad(f"attribute audit.{field} {v[:20]!r} is not one of {', '.join(allowed)}")
    ip = fields.get("actor.ip")
    if ip is not None:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise _Bad(f"attribute audit.actor.ip {ip[:40]!r} is not an IP address") from None
    eid = fields.get("id")
    if eid is not None and not _UUID.fullmatch(eid):
        raise _Bad(f"attribute audit.id {eid[:40]!r} is not a UUID")
    tenant = fields.get("tenant")
    if tenant is not None and not _TENANT.fullmatch(tenant):
        raise _Bad(f"attribute audit.tenant {tenant[:40]!r} is not a tenant name")

    ns = rec.time or rec.observed
    if not 0 <= ns <= MAX_NS:
        raise _Bad("timeUnixNano is outside the years 1970 to 2261")
    when = format_rfc3339(ns) if ns > 0 else None

    otel: dict[str, Any] = {}
    if rec.body is not None:
        otel["body"] = rec.body
    rest = {k: v for k, v in attrs.items() if k not in consumed}
    if rest:
        otel["attributes"] = rest
    res_rest = {k: v for k, v in resource.items() if k not in ("service.name", "host.name")}
    if res_rest:
        otel["resource"] = res_rest
    if scope:
        otel["scope"] = scope
    if rec.severity_text:
        otel["severity_text"] = rec.severity_text
    if rec.severity_number:
        otel["severity_number"] = rec.severity_number
    if rec.span_id:
        otel["span_id"] = rec.span_id
    if rec.flags:
        otel["flags"] = rec.flags
    if rec.event_name:
        otel["event_name"] = rec.event_name
    if rec.dropped:
        otel["dropped_attributes_count"] = rec.dropped
    meta: dict[str, Any] | None = None
    if otel:
        meta = {"otel": otel}
        try:
            fit_metadata(meta, drop_first=BODY_PATHS)
        except TooLarge as exc:
            raise _Bad(str(exc)) from None

    service = resource.get("service.name")
    host = resource.get("host.name")
    resource_fields = {
        k: fields[f"resource.{k}"] for k in ("type", "id", "name") if f"resource.{k}" in fields
    }
    return Event(
        actor=Actor(
            id=actor_id,
            type=fields.get("actor.type"),  # type: ignore[arg-type]
            name=fields.get("actor.name"),
            ip=ip,
            user_agent=fields.get("actor.user_agent"),
            session_id=fields.get("actor.session_id"),
        ),
        action=action,
        id=eid.lower() if eid else _derived_id(id_seed),
        time=when,
        tenant=tenant,
        category=fields.get("category"),  # type: ignore[arg-type]
        resource=Resource(**resource_fields) if resource_fields else None,
        outcome=fields.get("outcome"),  # type: ignore[arg-type]
        reason=fields.get("reason"),
        source=Source(
            service=service[:8192] if isinstance(service, str) and service else None,
            host=host[:8192] if isinstance(host, str) and host else None,
            request_id=fields.get("source.request_id"),
            trace_id=rec.trace_id,
        ),
        severity=fields.get("severity"),  # type: ignore[arg-type]
        metadata=meta,
    )


def _derived_id(seed: bytes) -> str:
    """An id from the record's own bytes, so an exporter's retry is idempotent."""
    return derived_id(_ID_NAMESPACE, seed)


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
            return [], [SourceError(SOURCE, f"bad gzip data: {exc}", body)]
        body = inflated
    if len(body) > MAX_BODY_BYTES:
        return [], [
            SourceError(SOURCE, f"request is {len(body)} bytes, more than {MAX_BODY_BYTES}", body)
        ]
    media = _media_type(content_type)
    if media in (PROTOBUF, "application/protobuf"):
        return _parse_protobuf(body)
    if media == JSON:
        return _parse_json(body)
    return [], [SourceError(SOURCE, f"unsupported content type {content_type!r}", body)]


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
        return [], [SourceError(SOURCE, f"malformed protobuf: {exc}", body)]

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
        return [], [SourceError(SOURCE, f"not an OTLP logs request: {exc}", body)]
    except msgspec.DecodeError as exc:
        return [], [SourceError(SOURCE, f"malformed JSON: {exc}", body)]
    # attributes and bodies are kept in leaves: a repeated key would give them two readings
    try:
        plain: Any = orjson.loads(body)
    except orjson.JSONDecodeError:  # e.g. an integer past 64 bits: the exact check decides
        plain = None
    repeated = duplicate_key_reason(body, plain)
    if repeated is not None:
        return [], [SourceError(SOURCE, repeated, body)]

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
