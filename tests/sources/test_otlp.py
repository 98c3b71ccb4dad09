"""OTLP/HTTP logs: protobuf built with the real opentelemetry-proto classes, JSON by hand."""

from __future__ import annotations

import gzip
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from auditkeep.model import Event, validate_event
from auditkeep.sources.base import UnreadableRequest
from auditkeep.sources.otlp import (
    otlp_partial_success,
    otlp_response,
    otlp_status,
    parse_otlp_logs,
)

PB = "application/x-protobuf"
JS = "application/json"
TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")
SPAN = bytes.fromhex("eee19b7ec3c1b174")
T_NS = 1_714_557_600_123_456_789  # 2024-05-01T10:00:00.123456789Z


def _any(v: Any) -> AnyValue:
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    if isinstance(v, bytes):
        return AnyValue(bytes_value=v)
    if isinstance(v, list):
        return AnyValue(array_value=ArrayValue(values=[_any(x) for x in v]))
    if isinstance(v, dict):
        return AnyValue(kvlist_value=KeyValueList(values=_kvs(v)))
    return AnyValue(string_value=v)


def _kvs(d: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=_any(v)) for k, v in d.items()]


AUDIT = {
    "audit.action": "user.login",
    "audit.actor.id": "u-42",
    "audit.actor.type": "user",
    "audit.actor.name": "Alice",
    "audit.actor.ip": "203.0.113.7",
    "audit.outcome": "denied",
    "audit.category": "authentication",
    "audit.resource.type": "account",
    "audit.resource.id": "acct-1",
    "audit.resource.name": "Main account",
    "audit.reason": "bad password",
    "audit.severity": "medium",
    "http.request.method": "POST",
    "retries": 2,
}


def _record(attrs: dict[str, Any], **kw: Any) -> LogRecord:
    base: dict[str, Any] = {
        "time_unix_nano": T_NS,
        "severity_number": 13,
        "severity_text": "WARN",
        "body": _any("login refused"),
        "trace_id": TRACE,
        "span_id": SPAN,
    }
    base.update(kw)
    return LogRecord(attributes=_kvs(attrs), **base)


def _request(*records: LogRecord, resource: dict[str, Any] | None = None) -> bytes:
    res = (
        resource
        if resource is not None
        else {"service.name": "billing", "host.name": "web-1", "cloud.region": "eu"}
    )
    req = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=Resource(attributes=_kvs(res)),
                scope_logs=[
                    ScopeLogs(
                        scope=InstrumentationScope(name="auth", version="1.2"),
                        log_records=list(records),
                    )
                ],
            )
        ]
    )
    return req.SerializeToString()


def _json_value(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}  # int64: a decimal string in OTLP/JSON
    if isinstance(v, dict):
        return {
            "kvlistValue": {"values": [{"key": k, "value": _json_value(x)} for k, x in v.items()]}
        }
    if isinstance(v, list):
        return {"arrayValue": {"values": [_json_value(x) for x in v]}}
    return {"stringValue": v}


def _json_request(records: list[dict[str, Any]]) -> bytes:
    return orjson.dumps(
        {
            "resourceLogs": [
                {
                    "resource": {
                        "attributes": [
                            {"key": "service.name", "value": {"stringValue": "billing"}},
                            {"key": "host.name", "value": {"stringValue": "web-1"}},
                        ]
                    },
                    "scopeLogs": [{"scope": {"name": "auth"}, "logRecords": records}],
                }
            ]
        }
    )


def _json_record(attrs: dict[str, Any], **kw: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "timeUnixNano": str(T_NS),
        "severityNumber": 13,
        "severityText": "WARN",
        "body": {"stringValue": "login refused"},
        "traceId": TRACE.hex().upper(),
        "spanId": SPAN.hex(),
        "attributes": [{"key": k, "value": _json_value(v)} for k, v in attrs.items()],
    }
    rec.update(kw)
    return rec


def _valid(ev: Event) -> Event:
    validate_event(ev)
    return ev


def _check_mapped(ev: Event) -> None:
    assert ev.action == "user.login"
    assert (ev.actor.id, ev.actor.type, ev.actor.name, ev.actor.ip) == (
        "u-42",
        "user",
        "Alice",
        "203.0.113.7",
    )
    assert (ev.outcome, ev.category, ev.severity, ev.reason) == (
        "denied",
        "authentication",
        "medium",
        "bad password",
    )
    assert ev.resource is not None
    assert (ev.resource.type, ev.resource.id, ev.resource.name) == (
        "account",
        "acct-1",
        "Main account",
    )
    assert ev.time == "2024-05-01T10:00:00.123456789Z"
    assert ev.source is not None
    assert (ev.source.service, ev.source.host) == ("billing", "web-1")
    assert ev.source.trace_id == "5b8efff798038103d269b633813fc60c"
    assert ev.metadata is not None
    otel = ev.metadata["otel"]
    assert otel["body"] == "login refused"
    assert otel["attributes"] == {"http.request.method": "POST", "retries": 2}
    assert otel["span_id"] == "eee19b7ec3c1b174"
    assert (otel["severity_text"], otel["severity_number"]) == ("WARN", 13)
    assert otel["scope"]["name"] == "auth"


def test_protobuf_record_maps_by_the_convention() -> None:
    events, errors = parse_otlp_logs(_request(_record(AUDIT)), PB)
    assert errors == [] and len(events) == 1
    ev = _valid(events[0])
    _check_mapped(ev)
    assert ev.metadata is not None
    assert ev.metadata["otel"]["resource"] == {"cloud.region": "eu"}
    assert ev.metadata["otel"]["scope"] == {"name": "auth", "version": "1.2"}


def test_json_record_maps_the_same() -> None:
    events, errors = parse_otlp_logs(
        _json_request([_json_record(AUDIT)]), "application/json; charset=utf-8"
    )
    assert errors == [] and len(events) == 1
    _check_mapped(_valid(events[0]))


def test_missing_action_is_refused_with_a_resendable_request() -> None:
    bad = _record({"audit.actor.id": "u-1", "note": "x"})
    body = _request(_record(AUDIT), bad)
    events, errors = parse_otlp_logs(body, PB)
    assert len(events) == 1 and len(errors) == 1
    assert errors[0].reason == "attribute audit.action is missing"
    assert not isinstance(errors[0], UnreadableRequest)  # one record refused, not the request
    # raw is a request with only the refused record, in the same encoding.
    again, errs = parse_otlp_logs(errors[0].raw, PB)
    assert again == [] and [e.reason for e in errs] == ["attribute audit.action is missing"]
    single = ExportLogsServiceRequest.FromString(errors[0].raw)
    assert single.resource_logs[0].scope_logs[0].log_records[0] == bad
    assert single.resource_logs[0].resource.attributes[0].key == "service.name"


def test_missing_action_in_json_is_refused_with_a_resendable_request() -> None:
    body = _json_request([_json_record(AUDIT), _json_record({"audit.actor.id": "u-1"})])
    events, errors = parse_otlp_logs(body, JS)
    assert len(events) == 1 and len(errors) == 1
    again, errs = parse_otlp_logs(errors[0].raw, JS)
    assert again == [] and errs[0].reason == "attribute audit.action is missing"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"audit.outcome": "maybe"}, "attribute audit.outcome 'maybe' is not one of"),
        (
            {"audit.actor.ip": "router-7"},
            "attribute audit.actor.ip 'router-7' is not an IP address",
        ),
        ({"audit.action": "log in!"}, "attribute audit.action 'log in!' is not a dotted name"),
        ({"audit.actor.type": "robot"}, "attribute audit.actor.type 'robot' is not one of"),
        ({"audit.id": "123"}, "attribute audit.id '123' is not a UUID"),
        ({"audit.tenant": "Acme Corp"}, "attribute audit.tenant 'Acme Corp' is not a tenant name"),
        ({"audit.actor.id": ["a"]}, "attribute audit.actor.id must be a string"),
    ],
)
def test_convention_values_are_checked(change: dict[str, Any], reason: str) -> None:
    events, errors = parse_otlp_logs(_request(_record(AUDIT | change)), PB)
    assert events == []
    assert len(errors) == 1 and errors[0].reason.startswith(reason)


def test_missing_actor_names_the_attribute() -> None:
    _, errors = parse_otlp_logs(_request(_record({"audit.action": "a.b"})), PB)
    assert errors[0].reason == "attribute audit.actor.id is missing (nor user.id, enduser.id)"


def test_semantic_convention_fallbacks_and_observed_time() -> None:
    attrs = {
        "audit.action": "doc.read",
        "user.id": "bob",
        "user_agent.original": "curl/8",
        "session.id": "s-9",
    }
    rec = _record(
        attrs, time_unix_nano=0, observed_time_unix_nano=T_NS, trace_id=b"", body=AnyValue()
    )
    events, errors = parse_otlp_logs(_request(rec, resource={}), PB)
    assert not errors
    ev = _valid(events[0])
    assert (ev.actor.id, ev.actor.user_agent, ev.actor.session_id) == ("bob", "curl/8", "s-9")
    assert ev.time == "2024-05-01T10:00:00.123456789Z"
    assert ev.source is not None and ev.source.trace_id is None and ev.source.service is None
    assert ev.outcome == "unknown"  # none given: validation says so
    assert ev.metadata is not None and "body" not in ev.metadata["otel"]


def test_ids_explicit_or_derived_and_stable() -> None:
    body = _request(_record(AUDIT), _record(AUDIT, time_unix_nano=T_NS + 1))
    first, _ = parse_otlp_logs(body, PB)
    again, _ = parse_otlp_logs(body, PB)
    assert [e.id for e in first] == [e.id for e in again]  # an exporter's retry is idempotent
    assert first[0].id != first[1].id
    explicit = AUDIT | {"audit.id": "0190F5C2-7A1E-7CC0-9D7E-3F1C2B4A5D6E", "audit.tenant": "acme"}
    ev = parse_otlp_logs(_request(_record(explicit)), PB)[0][0]
    assert ev.id == "0190f5c2-7a1e-7cc0-9d7e-3f1c2b4a5d6e" and ev.tenant == "acme"


def test_nested_body_and_bytes_fit_the_limits() -> None:
    deep: Any = "leaf"
    for _ in range(12):
        deep = {"k": deep}
    rec = _record(
        AUDIT | {"blob": b"\x00\x01binary", "list": [1, 2.5, True, None]}, body=_any(deep)
    )
    events, errors = parse_otlp_logs(_request(rec), PB)
    assert not errors
    ev = _valid(events[0])
    assert ev.metadata is not None
    assert ev.metadata["otel"]["attributes"]["blob"] == "AAFiaW5hcnk="
    assert ev.metadata["otel"]["attributes"]["list"] == [1, 2.5, True, None]
    # metadata(1).otel(2).body(3) and five levels more are kept; deeper is JSON text.
    kept = ev.metadata["otel"]["body"]["k"]["k"]["k"]["k"]["k"]
    assert isinstance(kept, dict) and orjson.loads(kept["k"]) == {
        "k": {"k": {"k": {"k": {"k": {"k": "leaf"}}}}}
    }


def test_json_trace_id_forms() -> None:
    import base64

    ok = _json_record(AUDIT, traceId=base64.b64encode(TRACE).decode())  # protobuf-JSON style
    zero = _json_record(AUDIT, traceId="0" * 32)
    bad = _json_record(AUDIT, traceId="xyz")
    events, errors = parse_otlp_logs(_json_request([ok, zero, bad]), JS)
    assert events[0].source is not None and events[0].source.trace_id == TRACE.hex()
    assert events[1].source is not None and events[1].source.trace_id is None
    assert [e.reason for e in errors] == ["traceId is not 32 hex digits"]


def test_json_int64_as_number_or_string() -> None:
    rec = _json_record(AUDIT, timeUnixNano=1_714_557_600_000_000_000)
    rec["attributes"].append({"key": "n", "value": {"intValue": 7}})
    events, errors = parse_otlp_logs(
        _json_request([rec, _json_record(AUDIT, timeUnixNano="soon")]), JS
    )
    assert events[0].time == "2024-05-01T10:00:00Z"
    assert events[0].metadata is not None and events[0].metadata["otel"]["attributes"]["n"] == 7
    assert [e.reason for e in errors] == ["timeUnixNano 'soon' is not an integer"]


@pytest.mark.parametrize(
    ("body", "ctype", "reason"),
    [
        (b"\x0a\x05\x0a\x03\x0a\x01", PB, "malformed protobuf"),
        (b"{", JS, "malformed JSON"),
        (b'{"resourceLogs": 3}', JS, "not an OTLP logs request"),
        (b"<logs/>", "application/xml", "unsupported content type"),
        (b"\x1f\x8b\x08\x00broken", PB, "bad gzip data"),
    ],
)
def test_bad_requests_are_refused_whole(body: bytes, ctype: str, reason: str) -> None:
    events, errors = parse_otlp_logs(body, ctype)
    assert events == [] and len(errors) == 1
    assert errors[0].reason.startswith(reason) and errors[0].raw == body
    assert isinstance(errors[0], UnreadableRequest)


def test_gzip_and_empty_requests() -> None:
    events, errors = parse_otlp_logs(gzip.compress(_request(_record(AUDIT))), PB)
    assert len(events) == 1 and not errors
    assert parse_otlp_logs(b"", PB) == ([], [])
    assert parse_otlp_logs(b"{}", JS) == ([], [])


def test_responses() -> None:
    assert otlp_response(0, "", PB) == b""
    assert otlp_response(0, "", JS) == b"{}"
    resp = ExportLogsServiceResponse.FromString(otlp_response(2, "two refused", PB))
    assert resp.partial_success.rejected_log_records == 2
    assert resp.partial_success.error_message == "two refused"
    assert orjson.loads(otlp_response(2, "two refused", JS)) == {
        "partialSuccess": {"rejectedLogRecords": "2", "errorMessage": "two refused"}
    }
    _, errors = parse_otlp_logs(_request(_record({"x": 1}), _record({"audit.action": "a"})), PB)
    resp = ExportLogsServiceResponse.FromString(otlp_partial_success(errors, PB))
    assert resp.partial_success.rejected_log_records == 2
    assert "attribute audit.action is missing" in resp.partial_success.error_message
    assert otlp_partial_success([], JS) == b"{}"
    with pytest.raises(ValueError):
        otlp_response(-1)


def test_status_body() -> None:
    assert otlp_status("bad", PB) == b"\x08\x03\x12\x03bad"
    assert orjson.loads(otlp_status("bad", JS)) == {"code": 3, "message": "bad"}
    long = otlp_status("x" * 300, PB)
    assert long[:4] == b"\x08\x03\x12\xac" and long[4:6] == b"\x02x"


# --------------------------------------------------------------------------- robustness


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000), st.sampled_from([PB, JS]))
def test_garbage_never_crashes(body: bytes, ctype: str) -> None:
    events, errors = parse_otlp_logs(body, ctype)
    for ev in events:
        _valid(ev)
    for err in errors:
        assert err.source == "otlp" and err.reason


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_protobuf_never_crashes(data: st.DataObject) -> None:
    body = bytearray(_request(_record(AUDIT), _record({"audit.action": "x"})))
    for _ in range(data.draw(st.integers(1, 5))):
        i = data.draw(st.integers(0, len(body) - 1))
        body[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(body)))
    events, errors = parse_otlp_logs(bytes(body[:cut]), PB)
    for ev in events:
        _valid(ev)
    assert all(e.reason for e in errors)


_scalar = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats()
    | st.text(max_size=12)
)
_value = st.recursive(
    _scalar,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=20,
)
_attrs = st.dictionaries(
    st.sampled_from([*AUDIT.keys(), "user.id", "other"]),
    st.text(max_size=20) | st.sampled_from(["user", "success", "a.b", "10.0.0.1"]) | _value,
    max_size=10,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_attrs, st.integers(0, 2**64 - 1))
def test_any_attributes_map_to_a_valid_event_or_a_reason(attrs: dict[str, Any], ns: int) -> None:
    clean = {k: v for k, v in attrs.items() if v is not None}
    events, errors = parse_otlp_logs(_request(_record(clean, time_unix_nano=ns)), PB)
    assert len(events) + len(errors) == 1
    for ev in events:
        _valid(ev)


def test_documented_json_example() -> None:
    import re
    from pathlib import Path

    doc = Path(__file__).resolve().parents[2] / "docs" / "sources" / "opentelemetry.md"
    block = re.findall(r"```json\n(.*?)```", doc.read_text(), re.S)[0]
    events, errors = parse_otlp_logs(block.encode(), JS)
    assert errors == [] and len(events) == 1
    ev = _valid(events[0])
    assert (ev.action, ev.actor.id, ev.outcome) == ("invoice.void", "u-42", "success")
    assert ev.resource is not None and ev.resource.id == "INV-2024-0042"
    assert ev.source is not None and ev.source.service == "billing"
    assert ev.metadata is not None and ev.metadata["otel"]["attributes"] == {"amount_cents": 129900}
