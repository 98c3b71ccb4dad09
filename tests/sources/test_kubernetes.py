"""Kubernetes audit events: real samples, wrapped forms, webhook batches, stage merging."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditkeep.model import Event, validate_event
from auditkeep.sources.base import SourceError
from auditkeep.sources.kubernetes import (
    MAX_LINE_BYTES,
    StageMerger,
    actor_type,
    k8s_action,
    k8s_time,
    map_k8s_event,
    map_k8s_record,
    parse_k8s_log_line,
    parse_k8s_payload,
    unwrap_k8s,
)

WRAPPED_FILES = (
    "aws_eks_rules.tests.jsonl",
    "gcp_k8s_rules.tests.jsonl",
    "kubernetes_rules.tests.jsonl",
)


def _k8s(testdata: Path) -> Path:
    return testdata / "kubernetes"


def _native_lines(testdata: Path) -> list[tuple[str, bytes]]:
    d = _k8s(testdata)
    files = [*sorted((d / "falco-traces").glob("*.json")), d / "audit2rbac-demo.log"]
    return [(f.name, line) for f in files for line in f.read_bytes().splitlines() if line.strip()]


def _panther(testdata: Path, name: str) -> list[dict[str, Any]]:
    path = _k8s(testdata) / name
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _by_test_name(testdata: Path, name: str, test_name: str) -> dict[str, Any]:
    hits = [row["log"] for row in _panther(testdata, name) if row["test_name"] == test_name]
    assert hits, f"{test_name!r} not in {name}"
    return hits[0]


def _valid(ev: Event) -> Event:
    validate_event(ev)
    return ev


# --------------------------------------------------------------------------- real samples


def test_falco_and_audit2rbac_map_fully(testdata: Path) -> None:
    mapped = 0
    for name, line in _native_lines(testdata):
        if name == "fal_01_003.json":  # `{"kind": 0}`: a deliberately broken trace
            with pytest.raises(SourceError, match="kind 0 is not Event"):
                parse_k8s_log_line(line)
            continue
        ev = _valid(parse_k8s_log_line(line))
        assert ev.action.startswith("k8s.")
        assert ev.metadata is not None and "k8s" in ev.metadata
        mapped += 1
    assert mapped == 88


def test_wrapped_files_map_or_refuse_with_reason(testdata: Path) -> None:
    mapped, refused = 0, []
    for name in WRAPPED_FILES:
        for row in _panther(testdata, name):
            line = orjson.dumps(row["log"])
            try:
                ev = parse_k8s_log_line(line)
            except SourceError as exc:
                assert exc.source == "kubernetes"
                assert exc.reason
                assert exc.raw == line  # kept as received, for quarantine
                refused.append(exc.reason)
                continue
            _valid(ev)
            mapped += 1
    assert mapped + len(refused) == 20 + 25 + 237
    assert mapped >= 220
    assert any("compute.googleapis.com" in r for r in refused)
    assert any("deploymentmanager.googleapis.com" in r for r in refused)
    assert any("Azure record of category 'Administrative'" in r for r in refused)
    assert "user.username is missing" in refused
    assert "verb is missing" in refused


def test_audit2rbac_forbidden_list(testdata: Path) -> None:
    line = (_k8s(testdata) / "audit2rbac-demo.log").read_bytes().splitlines()[0]
    ev = _valid(parse_k8s_log_line(line))
    assert ev.actor.id == "system:admin"
    assert ev.actor.type == "system"
    assert ev.actor.ip == "::1"
    assert ev.action == "k8s.pods.list"
    assert ev.category == "data_access"
    assert ev.outcome == "denied"
    assert ev.reason == 'pods is forbidden: User "bob" cannot list pods in the namespace "default"'
    assert ev.resource is not None and ev.resource.type == "pods" and ev.resource.id is None
    assert ev.time == "2017-09-11T19:55:05Z"
    assert ev.source is not None
    assert ev.source.request_id == "033d17af-082d-4b24-aa22-627752e83d71"
    assert ev.metadata is not None
    assert ev.metadata["impersonated_user"]["username"] == "bob"
    assert ev.metadata["groups"] == ["system:masters", "system:authenticated"]
    assert ev.metadata["namespace"] == "default"
    assert ev.metadata["k8s"]["auditID"] == "033d17af-082d-4b24-aa22-627752e83d71"


def test_falco_exec_is_admin_and_upgrade_is_success(testdata: Path) -> None:
    line = (_k8s(testdata) / "falco-traces" / "exec_pod.json").read_bytes().strip()
    ev = _valid(parse_k8s_log_line(line))
    assert ev.action == "k8s.pods.exec"
    assert ev.category == "admin"
    assert ev.outcome == "success"  # 101 Switching Protocols
    assert ev.resource is not None
    assert ev.resource.id == "default/nginx-deployment-7998647bdf-phvq7"
    assert ev.resource.name == "nginx-deployment-7998647bdf-phvq7"
    assert ev.actor.id == "minikube-user" and ev.actor.type == "user"
    assert ev.time == "2018-10-26T13:38:34.902914Z"
    assert ev.metadata is not None and ev.metadata["k8s"]["stage"] == "ResponseStarted"


def test_falco_configmap_and_rbac(testdata: Path) -> None:
    d = _k8s(testdata) / "falco-traces"
    cm = _valid(parse_k8s_log_line((d / "create_configmap.json").read_bytes().strip()))
    assert (cm.action, cm.category, cm.outcome) == (
        "k8s.configmaps.create",
        "configuration",
        "success",
    )
    assert cm.resource is not None and cm.resource.id == "default/my-config"
    crb = _valid(parse_k8s_log_line((d / "create_clusterrolebinding.json").read_bytes().strip()))
    assert crb.action == "k8s.clusterrolebindings.create"
    assert crb.category == "authorization"
    assert crb.metadata is not None and crb.metadata["api_group"] == "rbac.authorization.k8s.io"


def test_deep_deployment_is_kept_whole_as_text(testdata: Path) -> None:
    raw = (_k8s(testdata) / "falco-traces" / "create_deployment.json").read_bytes().strip()
    original = json.loads(raw)
    ev = _valid(parse_k8s_log_line(raw))
    assert ev.action == "k8s.deployments.create"
    assert ev.metadata is not None
    container = ev.metadata["k8s"]["requestObject"]["spec"]["template"]["spec"]["containers"][0]
    # metadata(1).k8s(2)...containers(7)[0](8): what is nested deeper is kept as JSON text,
    # which still says the same.
    assert container["resources"] == "{}"
    assert _unfold(ev.metadata["k8s"]) == original
    assert "_omitted" not in ev.metadata


def _unfold(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _unfold(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unfold(v) for v in value]
    if isinstance(value, str) and value[:1] in ("{", "["):
        return json.loads(value)
    return value


def test_eks_nonresource_with_zoneless_time(testdata: Path) -> None:
    log = _by_test_name(
        testdata, "aws_eks_rules.tests.jsonl", "Anonymous API Access Web Scanner Allowed"
    )
    ev = _valid(map_k8s_record(log))
    assert ev.action == "k8s.nonresource.get"
    assert ev.resource is not None and (ev.resource.type, ev.resource.id) == ("url", "/version")
    assert ev.category == "system"
    assert ev.actor.id == "system:anonymous" and ev.actor.type == "user"
    assert ev.actor.ip == "44.238.138.237"
    assert ev.actor.user_agent == "python-requests/2.31.0"
    assert ev.time == "2024-11-13T18:34:10.595494Z"  # written without a zone; API times are UTC


def test_aks_record_unwraps(testdata: Path) -> None:
    log = _by_test_name(testdata, "kubernetes_rules.tests.jsonl", "AKS Anonymous API Access")
    inner = unwrap_k8s(log)
    assert inner is not None and inner["auditID"] == "abc-123"
    ev = _valid(map_k8s_record(log))
    assert ev.action == "k8s.pods.get"
    assert ev.actor.id == "system:anonymous"
    assert ev.outcome == "success"
    assert ev.resource is not None and ev.resource.id == "default/test-pod"
    assert ev.source is not None
    assert (ev.source.host, ev.source.request_id) == ("cluster", "abc-123")
    assert ev.metadata is not None and ev.metadata["azure"]["category"] == "kube-audit"


def test_gke_entry_is_rebuilt(testdata: Path) -> None:
    log = _by_test_name(testdata, "kubernetes_rules.tests.jsonl", "GCP GKE Pod With HostPath")
    ev = _valid(map_k8s_record(log))
    assert ev.action == "k8s.pods.create"
    assert ev.actor.id == "user@company.com" and ev.actor.ip == "1.2.3.4"
    assert ev.resource is not None and ev.resource.id == "default/test"
    assert ev.time == "2024-02-16T11:48:22.742Z"
    assert ev.source is not None and ev.source.host == "gke-cluster"
    assert ev.metadata is not None
    assert ev.metadata["k8s"]["requestObject"]["kind"] == "Pod"
    assert "request" not in ev.metadata["gcp"]["protoPayload"]  # moved, not copied


def test_gke_denied_and_readyz(testdata: Path) -> None:
    log = _by_test_name(testdata, "gcp_k8s_rules.tests.jsonl", "No Permission Granted")
    ev = _valid(map_k8s_record(log))
    assert (ev.action, ev.outcome) == ("k8s.services.create", "denied")
    log = _by_test_name(
        testdata, "kubernetes_rules.tests.jsonl", "GKE Anonymous Readyz Check via RequestURI"
    )
    ev = _valid(map_k8s_record(log))
    assert ev.action == "k8s.nonresource.get"
    assert ev.resource is not None and ev.resource.id == "/readyz"
    assert ev.outcome == "success"
    assert ev.actor.user_agent == "GoogleKubernetesEngineFrontend"


def test_gcp_entry_for_another_service_is_refused(testdata: Path) -> None:
    log = _by_test_name(testdata, "kubernetes_rules.tests.jsonl", "Non-K8s GCP Activity (Excluded)")
    assert unwrap_k8s(log) is None
    with pytest.raises(SourceError, match=r"compute\.googleapis\.com"):
        map_k8s_record(log)


# --------------------------------------------------------------------------- webhook batches


def _event_list(items: list[Any], api: str = "audit.k8s.io/v1") -> bytes:
    return orjson.dumps({"kind": "EventList", "apiVersion": api, "metadata": {}, "items": items})


def test_webhook_batch(testdata: Path) -> None:
    items = [
        json.loads(line) for name, line in _native_lines(testdata) if name != "fal_01_003.json"
    ]
    body = _event_list(items)
    events, errors = parse_k8s_payload(body)
    assert len(events) == 88 and errors == []
    for ev in events:
        _valid(ev)
    # A re-sent batch maps to the same ids: idempotent in the ledger.
    again, _ = parse_k8s_payload(body)
    assert [e.id for e in again] == [e.id for e in events]
    # Two falco traces are edited copies of one request (same auditID, stage, time, user):
    # they get one id, as the same audit fact would.
    assert len({e.id for e in events}) == len(events) - 1


def test_webhook_batch_with_a_bad_item(testdata: Path) -> None:
    good = json.loads((_k8s(testdata) / "falco-traces" / "create_configmap.json").read_text())
    bad = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "verb": "get"}
    events, errors = parse_k8s_payload(_event_list([good, bad]))
    assert len(events) == 1
    assert len(errors) == 1 and errors[0].reason == "user.username is missing"
    assert json.loads(errors[0].raw) == bad


def test_webhook_batch_large_goes_item_by_item(testdata: Path) -> None:
    good = json.loads((_k8s(testdata) / "falco-traces" / "create_configmap.json").read_text())
    huge = dict(good, auditID="x", requestObject={"data": {f"k{i}": "v" * 8000 for i in range(20)}})
    events, errors = parse_k8s_payload(_event_list([good, huge] * 3))
    assert errors == [] and len(events) == 6
    for ev in events:
        _valid(ev)
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
        (_event_list([], api="audit.k8s.io/v1alpha1"), "apiVersion 'audit.k8s.io/v1alpha1'"),
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
    one = (_k8s(testdata) / "falco-traces" / "create_configmap.json").read_bytes()
    events, errors = parse_k8s_payload(one)
    assert len(events) == 1 and not errors
    assert parse_k8s_payload(_event_list([])) == ([], [])


def test_cloudwatch_subscription_message(testdata: Path) -> None:
    lines = [line for name, line in _native_lines(testdata) if name == "create_configmap.json"]
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
    ev = _valid(events[0])
    assert ev.source is not None and ev.source.host == "prod-eu"
    assert ev.metadata is not None and ev.metadata["aws"]["id"] == "1"
    assert ev.action == "k8s.configmaps.create"


# --------------------------------------------------------------------------- rules


@pytest.mark.parametrize(
    ("verb", "resource", "sub", "action"),
    [
        ("create", "pods", None, "k8s.pods.create"),
        ("create", "pods", "exec", "k8s.pods.exec"),
        ("get", "pods", "log", "k8s.pods.log"),
        ("patch", "pods", "status", "k8s.pods.status.patch"),
        ("update", "deployments", "scale", "k8s.deployments.scale.update"),
        ("create", "serviceaccounts", "token", "k8s.serviceaccounts.token"),
        ("get", None, None, "k8s.nonresource.get"),
        ("get", "widgets.v1", None, "k8s.widgets_v1.get"),
        ("", "pods", None, "k8s.pods.unknown"),
    ],
)
def test_action_rule(verb: str, resource: str | None, sub: str | None, action: str) -> None:
    assert k8s_action(verb, resource, sub) == action


@pytest.mark.parametrize(
    ("user", "groups", "kind"),
    [
        ("system:serviceaccount:kube-system:default", [], "service"),
        ("system:node:ip-10-0-0-1", ["system:nodes"], "service"),
        ("system:kube-scheduler", [], "system"),
        ("eks:certificate-controller", [], "system"),
        ("system:anonymous", ["system:unauthenticated"], "user"),
        ("alice@example.com", ["system:authenticated"], "user"),
        ("kubelet-x", ["system:nodes"], "service"),
    ],
)
def test_actor_type_rule(user: str, groups: list[str], kind: str) -> None:
    assert actor_type(user, groups) == kind


@pytest.mark.parametrize(
    ("text", "out"),
    [
        ("2018-10-26T13:38:34.902914Z", "2018-10-26T13:38:34.902914Z"),
        ("2022-11-29 00:09:04.38", "2022-11-29T00:09:04.38Z"),
        ("2024-01-01T10:00:00+0200", "2024-01-01T10:00:00+02:00"),
        ("2024-01-01T10:00:00.1234567891Z", "2024-01-01T10:00:00.123456789Z"),
    ],
)
def test_k8s_time(text: str, out: str) -> None:
    assert k8s_time(text) == out


@pytest.mark.parametrize("text", ["2024-02-30T00:00:00Z", "2024-01-01T24:00:00Z", "yesterday", ""])
def test_k8s_time_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        k8s_time(text)


def test_bad_time_is_a_source_error() -> None:
    obj = {
        "kind": "Event",
        "verb": "get",
        "user": {"username": "a"},
        "stageTimestamp": "2024-13-01T00:00:00Z",
    }
    with pytest.raises(SourceError, match="stageTimestamp"):
        map_k8s_event(obj)


def test_python_objects_that_are_not_json_still_map() -> None:
    obj = {"kind": "Event", "verb": "get", "user": {"username": "a"}, 1: "x", "big": 2**70}
    ev = _valid(map_k8s_event(obj))
    assert ev.id is not None and ev.id == map_k8s_event(dict(obj)).id


def test_outcomes_and_ip_rules() -> None:
    base = {
        "kind": "Event",
        "verb": "delete",
        "user": {"username": "bob"},
        "stage": "ResponseComplete",
    }
    assert map_k8s_event(dict(base, responseStatus={"code": 404})).outcome == "failure"
    assert map_k8s_event(dict(base, responseStatus={"code": 401})).outcome == "failure"
    assert map_k8s_event(dict(base, responseStatus={"code": 403})).outcome == "denied"
    assert map_k8s_event(dict(base)).outcome == "unknown"
    assert map_k8s_event(dict(base, stage="Panic", responseStatus={"code": 500})).outcome == "error"
    ev = map_k8s_event(dict(base, sourceIPs=["not-an-ip", "10.0.0.1"]))
    assert ev.actor.ip is None
    assert ev.metadata is not None and ev.metadata["source_ips"] == ["not-an-ip", "10.0.0.1"]


# --------------------------------------------------------------------------- stages


def _stage(audit_id: str, stage: str, code: int | None = None) -> Event:
    obj: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "auditID": audit_id,
        "stage": stage,
        "verb": "watch",
        "user": {"username": "alice"},
        "requestReceivedTimestamp": "2024-05-01T10:00:00.000001Z",
        "objectRef": {"resource": "pods", "namespace": "default"},
    }
    if code is not None:
        obj["responseStatus"] = {"code": code}
    return map_k8s_event(obj)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_merger_final_keeps_only_the_final_stage() -> None:
    m = StageMerger("final", timeout=30, clock=_Clock())
    assert m.add([_stage("a", "RequestReceived")]) == []
    assert len(m) == 1
    out = m.add([_stage("a", "ResponseComplete", 200)])
    assert [_meta_stage(e) for e in out] == ["ResponseComplete"]
    assert len(m) == 0
    # A late earlier stage of a finished request is not a fact of its own.
    assert m.add([_stage("a", "RequestReceived")]) == []


def test_merger_final_times_out_to_the_last_stage_seen() -> None:
    clock = _Clock()
    m = StageMerger("final", timeout=30, clock=clock)
    m.add([_stage("w", "RequestReceived"), _stage("p", "RequestReceived")])
    m.add([_stage("w", "ResponseStarted", 200)])
    assert m.add([_stage("p", "Panic", 500)])[0].outcome == "error"
    clock.now = 29.0
    assert m.expire() == []
    clock.now = 31.0
    out = m.expire()
    assert [_meta_stage(e) for e in out] == ["ResponseStarted"]
    assert out[0].metadata is not None and out[0].metadata["final_stage_missing"] is True
    assert len(m) == 0


def test_merger_passes_events_it_cannot_merge() -> None:
    m = StageMerger("final", clock=_Clock())
    no_stage = map_k8s_event(
        {"kind": "Event", "auditID": "z", "verb": "get", "user": {"username": "a"}}
    )
    no_id = map_k8s_event(
        {"kind": "Event", "stage": "RequestReceived", "verb": "get", "user": {"username": "a"}}
    )
    assert m.add([no_stage, no_id]) == [no_stage, no_id]
    assert len(m) == 0


def test_merger_all_mode_and_drain_and_bound() -> None:
    evs = [_stage("a", "RequestReceived"), _stage("a", "ResponseComplete", 200)]
    assert len(StageMerger("all").add(evs)) == 2
    assert len({e.id for e in evs}) == 2  # each stage has its own deterministic id
    m = StageMerger("final", timeout=60, clock=_Clock(), max_pending=2)
    assert m.add([_stage(x, "RequestReceived") for x in "abc"]) != []  # the oldest is let go
    assert len(m) == 2
    assert len(m.drain()) == 2 and len(m) == 0
    with pytest.raises(ValueError):
        StageMerger("some")  # type: ignore[arg-type]


def _meta_stage(ev: Event) -> str:
    assert ev.metadata is not None
    return str(ev.metadata["k8s"]["stage"])


# --------------------------------------------------------------------------- robustness


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
    ev = _valid(parse_k8s_log_line(orjson.dumps(obj)))
    assert ev.metadata is not None
    assert ev.metadata["_omitted"] == ["metadata.k8s.note"]
    assert len(ev.metadata["k8s"]["note"]) <= 8192


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_garbage_bytes_never_crash(data: bytes) -> None:
    try:
        _valid(parse_k8s_log_line(data))
    except SourceError as exc:
        assert exc.raw == data
    events, errors = parse_k8s_payload(data)
    assert events or errors  # every input is accounted for


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=40,
)
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


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
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
    lines = _native_lines(testdata)
    _, line = data.draw(st.sampled_from(lines))
    cut = data.draw(st.integers(0, max(0, len(line) - 1)))
    with pytest.raises(SourceError):
        parse_k8s_log_line(line[:cut])


def test_gzip_body_is_malformed_json_not_a_crash() -> None:
    _, errors = parse_k8s_payload(gzip.compress(b'{"kind":"EventList"}'))
    assert errors and "malformed JSON" in errors[0].reason


# --------------------------------------------------------------------------- deploy samples

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"


def test_sample_audit_policy_is_well_formed() -> None:
    import yaml

    policy = yaml.safe_load((DEPLOY / "audit-policy.yaml").read_text())
    assert (policy["apiVersion"], policy["kind"]) == ("audit.k8s.io/v1", "Policy")
    assert policy["omitStages"] == ["RequestReceived"]
    levels = {"None", "Metadata", "Request", "RequestResponse"}
    allowed = {
        "level",
        "users",
        "userGroups",
        "verbs",
        "resources",
        "namespaces",
        "nonResourceURLs",
        "omitStages",
    }
    for rule in policy["rules"]:
        assert rule["level"] in levels
        assert set(rule) <= allowed
        for res in rule.get("resources", []):
            assert set(res) <= {"group", "resources", "resourceNames"}
    # Secrets never at a level that records their content; the last rule catches the rest.
    secret_rules = [
        r
        for r in policy["rules"]
        if any("secrets" in x.get("resources", []) for x in r.get("resources", []))
    ]
    assert secret_rules and all(r["level"] == "Metadata" for r in secret_rules)
    assert policy["rules"][-1] == {"level": "Metadata"}


def test_sample_webhook_kubeconfig_is_well_formed() -> None:
    import yaml

    cfg = yaml.safe_load((DEPLOY / "audit-webhook-kubeconfig.yaml").read_text())
    assert (cfg["apiVersion"], cfg["kind"]) == ("v1", "Config")
    ctx = {c["name"]: c["context"] for c in cfg["contexts"]}[cfg["current-context"]]
    cluster = {c["name"]: c["cluster"] for c in cfg["clusters"]}[ctx["cluster"]]
    user = {u["name"]: u["user"] for u in cfg["users"]}[ctx["user"]]
    assert cluster["server"].startswith("https://")
    assert "certificate-authority" in cluster
    assert "token" in user or "client-certificate" in user


def _failed_authn(testdata: Path) -> bytes:
    """What kube-apiserver writes for a request whose credentials it could not authenticate:
    the failed-authentication filter records it at ResponseStarted with an empty user, and no
    later stage follows."""
    return (_k8s(testdata) / "failed-authentication.log").read_bytes().strip()


def test_failed_authentication_is_kept_with_an_unauthenticated_actor(testdata: Path) -> None:
    failed_authn = _failed_authn(testdata)
    ev = _valid(parse_k8s_log_line(failed_authn))
    assert ev.actor.id == "system:unauthenticated" and ev.actor.type == "user"
    assert ev.actor.name is None
    assert ev.actor.ip == "203.0.113.9" and ev.actor.user_agent == "curl/8.5.0"
    assert (ev.action, ev.category, ev.outcome) == ("k8s.secrets.list", "authentication", "failure")
    assert ev.reason == "Authentication failed, attempted: bearer"
    assert ev.metadata is not None and ev.metadata["k8s"]["user"] == {}
    # in a webhook batch too, beside a refused item
    body = _event_list([json.loads(failed_authn), {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "verb": "get", "user": {}}])
    events, errors = parse_k8s_payload(body)
    assert [e.actor.id for e in events] == ["system:unauthenticated"]
    assert [e.reason for e in errors] == ["user.username is missing"]  # no user and no 401


def test_failed_authentication_is_final_at_response_started(testdata: Path) -> None:
    merger = StageMerger("final", timeout=3600)
    kept = merger.add([parse_k8s_log_line(_failed_authn(testdata))])
    assert len(kept) == 1 and len(merger) == 0
    assert kept[0].metadata is not None and "final_stage_missing" not in kept[0].metadata
