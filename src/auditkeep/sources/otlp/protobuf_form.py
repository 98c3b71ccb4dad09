"""The protobuf encoding's values and ids (``opentelemetry-proto`` classes)."""

from __future__ import annotations

import base64
from typing import Any

from opentelemetry.proto.common.v1 import common_pb2 as pb_common

from auditkeep.sources.otlp.convention import _Bad

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
