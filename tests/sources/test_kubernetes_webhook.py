"""Kubernetes audit webhook batches and CloudWatch subscription messages: what is mapped, what is refused whole."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import orjson
import pytest
from kubernetes_support import (  # type: ignore[import-not-found]
    event_list,
    k8s_dir,
    native_lines,
    valid,
)

from auditkeep.sources.kubernetes import (
    parse_k8s_payload,
)


def test_webhook_batch(testdata: Path) -> None:
    items = [
        json.loads(line) for name, line in native_lines(testdata) if name != "fal_01_003.json"
    ]
    body = event_list(items)
    events, errors = parse_k8s_payload(body)
    assert len(events) == 88 and errors == []
    for ev in events:
        valid(ev)
    # A re-sent batch maps to the same ids: idempotent in the ledger.
    again, _ = parse_k8s_payload(body)
    assert [e.id for e in again] == [e.id for e in events]
    # Two falco traces are edited copies of one request (same auditID, stage, time, user):
    # they get one id, as the same audit fact would.
    assert len({e.id for e in events}) == len(events) - 1


def test_webhook_batch_with_a_bad_item(testdata: Path) -> None:
    good = json.loads((k8s_dir(testdata) / "falco-traces" / "create_configmap.json").read_text())
    bad = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "verb": "get"}
    events, errors = parse_k8s_payload(event_list([good, bad]))
    assert len(events) == 1
    assert len(errors) == 1 and errors[0].reason == "user.username is missing"
    assert json.loads(errors[0].raw) == bad


def test_webhook_batch_large_goes_item_by_item(testdata: Path) -> None:
    good = json.loads((k8s_dir(testdata) / "falco-traces" / "create_configmap.json").read_text())
    huge = dict(good, auditID="x", requestObject={"data": {f"k{i}": "v" * 8000 for i in range(20)}})
    events, errors = parse_k8s_payload(event_list([good, huge] * 3))
    assert errors == [] and len(events) == 6
    for ev in events:
        valid(ev)
    assert events[1].metadata is not None
    # The response body goes first; the request is still too large, so it goes too.
    assert events[1].metadata["_omitted"] == [
        "metadata.k8s.requestObject",
        "metadata.k8s.responseObject",
    ]
    assert events[0].metadata is not None and "requestObject" in events[0].metadata["k8s"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (event_list([], api="audit.k8s.io/v1alpha1"), "apiVersion 'audit.k8s.io/v1alpha1'"),
        (orjson.dumps({"kind": "PodList", "items": []}), "kind 'PodList' is neither"),
        (b"[1, 2]", "expected an EventList object, got list"),
        (
            b'{"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": 3}',
            "items is not an array",
        ),
        (b"{not json", "malformed JSON"),
    ],
)
def test_webhook_refuses_what_is_not_an_event_list(body: bytes, reason: str) -> None:
    events, errors = parse_k8s_payload(body)
    assert events == []
    assert len(errors) == 1 and reason in errors[0].reason
    assert errors[0].raw == body


def test_webhook_single_event_and_empty_list(testdata: Path) -> None:
    one = (k8s_dir(testdata) / "falco-traces" / "create_configmap.json").read_bytes()
    events, errors = parse_k8s_payload(one)
    assert len(events) == 1 and not errors
    assert parse_k8s_payload(event_list([])) == ([], [])


def test_cloudwatch_subscription_message(testdata: Path) -> None:
    lines = [line for name, line in native_lines(testdata) if name == "create_configmap.json"]
    body = orjson.dumps(
        {
            "messageType": "DATA_MESSAGE",
            "logGroup": "/aws/eks/prod-eu/cluster",
            "logStream": "kube-apiserver-audit-0123",
            "logEvents": [{"id": "1", "timestamp": 1540559583544, "message": lines[0].decode()}],
        }
    )
    events, errors = parse_k8s_payload(body)
    assert not errors and len(events) == 1
    ev = valid(events[0])
    assert ev.source is not None and ev.source.host == "prod-eu"
    assert ev.metadata is not None and ev.metadata["aws"]["id"] == "1"
    assert ev.action == "k8s.configmaps.create"


# --------------------------------------------------------------------------- rules

def test_gzip_body_is_malformed_json_not_a_crash() -> None:
    _, errors = parse_k8s_payload(gzip.compress(b'{"kind":"EventList"}'))
    assert errors and "malformed JSON" in errors[0].reason


# --------------------------------------------------------------------------- deploy samples
