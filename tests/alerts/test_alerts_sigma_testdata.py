"""SigmaHQ rules (Detection Rule License 1.1, SigmaHQ) against real audit events.

Every rule of ``testdata/sigma/rules`` loads; rules outside what the engine supports are
refused with the file, line and reason. Specific rules fire on the events they are written
for (Falco's and Panther's Kubernetes traces, Panther's CloudTrail tests, OTRF
atomic-red-team auditd runs) and stay quiet on others. Every event comes from the real
source mappers (``alerts_helpers``), as the engine sees them in production.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alerts_helpers import (
    as_engine_event,
    auditd_events,
    cloudtrail_event,
    json_lines_or_doc,
    jsonl,
    k8s_event,
    panther_events,
    shared_testdata,
)

from auditkeep.alerts import Engine, Rule, load_rules_dir, load_rules_file
from auditkeep.sources.base import SourceError
from auditkeep.sources.kubernetes import parse_k8s_log_line

RULE_COUNT = 142  # files under testdata/sigma/rules, one rule each


@pytest.fixture(scope="module")
def sigma() -> tuple[list[Rule], list[Any]]:
    return load_rules_dir(shared_testdata() / "sigma" / "rules")


def test_every_sigma_rule_of_the_test_data_loads(sigma: tuple[list[Rule], list[Any]]) -> None:
    """Every log source of this rule set is mapped (Kubernetes audit, CloudTrail, GCP audit,
    auditd) and every rule uses only what the engine supports: none is refused."""
    rules, errors = sigma
    files = sorted((shared_testdata() / "sigma" / "rules").rglob("*.yml"))
    assert len(files) == RULE_COUNT
    assert [f"{e.file}: {e.reason}" for e in errors] == []
    assert len(rules) == RULE_COUNT
    assert Counter(r.spec.mapping.kind for r in rules) == {"cloudtrail": 57, "auditd": 53, "k8s": 16, "gcp": 16}  # type: ignore[attr-defined]


def test_refusals_name_the_file_line_and_reason(tmp_path: Path) -> None:
    src = shared_testdata() / "sigma" / "rules" / "application" / "kubernetes" / "audit" / "kubernetes_audit_secrets_enumeration.yml"
    good = src.read_text()
    cases = {
        "windows.yml": good.replace("product: kubernetes", "product: windows"),
        "agg.yml": good.replace("condition: selection", "condition: selection | count() by user > 5"),
        "mod.yml": good.replace("verb: 'list'", "verb|sounds_like: 'list'"),
        "cond.yml": good.replace("condition: selection", "condition: selection and nope"),
        "expand.yml": good.replace("verb: 'list'", "verb|expand: '%verbs%'"),
        "near.yml": good.replace("condition: selection", "condition: selection near selection"),
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
    rules, errors = load_rules_dir(tmp_path)
    assert rules == []
    assert len(errors) == len(cases)
    assert all(e.file and e.reason and e.line for e in errors)
    reasons = {Path(e.file).name: (e.line, e.reason) for e in errors}  # type: ignore[arg-type]
    assert "unsupported logsource" in reasons["windows.yml"][1]
    assert "aggregation" in reasons["agg.yml"][1]
    assert "unknown modifier 'sounds_like'" in reasons["mod.yml"][1]
    assert "unknown search identifier 'nope'" in reasons["cond.yml"][1]
    assert "placeholders" in reasons["expand.yml"][1]
    assert "near" in reasons["near.yml"][1]
    lines = good.splitlines()
    assert reasons["windows.yml"][0] == next(i for i, t in enumerate(lines, 1) if t.startswith("logsource"))
    assert reasons["cond.yml"][0] == next(i for i, t in enumerate(lines, 1) if "condition:" in t)


# -- positive pairings -------------------------------------------------------------------

TD = Callable[[], Path]


def falco(name: str) -> list[dict[str, Any]]:
    path = shared_testdata() / "kubernetes" / "falco-traces" / name
    return [k8s_event(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


def panther(file: str, test_name: str, panther_rule: str | None = None) -> list[dict[str, Any]]:
    found = [
        e
        for t, e in panther_events(shared_testdata() / file)
        if t["test_name"] == test_name and panther_rule in (None, t["rule_id"])
    ]
    assert found, test_name
    return found


def mappable_k8s(files: list[Path]) -> list[dict[str, Any]]:
    """Every line of ``files`` the Kubernetes mapper accepts (Falco's traces include a few
    malformed records, which go to quarantine)."""
    out = []
    for path in files:
        for line in path.read_bytes().splitlines():
            try:
                out.append(as_engine_event(parse_k8s_log_line(line)))
            except SourceError:
                continue
    return out


def ebs_disabled() -> dict[str, Any]:
    """Panther's only DisableEbsEncryptionByDefault record is cut down to the fields its
    rule reads and has no ``userIdentity``, which every CloudTrail record carries (the
    mapper refuses it). It goes through the mapper with an IAM user added, nothing else."""
    log = next(t["log"] for t in jsonl(shared_testdata() / CT_TESTS) if t["test_name"] == "DisableEbsEncryptionByDefault Event")
    assert "userIdentity" not in log
    who = {"type": "IAMUser", "principalId": "AIDAEXAMPLE", "arn": "arn:aws:iam::123456789012:user/alice", "accountId": "123456789012", "userName": "alice"}
    return cloudtrail_event({**log, "userIdentity": who})


def auditd(name: str) -> list[dict[str, Any]]:
    return auditd_events(shared_testdata() / "auditd" / name)


K8S_TESTS = "kubernetes/kubernetes_rules.tests.jsonl"
CT_TESTS = "cloudtrail/aws_cloudtrail_rules.tests.jsonl"

# (Sigma rule id, its title, events it is written for, events of the same source it must not fire on)
PAIRS: list[tuple[str, str, Callable[[], list[dict[str, Any]]], Callable[[], list[dict[str, Any]]]]] = [
    ("a1b0ca4e-7835-413e-8471-3ff2b8a66be6", "exec into pod", lambda: falco("exec_pod.json"), lambda: falco("attach_pod.json") + falco("create_nginx_pod_unprivileged.json")),
    ("58d31a75-a4f8-4c40-985b-373d58162ca2", "secret modified/deleted", lambda: falco("create_kube_system_secret.json") + falco("delete_secret.json"), lambda: falco("create_configmap.json") + falco("delete_configmap.json")),
    ("10b97915-ec8d-455f-a815-9a78926585f6", "rolebinding modification", lambda: falco("create_clusterrolebinding.json") + falco("delete_clusterrolebinding.json"), lambda: falco("create_clusterrole.json") + falco("delete_clusterrole.json")),
    ("e31bae15-83ed-473e-bf31-faf4f8a17d36", "service account created", lambda: falco("create_serviceaccount.json"), lambda: falco("delete_serviceaccount.json")),
    ("402b955c-8fe0-4a8c-b635-622b4ac5f902", "hostPath mount", lambda: falco("create_nginx_pod_sensitive_mount.json"), lambda: falco("create_nginx_pod_unprivileged.json") + falco("create_nginx_pod_hostnetwork.json")),
    ("a80d927d-ac6e-443f-a867-e8d6e3897318", "pod in kube-system", lambda: falco("create_pod_kube_system_namespace.json"), lambda: falco("create_pod_kube_public_namespace.json")),
    ("40967487-139b-4811-81d9-c9767a92aa5a", "deployment deleted", lambda: falco("delete_deployment.json"), lambda: falco("create_deployment.json")),
    ("eeb3e9e1-b685-44e4-9232-6bb701f925b5", "secrets enumeration", lambda: panther(K8S_TESTS, "EKS cluster-wide secret list"), lambda: falco("create_secret.json")),
    ("c5cd1b20-36bb-488d-8c05-486be3d0cb97", "privileged container (capabilities)", lambda: panther(K8S_TESTS, "EKS Pod with SYS_ADMIN Capability"), lambda: falco("create_nginx_pod_unprivileged.json")),
    ("eed82177-38f5-4299-8a76-098d50d225ab", "admission controller", lambda: panther(K8S_TESTS, "EKS MutatingWebhookConfiguration Created"), lambda: falco("create_clusterrole.json")),
    ("0d933542-1f1f-420d-97d4-21b2c3c492d9", "unauthenticated (401)", lambda: [as_engine_event(parse_k8s_log_line((shared_testdata() / "kubernetes" / "failed-authentication.log").read_bytes()))], lambda: falco("anonymous_creates_namespace_foo.json")),
    ("0d933542-1f1f-420d-97d4-21b2c3c492d9", "unauthorized (403)", lambda: [k8s_event(r) for r in json_lines_or_doc(shared_testdata() / "kubernetes" / "audit2rbac-demo.log") if (r.get("responseStatus") or {}).get("code") == 403], lambda: falco("create_deployment.json")),
    ("a136ac98-b2bc-4189-a14d-f0d0388e57a7", "S3 versioning suspended", lambda: panther(CT_TESTS, "Versioning Suspended Successfully"), lambda: panther(CT_TESTS, "Bucket Logging Enabled")),
    ("e386b9b5-af12-450e-afff-761730fb8a98", "VPC flow logs deleted", lambda: panther(CT_TESTS, "Logs Deleted", "AWS.VPCFlow.LogsDeleted"), lambda: panther(CT_TESTS, "Route Table Modified")),
    ("16124c2d-e40b-4fcc-8f2c-5ab7870a2223", "EBS default encryption disabled", lambda: [ebs_disabled()], lambda: panther(CT_TESTS, "Security Group Modified")),
    ("9b1b8e9b-0a5d-4af1-9d2f-4c4b6e7c2c9d", "TruffleHog GetCallerIdentity", lambda: panther(CT_TESTS, "TruffleHog GetCallerIdentity"), lambda: panther(CT_TESTS, "GetSessionToken by IAM User")),
    ("6393e346-1977-46ef-8987-ad414a145fad", "console login failed", lambda: panther(CT_TESTS, "Unsuccessful Login w/ MFA"), lambda: panther(CT_TESTS, "No MFA Login - IAM User")),
    ("8a63cdd4-6207-414a-85bc-7e032bd3c1a2", "RDS master password change", lambda: panther(CT_TESTS, "Master pass modified"), lambda: panther(CT_TESTS, "RDS Cluster Deleted")),
    ("c52a914f-3d8b-4b2a-bb75-b3991e75f8ba", "binary padding with dd", lambda: auditd("sh_binary_padding_dd_2020-11-10081941.log"), lambda: auditd("sh_arp_cache_2020-11-10074812.log")),
    ("37222991-11e9-4b6d-8bdf-60fbe48f753e", "dd from /dev/zero", lambda: auditd("sh_binary_padding_dd_2020-11-10081941.log"), lambda: auditd("sh_arp_cache_2020-11-10074812.log")),
    ("759d0d51-bc99-4b5e-9add-8f5b2c8e7512", "user account created", lambda: [e for e in auditd("go-libaudit/auparse/audit-rhel7.log") if any(r["type"] == "ADD_USER" for r in e["metadata"]["auditd"]["records"])], lambda: auditd("go-libaudit/normal.log")),
]


def _fired(rules: list[Rule], rule_id: str, events: list[dict[str, Any]]) -> int:
    eng = Engine([r for r in rules if r.id == rule_id])
    assert eng.rules, f"rule {rule_id} not loaded"
    return sum(len(eng.process("acme", i, e)) for i, e in enumerate(events))


@pytest.mark.parametrize("rule_id,what,positive,negative", PAIRS, ids=[p[1] for p in PAIRS])
def test_rule_fires_on_the_events_it_targets(sigma: tuple[list[Rule], list[Any]], rule_id: str, what: str, positive: Callable[[], list[dict[str, Any]]], negative: Callable[[], list[dict[str, Any]]]) -> None:
    rules, _ = sigma
    pos = positive()
    assert _fired(rules, rule_id, pos) == len(pos), f"{what}: should fire on every targeted event"
    neg = negative()
    assert neg and _fired(rules, rule_id, neg) == 0, f"{what}: fired on an unrelated event"


def test_rules_never_fire_on_another_sources_events(sigma: tuple[list[Rule], list[Any]]) -> None:
    """The same raw record placed under another source's key matches nothing of the rule's
    own source: a CloudTrail record under metadata.k8s, a k8s event under metadata.cloudtrail."""
    rules, _ = sigma
    ct = panther(CT_TESTS, "Versioning Suspended Successfully")[0]["metadata"]["cloudtrail"]
    k8 = json.loads((shared_testdata() / "kubernetes" / "falco-traces" / "exec_pod.json").read_text().splitlines()[0])
    swapped = [
        {**k8s_event(k8), "metadata": {"cloudtrail": k8}},
        {**cloudtrail_event(ct), "metadata": {"k8s": ct}},
        {**cloudtrail_event(ct), "metadata": {"auditd": {"sequence": 1, "records": [ct]}}},
        {**cloudtrail_event(ct), "metadata": {"gcp": ct}},
        {**k8s_event(k8)},  # and the k8s event proper only fires k8s rules
    ]
    eng = Engine(rules)
    kinds = {r.id: r.spec.mapping.kind for r in rules}  # type: ignore[attr-defined]
    fired = [[kinds[a.rule_id] for a in eng.process("acme", i, e)] for i, e in enumerate(swapped)]
    assert fired[0] == [] and fired[2] == []
    assert "cloudtrail" not in fired[1] and "cloudtrail" not in fired[3]
    assert fired[4] and set(fired[4]) == {"k8s"}


def test_a_run_over_all_testdata_fires_only_scoped_rules(sigma: tuple[list[Rule], list[Any]]) -> None:
    rules, _ = sigma
    kinds = {r.id: r.spec.mapping.kind for r in rules}  # type: ignore[attr-defined]
    eng = Engine(rules)
    td = shared_testdata()
    batches: dict[str, list[dict[str, Any]]] = {
        "k8s": mappable_k8s(sorted((td / "kubernetes" / "falco-traces").glob("*.json"))),
        "cloudtrail": [cloudtrail_event(r) for r in json_lines_or_doc(td / "cloudtrail" / "ec2_proxy_s3_exfiltration_2020-09-14011940.json")],
        "auditd": [e for f in sorted((td / "auditd").rglob("*.log")) for e in auditd_events(f)],
    }
    seen: Counter[str] = Counter()
    for kind, events in batches.items():
        for i, e in enumerate(events):
            for a in eng.process("acme", i, e):
                assert kinds[a.rule_id] == kind
                seen[kind] += 1
    assert seen["k8s"] > 10 and seen["auditd"] >= 2
    # the OTRF exfiltration run is made with an assumed role: the AssumeRole misuse rule sees it
    assert seen["cloudtrail"] >= 5


def test_a_single_sigma_file_loads_alone() -> None:
    path = shared_testdata() / "sigma" / "rules" / "linux" / "auditd" / "execve" / "lnx_auditd_binary_padding.yml"
    rules, errors = load_rules_file(path)
    assert errors == [] and [r.id for r in rules] == ["c52a914f-3d8b-4b2a-bb75-b3991e75f8ba"]
    assert rules[0].severity == "high" and rules[0].kind == "sigma"


def test_gcp_audit_field_names_on_real_gke_entries() -> None:
    """No SigmaHQ GCP rule of the test data targets these entries, so a rule in the same
    style (ECS names and ``data.`` names) is checked against real GKE audit entries."""
    from auditkeep.alerts import load_rules_text

    rules, errors = load_rules_text("""
title: Exec into a GKE pod
id: gke-exec
logsource: {product: gcp, service: gcp.audit}
detection:
  selection:
    gcp.audit.method_name|endswith: '.pods.exec.create'
    data.protoPayload.serviceName: k8s.io
  condition: selection
""")
    assert errors == []
    entries = [(t, e) for t, e in panther_events(shared_testdata() / K8S_TESTS) if "gcp" in e["metadata"]]
    exec_ = [e for t, e in entries if e["metadata"]["gcp"]["protoPayload"]["methodName"].endswith("pods.exec.create")]
    other = [e for t, e in entries if not e["metadata"]["gcp"]["protoPayload"]["methodName"].endswith("pods.exec.create")]
    assert exec_ and other
    assert _fired(rules, "gke-exec", exec_) == len(exec_)
    assert _fired(rules, "gke-exec", other) == 0


def test_explanations_read_well_and_alerts_are_grouped_by_actor(sigma: tuple[list[Rule], list[Any]]) -> None:
    """Each log source's label reads as English ("an AWS CloudTrail event", never "a
    auditkeep event event"), and a detection's alert is grouped by who acted."""
    from auditkeep.alerts import load_rules_text

    rules, _ = sigma
    cases = [
        ("a1b0ca4e-7835-413e-8471-3ff2b8a66be6", falco("exec_pod.json"), "a Kubernetes audit event"),
        ("a136ac98-b2bc-4189-a14d-f0d0388e57a7", panther(CT_TESTS, "Versioning Suspended Successfully"), "an AWS CloudTrail event"),
        ("c52a914f-3d8b-4b2a-bb75-b3991e75f8ba", auditd("sh_binary_padding_dd_2020-11-10081941.log"), "a Linux auditd event"),
    ]
    own, errors = load_rules_text("""
title: Secret read
id: own-secret-read
logsource: {product: auditkeep}
detection:
  selection: {action: secrets.read}
  condition: selection
""")
    assert errors == []
    mine = {"actor": {"id": "alice"}, "action": "secrets.read", "time": "2024-05-01T12:00:00Z"}
    cases.append(("own-secret-read", [mine], "an auditkeep event"))
    for rule_id, events, what in cases:
        eng = Engine([r for r in [*rules, *own] if r.id == rule_id])
        fired = [a for i, e in enumerate(events) for a in eng.process("acme", i, e)]
        assert fired, rule_id
        a = fired[0]
        assert f"matched {what}" in a.explanation and "event event" not in a.explanation, a.explanation
        actor = events[next(i for i, e in enumerate(events) if _fires(rule_id, [*rules, *own], e))]["actor"]["id"]
        assert a.group_key == f"actor.id={actor}" and a.fields["actor.id"] == actor
    assert "matched an auditkeep event (action=secrets.read)." in fired[0].explanation


def _fires(rule_id: str, rules: list[Rule], event: dict[str, Any]) -> bool:
    return bool(Engine([r for r in rules if r.id == rule_id]).process("acme", 0, event))
