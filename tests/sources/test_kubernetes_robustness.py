"""The Kubernetes mapper on oversized, garbage, random and truncated input: a valid event or a reason, never a crash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from json_strategy import json_values  # type: ignore[import-not-found]
from kubernetes_support import (  # type: ignore[import-not-found]
    native_lines,
    valid,
)

from auditkeep.model import validate_event
from auditkeep.sources.base import SourceError
from auditkeep.sources.kubernetes import (
    MAX_LINE_BYTES,
    parse_k8s_log_line,
    parse_k8s_payload,
)


def test_ten_megabyte_line_is_refused() -> None:
    line = b'{"kind":"Event","verb":"get","user":{"username":"a"},"x":"' + b"a" * (10 << 20) + b'"}'
    assert len(line) > MAX_LINE_BYTES
    with pytest.raises(SourceError, match="bytes, more than"):
        parse_k8s_log_line(line)


def test_long_strings_are_cut_and_listed() -> None:
    obj = {
        "kind": "Event",
        "verb": "get",
        "user": {"username": "a"},
        "requestURI": "/x",
        "note": "z" * 20000,
    }
    ev = valid(parse_k8s_log_line(orjson.dumps(obj)))
    assert ev.metadata is not None
    assert ev.metadata["_omitted"] == ["metadata.k8s.note"]
    assert len(ev.metadata["k8s"]["note"]) <= 8192


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_garbage_bytes_never_crash(data: bytes) -> None:
    try:
        valid(parse_k8s_log_line(data))
    except SourceError as exc:
        assert exc.raw == data
    events, errors = parse_k8s_payload(data)
    assert events or errors  # every input is accounted for


_json = json_values
_fields = st.fixed_dictionaries(
    {},
    optional={
        "kind": st.sampled_from(["Event", "EventList", 0]),
        "apiVersion": st.sampled_from(["audit.k8s.io/v1", "v1"]),
        "verb": st.text(max_size=10) | _json,
        "user": st.fixed_dictionaries(
            {}, optional={"username": st.text(max_size=30) | _json, "groups": _json}
        ),
        "objectRef": st.fixed_dictionaries(
            {},
            optional={
                "resource": st.text(max_size=12) | _json,
                "subresource": _json,
                "name": _json,
            },
        )
        | _json,
        "sourceIPs": st.lists(st.text(max_size=16) | st.ip_addresses().map(str), max_size=3)
        | _json,
        "responseStatus": st.fixed_dictionaries({}, optional={"code": st.integers(0, 999) | _json}),
        "stageTimestamp": st.datetimes().map(lambda d: d.isoformat() + "Z")
        | st.text(max_size=30)
        | _json,
        "auditID": st.text(max_size=36) | _json,
        "stage": st.sampled_from(["RequestReceived", "ResponseComplete", "Panic"]) | _json,
        "requestObject": _json,
        "protoPayload": _json,
        "properties": _json,
        "message": st.text(max_size=40),
    },
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])  # 400 before: cut for the suite's time
@given(_fields)
def test_any_object_maps_to_a_valid_event_or_a_reason(obj: dict[str, Any]) -> None:
    line = orjson.dumps(obj)
    try:
        ev = parse_k8s_log_line(line)
    except SourceError as exc:
        assert exc.reason and exc.raw == line
        return
    validate_event(ev)
    assert ev.action.startswith("k8s.")


@settings(max_examples=100)
@given(st.data())
def test_truncated_real_lines_never_crash(testdata: Path, data: st.DataObject) -> None:
    lines = native_lines(testdata)
    _, line = data.draw(st.sampled_from(lines))
    cut = data.draw(st.integers(0, max(0, len(line) - 1)))
    with pytest.raises(SourceError):
        parse_k8s_log_line(line[:cut])
