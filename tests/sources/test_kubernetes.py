"""Kubernetes audit events: real samples (Falco, audit2rbac, EKS, AKS, GKE), wrapped forms, failed authentication."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from kubernetes_support import (  # type: ignore[import-not-found]
    WRAPPED_FILES,
    by_test_name,
    event_list,
    k8s_dir,
    native_lines,
    panther_rows,
    valid,
)

from auditkeep.sources.base import SourceError
from auditkeep.sources.kubernetes import (
    StageMerger,
    map_k8s_record,
    parse_k8s_log_line,
    parse_k8s_payload,
    unwrap_k8s,
)

# --------------------------------------------------------------------------- real samples


def test_falco_and_audit2rbac_map_fully(testdata: Path) -> None:
    mapped = 0
    for name, line in native_lines(testdata):
        if name == "fal_01_003.json":  # `{"kind": 0}`: a deliberately broken trace
            with pytest.raises(SourceError, match="kind 0 is not Event"):
                parse_k8s_log_line(line)
            continue
        ev = valid(parse_k8s_log_line(line))
        assert ev.action.startswith("k8s.")
        assert ev.metadata is not None and "k8s" in ev.metadata
        mapped += 1
    assert mapped == 88


def test_wrapped_files_map_or_refuse_with_reason(testdata: Path) -> None:
    mapped, refused = 0, []
    for name in WRAPPED_FILES:
        for row in panther_rows(testdata, name):
            line = orjson.dumps(row["log"])
            try:
                ev = parse_k8s_log_line(line)
            except SourceError as exc:
                assert exc.source == "kubernetes"
                assert exc.reason
                assert exc.raw == line  # kept as received, for quarantine
                refused.append(exc.reason)
                continue
            valid(ev)
            mapped += 1
    assert mapped + len(refused) == 20 + 25 + 237
    assert mapped >= 220
    assert any("compute.googleapis.com" in r for r in refused)
    assert any("deploymentmanager.googleapis.com" in r for r in refused)
    assert any("Azure record of category 'Administrative'" in r for r in refused)
    assert "user.username is missing" in refused
    assert "verb is missing" in refused


def test_audit2rbac_forbidden_list(testdata: Path) -> None:
    line = (k8s_dir(testdata) / "audit2rbac-demo.log").read_bytes().splitlines()[0]
    ev = valid(parse_k8s_log_line(line))
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
    line = (k8s_dir(testdata) / "falco-traces" / "exec_pod.json").read_bytes().strip()
    ev = valid(parse_k8s_log_line(line))
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
    d = k8s_dir(testdata) / "falco-traces"
    cm = valid(parse_k8s_log_line((d / "create_configmap.json").read_bytes().strip()))
    assert (cm.action, cm.category, cm.outcome) == (
        "k8s.configmaps.create",
        "configuration",
        "success",
    )
    assert cm.resource is not None and cm.resource.id == "default/my-config"
    crb = valid(parse_k8s_log_line((d / "create_clusterrolebinding.json").read_bytes().strip()))
    assert crb.action == "k8s.clusterrolebindings.create"
    assert crb.category == "authorization"
    assert crb.metadata is not None and crb.metadata["api_group"] == "rbac.authorization.k8s.io"


def test_deep_deployment_is_kept_whole_as_text(testdata: Path) -> None:
    raw = (k8s_dir(testdata) / "falco-traces" / "create_deployment.json").read_bytes().strip()
    original = json.loads(raw)
    ev = valid(parse_k8s_log_line(raw))
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
    log = by_test_name(
        testdata, "aws_eks_rules.tests.jsonl", "Anonymous API Access Web Scanner Allowed"
    )
    ev = valid(map_k8s_record(log))
    assert ev.action == "k8s.nonresource.get"
    assert ev.resource is not None and (ev.resource.type, ev.resource.id) == ("url", "/version")
    assert ev.category == "system"
    assert ev.actor.id == "system:anonymous" and ev.actor.type == "user"
    assert ev.actor.ip == "44.238.138.237"
    assert ev.actor.user_agent == "python-requests/2.31.0"
    assert ev.time == "2024-11-13T18:34:10.595494Z"  # written without a zone; API times are UTC


def test_aks_record_unwraps(testdata: Path) -> None:
    log = by_test_name(testdata, "kubernetes_rules.tests.jsonl", "AKS Anonymous API Access")
    inner = unwrap_k8s(log)
    assert inner is not None and inner["auditID"] == "abc-123"
    ev = valid(map_k8s_record(log))
    assert ev.action == "k8s.pods.get"
    assert ev.actor.id == "system:anonymous"
    assert ev.outcome == "success"
    assert ev.resource is not None and ev.resource.id == "default/test-pod"
    assert ev.source is not None
    assert (ev.source.host, ev.source.request_id) == ("cluster", "abc-123")
    assert ev.metadata is not None and ev.metadata["azure"]["category"] == "kube-audit"


def test_gke_entry_is_rebuilt(testdata: Path) -> None:
    log = by_test_name(testdata, "kubernetes_rules.tests.jsonl", "GCP GKE Pod With HostPath")
    ev = valid(map_k8s_record(log))
    assert ev.action == "k8s.pods.create"
    assert ev.actor.id == "user@company.com" and ev.actor.ip == "1.2.3.4"
    assert ev.resource is not None and ev.resource.id == "default/test"
    assert ev.time == "2024-02-16T11:48:22.742Z"
    assert ev.source is not None and ev.source.host == "gke-cluster"
    assert ev.metadata is not None
    assert ev.metadata["k8s"]["requestObject"]["kind"] == "Pod"
    assert "request" not in ev.metadata["gcp"]["protoPayload"]  # moved, not copied


def test_gke_denied_and_readyz(testdata: Path) -> None:
    log = by_test_name(testdata, "gcp_k8s_rules.tests.jsonl", "No Permission Granted")
    ev = valid(map_k8s_record(log))
    assert (ev.action, ev.outcome) == ("k8s.services.create", "denied")
    log = by_test_name(
        testdata, "kubernetes_rules.tests.jsonl", "GKE Anonymous Readyz Check via RequestURI"
    )
    ev = valid(map_k8s_record(log))
    assert ev.action == "k8s.nonresource.get"
    assert ev.resource is not None and ev.resource.id == "/readyz"
    assert ev.outcome == "success"
    assert ev.actor.user_agent == "GoogleKubernetesEngineFrontend"


def test_gcp_entry_for_another_service_is_refused(testdata: Path) -> None:
    log = by_test_name(testdata, "kubernetes_rules.tests.jsonl", "Non-K8s GCP Activity (Excluded)")
    assert unwrap_k8s(log) is None
    with pytest.raises(SourceError, match=r"compute\.googleapis\.com"):
        map_k8s_record(log)


# --------------------------------------------------------------------------- webhook batches

def _failed_authn(testdata: Path) -> bytes:
    """What kube-apiserver writes for a request whose credentials it could not authenticate:
    the failed-authentication filter records it at ResponseStarted with an empty user, and no
    later stage follows."""
    return (k8s_dir(testdata) / "failed-authentication.log").read_bytes().strip()


def test_failed_authentication_is_kept_with_an_unauthenticated_actor(testdata: Path) -> None:
    failed_authn = _failed_authn(testdata)
    ev = valid(parse_k8s_log_line(failed_authn))
    assert ev.actor.id == "system:unauthenticated" and ev.actor.type == "user"
    assert ev.actor.name is None
    assert ev.actor.ip == "203.0.113.9" and ev.actor.user_agent == "curl/8.5.0"
    assert (ev.action, ev.category, ev.outcome) == ("k8s.secrets.list", "authentication", "failure")
    assert ev.reason == "Authentication failed, attempted: bearer"
    assert ev.metadata is not None and ev.metadata["k8s"]["user"] == {}
    # in a webhook batch too, beside a refused item
    body = event_list([json.loads(failed_authn), {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "verb": "get", "user": {}}])
    events, errors = parse_k8s_payload(body)
    assert [e.actor.id for e in events] == ["system:unauthenticated"]
    assert [e.reason for e in errors] == ["user.username is missing"]  # no user and no 401


def test_failed_authentication_is_final_at_response_started(testdata: Path) -> None:
    merger = StageMerger("final", timeout=3600)
    kept = merger.add([parse_k8s_log_line(_failed_authn(testdata))])
    assert len(kept) == 1 and len(merger) == 0
    assert kept[0].metadata is not None and "final_stage_missing" not in kept[0].metadata
