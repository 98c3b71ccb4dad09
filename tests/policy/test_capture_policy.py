"""Capture policy: rule matching, levels, stages, body paths, configuration errors."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditkeep.model import Event, convert_event, validate_event
from auditkeep.policy import CapturePolicy, Glob, PolicyError

POLICY = """
capture:
  default: full
  omit_stages: [RequestReceived]
  rules:
    - name: kube-proxy-watch-noise
      level: none
      sources: [kubernetes]
      actors: ["system:kube-proxy"]
      actions: ["k8s.endpoints.watch", "k8s.services.watch"]
    - name: secrets-metadata-only
      level: metadata
      actions: ["k8s.secrets.*", "k8s.configmaps.*"]
    - level: request
      resource_types: [pods]
      omit_stages: [ResponseStarted]
    - level: none
      groups: ["system:nodes"]
      outcomes: [success]
    - level: metadata
      tenants: ["acme-*"]
      actor_types: [service]
"""


def _k8s_event(
    action: str, actor: str = "alice", stage: str = "ResponseComplete", **extra: Any
) -> Event:
    resource = action.split(".")[1]
    return convert_event(
        {
            "actor": {"id": actor, "type": extra.pop("actor_type", "user")},
            "action": action,
            "outcome": extra.pop("outcome", "success"),
            "resource": {"type": resource, "id": "default/x"},
            "metadata": {
                "k8s": {
                    "stage": stage,
                    "requestObject": {"kind": "Thing", "data": {"a": "b"}},
                    "responseObject": {"kind": "Thing"},
                },
                "groups": extra.pop("groups", ["system:authenticated"]),
            },
            **extra,
        }
    )


@pytest.fixture(scope="module")
def policy() -> CapturePolicy:
    return CapturePolicy.from_yaml(POLICY)


def test_first_match_wins_and_none_drops(policy: CapturePolicy) -> None:
    ev = _k8s_event("k8s.endpoints.watch", actor="system:kube-proxy")
    d = policy.evaluate(ev, "kubernetes")
    assert (d.level, d.rule, d.name, d.omit) == ("none", 0, "kube-proxy-watch-noise", True)
    assert policy.apply(ev, "kubernetes") is None
    # The same action from another source is not matched by the first rule.
    assert policy.evaluate(ev, "otlp").rule is None


def test_metadata_level_drops_both_bodies(policy: CapturePolicy) -> None:
    ev = _k8s_event("k8s.secrets.get")
    out = policy.apply(ev, "kubernetes")
    assert out is ev and out.metadata is not None
    assert (
        "requestObject" not in out.metadata["k8s"] and "responseObject" not in out.metadata["k8s"]
    )
    assert out.metadata["_dropped"] == ["metadata.k8s.requestObject", "metadata.k8s.responseObject"]
    validate_event(out)
    # Applying again changes nothing.
    again = policy.apply(out, "kubernetes")
    assert again is not None and again.metadata == out.metadata


def test_request_level_keeps_the_request(policy: CapturePolicy) -> None:
    out = policy.apply(_k8s_event("k8s.pods.create"), "kubernetes")
    assert out is not None and out.metadata is not None
    assert out.metadata["k8s"]["requestObject"] == {"kind": "Thing", "data": {"a": "b"}}
    assert "responseObject" not in out.metadata["k8s"]
    assert out.metadata["_dropped"] == ["metadata.k8s.responseObject"]


def test_default_is_full(policy: CapturePolicy) -> None:
    ev = _k8s_event("k8s.deployments.update")
    d = policy.evaluate(ev, "kubernetes")
    assert (d.level, d.rule, d.drop_paths) == ("full", None, ())
    out = policy.apply(ev, "kubernetes")
    assert out is not None and out.metadata is not None and "_dropped" not in out.metadata


def test_stages_are_omitted_globally_and_per_rule(policy: CapturePolicy) -> None:
    assert (
        policy.apply(_k8s_event("k8s.deployments.get", stage="RequestReceived"), "kubernetes")
        is None
    )
    assert policy.apply(_k8s_event("k8s.pods.get", stage="ResponseStarted"), "kubernetes") is None
    assert (
        policy.apply(_k8s_event("k8s.deployments.get", stage="ResponseStarted"), "kubernetes")
        is not None
    )


def test_groups_outcomes_tenants_actor_types(policy: CapturePolicy) -> None:
    node = _k8s_event("k8s.leases.update", actor="system:node:n1", groups=["system:nodes"])
    assert policy.evaluate(node, "kubernetes").rule == 3
    failed = _k8s_event(
        "k8s.leases.update", actor="system:node:n1", groups=["system:nodes"], outcome="denied"
    )
    assert policy.evaluate(failed, "kubernetes").rule is None
    svc = _k8s_event("k8s.leases.get", actor="sa", actor_type="service", tenant="acme-eu")
    assert policy.evaluate(svc, "kubernetes").rule == 4
    no_tenant = _k8s_event("k8s.leases.get", actor="sa", actor_type="service")
    assert policy.evaluate(no_tenant, "kubernetes").rule is None


def test_body_paths_per_source() -> None:
    policy = CapturePolicy.from_dict(
        {
            "default": "metadata",
            "body_paths": {
                "billing": {"request": ["metadata.invoice.lines"], "response": ["metadata.reply"]}
            },
        }
    )
    ev = convert_event(
        {
            "actor": {"id": "a"},
            "action": "invoice.create",
            "metadata": {
                "invoice": {"lines": [1, 2], "total": 3},
                "reply": "ok",
                "request": {"body": "x", "path": "/i"},
                "cloudtrail": {"requestParameters": {}},
            },
        }
    )
    out = policy.apply(ev, "billing")
    assert out is not None and out.metadata is not None
    assert out.metadata["invoice"] == {"total": 3}
    assert out.metadata["request"] == {"path": "/i"}  # the generic body path applies too
    assert "cloudtrail" in out.metadata  # another source's paths do not
    assert out.metadata["_dropped"] == [
        "metadata.invoice.lines",
        "metadata.reply",
        "metadata.request.body",
    ]
    ct = policy.evaluate(ev, "cloudtrail")
    assert "metadata.cloudtrail.requestParameters" in ct.drop_paths


def test_event_without_metadata_is_kept() -> None:
    policy = CapturePolicy(default="metadata")
    ev = convert_event({"actor": {"id": "a"}, "action": "x.y"})
    assert policy.apply(ev, "api") is ev


@pytest.mark.parametrize(
    ("config", "where"),
    [
        ({"rules": [{"level": "loud"}]}, "capture.rules[0].level"),
        ({"rules": [{"actions": ["x"]}]}, "capture.rules[0].level"),
        ({"rules": [{"level": "full", "verbs": ["get"]}]}, "capture.rules[0]"),
        (
            {"rules": [{"level": "full", "actions": "x.*"}, {"level": "full", "actions": [3]}]},
            "capture.rules[1].actions",
        ),
        ({"rules": [{"level": "full", "actor_types": ["robot"]}]}, "capture.rules[0].actor_types"),
        ({"rules": [{"level": "full", "outcomes": ["fine"]}]}, "capture.rules[0].outcomes"),
        ({"rules": [{"level": "full", "omit_stages": ["Done"]}]}, "capture.rules[0].omit_stages"),
        ({"omit_stages": ["Later"]}, "capture.omit_stages"),
        ({"default": "some"}, "capture.default"),
        ({"rules": {"level": "full"}}, "capture.rules"),
        ({"body_paths": {"x": {"request": ["request.body"]}}}, "capture.body_paths.x.request"),
        ({"body_paths": {"x": {"query": ["metadata.q"]}}}, "capture.body_paths.x"),
        ({"level": "full"}, "capture"),
    ],
)
def test_configuration_errors_name_the_place(config: dict[str, Any], where: str) -> None:
    with pytest.raises(PolicyError) as info:
        CapturePolicy.from_dict(config)
    assert info.value.where == where


def test_yaml_errors_and_files(tmp_path: Any) -> None:
    with pytest.raises(PolicyError, match="not valid YAML"):
        CapturePolicy.from_yaml("rules: [")
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    assert len(CapturePolicy.load(path).rules) == 5
    # The capture section may also be given on its own.
    assert CapturePolicy.from_yaml("default: none").default == "none"


@pytest.mark.parametrize(
    ("patterns", "text", "hit"),
    [
        (["k8s.secrets.*"], "k8s.secrets.get", True),
        (["k8s.secrets.*"], "k8s.secretsx", False),
        (["*"], "", True),
        (["system:serviceaccount:*:default"], "system:serviceaccount:kube-system:default", True),
        (["system:serviceaccount:*:default"], "system:serviceaccount:kube-system:builder", False),
        (["user.login"], "user.login", True),
        (["user.login"], "user.logins", False),
        (["*.delete"], "k8s.pods.delete", True),
        (["a*b*c"], "a-b-c", True),
        (["a.b"], "aXb", False),  # dots are literal
    ],
)
def test_glob(patterns: list[str], text: str, hit: bool) -> None:
    assert Glob(patterns)(text) is hit


@given(
    st.lists(st.text(alphabet="ab.*:", max_size=6), min_size=1, max_size=4),
    st.text(alphabet="ab.:", max_size=8),
)
def test_glob_agrees_with_a_reference(patterns: list[str], text: str) -> None:
    expected = any(
        re.fullmatch(".*".join(re.escape(p) for p in pat.split("*")), text, re.S)
        for pat in patterns
    )
    assert Glob(patterns)(text) is bool(expected)
