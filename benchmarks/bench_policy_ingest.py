"""The wired source path: webhook body -> parse -> stage merge -> policy + redaction ->
durable append, against the same append without the policy.

    python benchmarks/bench_policy_ingest.py [--events 20000] [--batch 400]

Kubernetes events are the real samples of tests/testdata (falco traces, audit2rbac),
repeated with fresh audit ids. Prints a table: events/s and µs per event for the whole path
and for the append alone; the difference is what the policy and redaction cost when wired.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from auditkeep.config import load_settings, open_ledger
from auditkeep.sources.kubernetes import parse_k8s_payload
from auditkeep.sources.service import SourceOptions, SourceService

TESTDATA = Path(os.environ.get("AUDITKEEP_TESTDATA", Path(__file__).resolve().parents[1] / "tests" / "testdata"))


def samples() -> list[dict[str, object]]:
    d = TESTDATA / "kubernetes"
    lines = [x for f in sorted((d / "falco-traces").glob("*.json")) for x in f.read_bytes().splitlines()]
    lines += (d / "audit2rbac-demo.log").read_bytes().splitlines()
    out = []
    for line in lines:
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and obj.get("kind") == "Event" and obj.get("stage") != "ResponseStarted":
            out.append(obj)
    return out


def bodies(n: int, batch: int) -> list[bytes]:
    base = samples()
    items = []
    for i in range(n):
        ev = dict(base[i % len(base)])
        ev["auditID"] = f"{i:08x}-0000-4000-8000-000000000000"
        items.append(ev)
    return [
        json.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items[i : i + batch]}).encode()
        for i in range(0, n, batch)
    ]


def run(n: int, batch: int, policy: bool) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        lg = open_ledger(load_settings(env={}, overrides={"data": tmp, "durability": "normal"}), background=False)
        if not policy:
            lg.pipeline = None
        svc = SourceService(lg, SourceOptions())
        reqs = bodies(n, batch)
        t0 = time.perf_counter()
        if policy:
            for body in reqs:
                svc.kubernetes(body, "bench", "c1")
        else:
            for body in reqs:
                events, _ = parse_k8s_payload(body, cluster="c1")
                lg.append(events, "bench")
        took = time.perf_counter() - t0
        assert lg.head("bench").size == n, lg.head("bench").size
        lg.close()
        return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=400)
    a = ap.parse_args()
    print(f"{'path':<44} {'events/s':>10} {'µs/event':>9}")
    for label, policy in (("webhook body -> policy + redaction -> ledger", True), ("webhook body -> ledger (no policy)", False)):
        best = min(run(a.events, a.batch, policy) for _ in range(2))
        print(f"{label:<44} {a.events / best:>10,.0f} {best / a.events * 1e6:>9.1f}")
    print(f"({a.events} Kubernetes events in batches of {a.batch}, SQLite durability=normal, load {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
