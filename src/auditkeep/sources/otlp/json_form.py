"""The OTLP JSON mapping: lowerCamelCase structs, hex ids, 64-bit integers as strings."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import msgspec

from auditkeep.sources.otlp.convention import _HEX, _Bad

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
