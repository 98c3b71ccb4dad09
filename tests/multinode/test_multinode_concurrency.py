"""Several nodes, one log, no fork: 4 client processes x 2 tenants through two real
``auditkeep serve`` nodes sharing one PostgreSQL and one signing key.

The issue's full size — 50,000 events per client and tenant, 400,000 in all, about two
minutes here — runs in CI (``CI=true``); on a laptop the default is 5,000 (40,000 in all) to
keep a local run short. ``AUDITKEEP_TEST_MULTINODE_EVENTS`` sets it either way.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("pg_support")

from multinode_support import Clients, Cluster, check_receipts, make_cluster

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
EVENTS = int(os.environ.get("AUDITKEEP_TEST_MULTINODE_EVENTS") or (50_000 if IN_CI else 5_000))
CLIENTS = 4
TENANTS = ["alpha", "beta"]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    yield from make_cluster(tmp_path)


def test_four_clients_two_nodes_one_log_per_tenant(cluster: Cluster) -> None:
    a = cluster.start("node-a")
    b = cluster.start("node-b")
    t0 = time.monotonic()
    clients = Clients(cluster, CLIENTS, TENANTS, EVENTS, [a, b])
    try:
        clients.wait()
    finally:
        clients.kill()
    elapsed = time.monotonic() - t0
    total = CLIENTS * len(TENANTS) * EVENTS
    print(f"\n{total} events through 2 nodes in {elapsed:.1f} s: {total / elapsed:,.0f} events/s")
    answers = clients.answers()
    assert set(answers) <= {"200", "503"}, answers
    sizes = check_receipts(cluster, clients.receipts(), total)
    assert [sizes[t] for t in TENANTS] == [CLIENTS * EVENTS] * len(TENANTS)
    cluster.stop_all()  # the final checkpoints are signed on the way out
    report = cluster.verify()
    assert report["ok"], report
    checked = {t["tenant"]: t for t in report["tenants"]}
    for t in TENANTS:
        assert checked[t]["entries_checked"] == CLIENTS * EVENTS
        assert checked[t]["checkpoints_checked"] >= 2
    for node in (a, b):
        assert "Traceback" not in node.output(), node.output()
