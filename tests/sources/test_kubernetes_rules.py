"""The Kubernetes mapper's rules (action, actor type, time, outcome, address) and the stage merger."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes_support import (  # type: ignore[import-not-found]
    valid,
)

from auditkeep.model import Event
from auditkeep.sources.base import SourceError
from auditkeep.sources.kubernetes import (
    StageMerger,
    actor_type,
    k8s_action,
    k8s_time,
    map_k8s_event,
)


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
    ev = valid(map_k8s_event(obj))
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
