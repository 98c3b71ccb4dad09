"""Alert engine throughput: 100 match rules, 20 threshold rules and 50 Sigma rules (from
the shared test data) over realistic event mixes, on one core.

    python benchmarks/bench_alerts.py [--events 200000]

The baseline is a loop that does nothing but read each event's ``action``. Test data is
found at ``$AUDITKEEP_TESTDATA`` or ``tests/testdata``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests" / "alerts"))
sys.path.insert(0, str(ROOT / "tests"))  # testdata_path, used by the helpers

from alerts_helpers import (  # noqa: E402
    auditd_events,
    cloudtrail_event,
    json_lines_or_doc,
    k8s_event,
    panther_events,
)

from auditkeep.alerts import Engine, Rule, load_rules_dir, parse_rule  # noqa: E402
from auditkeep.model.timefmt import format_rfc3339, parse_rfc3339  # noqa: E402

SERVICES = ["user", "session", "secrets", "db", "billing", "admin", "files", "api", "k8s_ui", "report"]
VERBS = ["login", "logout", "read", "write", "delete", "create", "update", "list", "export", "grant"]
ACTIONS = [f"{s}.{v}" for s in SERVICES for v in VERBS]


def testdata() -> Path:
    env = os.environ.get("AUDITKEEP_TESTDATA")
    path = Path(env) if env else ROOT / "tests" / "testdata"
    if not path.is_dir():
        sys.exit(f"test data not found at {path} (set AUDITKEEP_TESTDATA)")
    return path


def native_rules(rnd: random.Random) -> list[Rule]:
    rules = []
    for i in range(100):
        action = rnd.choice(ACTIONS)
        shape = i % 5
        if shape == 0:
            m: dict[str, Any] = {"action": action, "outcome": "denied", "actor.type": "service"}
        elif shape == 1:
            m = {"action": {"in": rnd.sample(ACTIONS, 3)}, "actor.ip": {"cidr": ["10.3.7.0/24", "192.168.0.0/16"]}}
        elif shape == 2:
            m = {"all": [{"action": action}, {"resource.id": {"prefix": "prod/1"}}, {"not": {"actor.type": "service"}}]}
        elif shape == 3:
            m = {"action": {"prefix": rnd.choice(SERVICES) + "."}, "resource.name": {"regex": "^(root|admin)$"}, "outcome": "failure"}
        else:
            m = {"action": action, "metadata.bytes": {"gt": 1_950_000}}
        rules.append(parse_rule({"id": f"m{i}", "match": m, "group_by": ["actor.id"]}))
    for i in range(20):
        th: dict[str, Any] = {"count": 20, "window": "5m"}
        if i % 4 == 0:
            th = {"count": 30, "distinct": "resource.id", "window": "10m"}
        rules.append(parse_rule({
            "id": f"t{i}", "kind": "threshold", "group_by": ["actor.id"], "threshold": th,
            "match": {"action": rnd.choice(ACTIONS), "outcome": {"in": ["failure", "denied"]}} if i % 4 else {"action": rnd.choice(ACTIONS)},
        }))
    return rules


def sigma_rules(td: Path) -> list[Rule]:
    rules, errors = load_rules_dir(td / "sigma" / "rules")
    assert not errors
    by_kind: dict[str, list[Rule]] = {}
    for r in rules:
        by_kind.setdefault(r.spec.mapping.kind, []).append(r)  # type: ignore[attr-defined]
    picked = by_kind["k8s"][:12] + by_kind["cloudtrail"][:22] + by_kind["auditd"][:12] + by_kind["gcp"][:4]
    assert len(picked) == 50
    return picked


def source_events(td: Path) -> dict[str, list[dict[str, Any]]]:
    k8s = [k8s_event(json.loads(line)) for f in sorted((td / "kubernetes" / "falco-traces").glob("*.json"))
           for line in f.read_text().splitlines() if line.strip()]
    k8s += [k8s_event(r) for r in json_lines_or_doc(td / "kubernetes" / "audit2rbac-demo.log")]
    k8s += [e for _, e in panther_events(td / "kubernetes" / "kubernetes_rules.tests.jsonl") if "k8s" in e["metadata"]]
    ct = [cloudtrail_event(r) for r in json_lines_or_doc(td / "cloudtrail" / "ec2_proxy_s3_exfiltration_2020-09-14011940.json")]
    ct += [e for _, e in panther_events(td / "cloudtrail" / "aws_cloudtrail_rules.tests.jsonl") if "cloudtrail" in e["metadata"]]
    au = [e for f in sorted((td / "auditd").rglob("*.log")) for e in auditd_events(f)]
    return {"k8s": k8s, "cloudtrail": ct, "auditd": au}


def app_event(rnd: random.Random, t: int) -> dict[str, Any]:
    actor = f"user{rnd.randrange(500)}"
    return {
        "id": f"0190f5c2-7a1e-7cc0-9d7e-{rnd.getrandbits(48):012x}",
        "actor": {"id": actor, "type": rnd.choice(["user", "user", "service"]), "ip": f"10.{rnd.randrange(4)}.{rnd.randrange(256)}.{rnd.randrange(256)}"},
        "action": rnd.choice(ACTIONS),
        "time": format_rfc3339(t),
        "tenant": "acme",
        "outcome": rnd.choice(["success", "success", "success", "failure", "denied"]),
        "resource": {"type": "doc", "id": f"{rnd.choice(['prod', 'dev'])}/{rnd.randrange(2000)}", "name": "root" if rnd.random() < 0.02 else rnd.choice(["report", "admin-panel", "invoice", "notes"])},
        "metadata": {"bytes": rnd.randrange(2_000_000)},
    }


def mix(kind: str, n: int, src: dict[str, list[dict[str, Any]]], rnd: random.Random) -> list[dict[str, Any]]:
    weights = {
        "app only": {"app": 1.0},
        "mixed (60% app, 15% k8s, 15% CloudTrail, 10% auditd)": {"app": 0.6, "k8s": 0.15, "cloudtrail": 0.15, "auditd": 0.1},
        "sources only (k8s, CloudTrail, auditd)": {"k8s": 0.4, "cloudtrail": 0.4, "auditd": 0.2},
    }[kind]
    names = list(weights)
    probs = [weights[k] for k in names]
    t = parse_rfc3339("2024-05-01T00:00:00Z")
    out = []
    for _ in range(n):
        t += rnd.randrange(1, 20_000_000)  # ~100 events/s of event time
        pick = rnd.choices(names, probs)[0]
        if pick == "app":
            out.append(app_event(rnd, t))
        else:
            e = dict(rnd.choice(src[pick]))
            e["time"] = format_rfc3339(t)
            out.append(e)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    args = ap.parse_args()
    rnd = random.Random(42)
    td = testdata()
    rules = native_rules(rnd) + sigma_rules(td)
    src = source_events(td)
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
          f"{len(rules)} rules (100 match, 20 threshold, 50 Sigma); {args.events} events per run\n")
    print(f"{'event mix':<55} {'loop':>10} {'events/s':>12} {'rules/event':>12} {'alerts':>8}")
    print("-" * 101)
    for kind in ("app only", "mixed (60% app, 15% k8s, 15% CloudTrail, 10% auditd)", "sources only (k8s, CloudTrail, auditd)"):
        events = mix(kind, args.events, src, rnd)
        t0 = time.perf_counter()
        n = 0
        for e in events:
            if e["action"]:
                n += 1
        base = time.perf_counter() - t0
        eng = Engine(rules)
        t0 = time.perf_counter()
        alerts = 0
        process = eng.process
        for i, e in enumerate(events):
            alerts += len(process("acme", i, e))
        took = time.perf_counter() - t0
        print(f"{kind:<55} {'baseline':>10} {n / base:>12,.0f} {'-':>12} {'-':>8}")
        print(f"{'':<55} {'engine':>10} {len(events) / took:>12,.0f} {eng.stats.evaluations / len(events):>12.2f} {alerts:>8}")


if __name__ == "__main__":
    main()
