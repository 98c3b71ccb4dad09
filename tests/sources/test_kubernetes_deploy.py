"""The sample deployment files under deploy/kubernetes are well formed."""

from __future__ import annotations

from pathlib import Path

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
