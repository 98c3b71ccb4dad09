"""Several ``auditkeep serve`` nodes on one PostgreSQL schema, their clients, and checks.

The cluster is set up the way the docs tell an operator to: ``auditkeep --db URL init``
once (log id and signing key), then every node started with ``--db URL`` and the same key
in ``AUDITKEEP_SIGNING_KEY``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pg_support
from server_harness import KEY_RE, ServeProcess, clean_env

HERE = Path(__file__).resolve().parent


def cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auditkeep.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env or clean_env(),
        timeout=timeout,
    )


class Node(ServeProcess):
    """One ``auditkeep serve --db`` process."""

    def __init__(self, cluster: Cluster, name: str) -> None:
        self.name = name
        data = cluster.root / name
        data.mkdir(exist_ok=True)
        super().__init__(
            ["--db", cluster.url, "--data", str(data), "--log-level", "warning"],
            log=cluster.root / f"{name}.log",
            env=cluster.env,
            cwd=cluster.root,
            name=f"node {name}",
        )
        self.start()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        return super().stop(sig, timeout)


@dataclass
class Cluster:
    root: Path
    schema: str
    url: str
    key: str = ""
    admin: str = ""
    nodes: list[Node] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        # Every node the same signing key and console key, as docs/postgresql.md says.
        return clean_env(
            AUDITKEEP_SIGNING_KEY=self.key,
            AUDITKEEP_CONSOLE_KEY_FILE=str(self.root / "init" / "console.key"),
            AUDITKEEP_RATE_LIMIT="0",
        )

    def init(self) -> None:
        r = cli(
            "--db",
            self.url,
            "--data",
            str(self.root / "init"),
            "init",
            "--log-id",
            "multinode",
            cwd=self.root,
        )
        assert r.returncode == 0, r.stderr
        self.key = (self.root / "init" / "signing.key").read_text()

    def start(self, name: str) -> Node:
        node = Node(self, name)
        self.nodes.append(node)
        if not self.admin:
            found = KEY_RE.findall(node.output())
            assert found, node.output()
            self.admin = found[0]
        return node

    def stop_all(self) -> None:
        for n in self.nodes:
            n.stop()

    def store(self) -> Any:
        from auditkeep.store.postgres import PostgresStore

        return PostgresStore(self.url, max_size=2)

    def verify(self) -> dict[str, Any]:
        """``auditkeep verify --json`` over the whole database, as an operator runs it."""
        r = cli(
            "--db",
            self.url,
            "--data",
            str(self.root / "verifier"),
            "verify",
            "--json",
            cwd=self.root,
            env=clean_env(AUDITKEEP_SIGNING_KEY=self.key),
        )
        assert r.returncode in (0, 1), r.stderr
        report: dict[str, Any] = json.loads(r.stdout)
        return report


def make_cluster(tmp_path: Path) -> Iterator[Cluster]:
    pg_support.require_postgres()
    schema = pg_support.new_schema_name("multinode")
    cluster = Cluster(tmp_path, schema, pg_support.url_for_schema(schema))
    try:
        cluster.init()
        yield cluster
    finally:
        cluster.stop_all()
        pg_support.drop_schema(schema)


class Clients:
    """Client processes (multinode_client.py), each writing its receipts to a file."""

    def __init__(
        self,
        cluster: Cluster,
        count: int,
        tenants: list[str],
        events: int,
        nodes: list[Node],
        batch: int = 500,
        pace: float = 0.0,
    ) -> None:
        self.outs = [cluster.root / f"client{i}.jsonl" for i in range(count)]
        self.procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    str(HERE / "multinode_client.py"),
                    str(out),
                    "--nodes",
                    ",".join(n.url for n in nodes),
                    "--token",
                    cluster.admin,
                    "--tenants",
                    ",".join(tenants),
                    "--events",
                    str(events),
                    "--batch",
                    str(batch),
                    "--seed",
                    str(i),
                    "--pace",
                    str(pace),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=clean_env(),
            )
            for i, out in enumerate(self.outs)
        ]

    def received(self) -> int:
        total = 0
        for out in self.outs:
            if out.exists():
                with out.open() as fh:
                    total += sum(1 for _ in fh)
        return total

    def wait(self, timeout: float = 1800) -> None:
        deadline = time.monotonic() + timeout
        for p in self.procs:
            _, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            assert p.returncode == 0, err.decode(errors="replace")

    def kill(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.communicate()  # reaps it and closes its pipes

    def check_running(self) -> None:
        for p in self.procs:
            if p.poll() is not None:
                _, err = p.communicate()
                raise AssertionError(
                    f"a client ended early ({p.returncode}): {err.decode(errors='replace')}"
                )

    def receipts(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for path in self.outs:
            with path.open() as fh:
                out += [json.loads(line) for line in fh]
        return out

    def answers(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for path in self.outs:
            for k, v in json.loads(Path(str(path) + ".summary").read_text()).items():
                total[k] = total.get(k, 0) + v
        return total


def check_receipts(
    cluster: Cluster, receipts: list[dict[str, Any]], expected_events: int
) -> dict[str, int]:
    """Every receipt names an entry that is in its tenant's log, at that index, with that leaf
    hash; no event id is in a log twice; the logs hold exactly the events sent. Returns the
    size of each tenant's log."""
    import hashlib
    import uuid

    store = cluster.store()
    try:
        heads = {h.tenant: h for h in store.heads()}
        where: dict[tuple[str, str], tuple[int, str]] = {}
        for tenant, h in heads.items():
            seen: set[bytes] = set()
            for chunk in store.entries_raw(h.tenant_id, 0, h.size):
                for k, eid, _received, leaf in chunk:
                    assert eid not in seen, f"event {eid.hex()} is twice in {tenant}"
                    seen.add(eid)
                    index = k & ((1 << 40) - 1)
                    where[(tenant, str(uuid.UUID(bytes=eid)))] = (
                        index,
                        hashlib.sha256(b"\x00" + leaf).hexdigest(),
                    )
    finally:
        store.close()
    distinct: set[tuple[str, str]] = set()
    for rc in receipts:
        key = (rc["tenant"], rc["id"])
        assert key in where, f"acknowledged event {rc} is not in the log"
        assert where[key] == (rc["index"], rc["leaf_hash"]), (
            f"receipt {rc} differs from the log {where[key]}"
        )
        distinct.add(key)
    assert len(distinct) == expected_events, (len(distinct), expected_events)
    # Clients retry until acknowledged, so their tenants hold nothing else (the server's own
    # audit events go to its system tenant).
    client_tenants = {r["tenant"] for r in receipts}
    stray = [k for k in where if k[0] in client_tenants and k not in distinct]
    assert stray == [], f"{len(stray)} events in the log that no client was acknowledged for"
    return {t: h.size for t, h in heads.items()}


# PostgreSQL itself ------------------------------------------------------------------------------


def _cluster_version() -> str:
    return sorted(os.listdir("/etc/postgresql"))[-1]


# The data directory of a private server (run by the postgres user) that AUDITKEEP_TEST_PG_URL
# points at: the restart test then restarts it with pg_ctl instead of the machine's cluster.
PRIVATE_PGDATA = os.environ.get("AUDITKEEP_TEST_PG_CTL_DATA", "")


def pg_ctl(action: str) -> None:
    if PRIVATE_PGDATA:
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        bindir = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]
        log = Path(PRIVATE_PGDATA).parent / "pg.log"
        command = [*as_postgres, str(bindir / "pg_ctl"), "-D", PRIVATE_PGDATA, "-l", str(log), "-w", "-m", "fast"]
        subprocess.run([*command, action], check=True, capture_output=True, timeout=120)
        return
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", _cluster_version(), "main", action],
        check=True,
        capture_output=True,
        timeout=120,
    )


def pg_is_up() -> bool:
    import psycopg

    try:
        with psycopg.connect(pg_support.base_url(), connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def ensure_pg_running() -> None:
    """Whatever happened in a test, leave PostgreSQL running."""
    if pg_is_up():
        return
    with contextlib.suppress(subprocess.CalledProcessError):
        pg_ctl("start")
    deadline = time.monotonic() + 60
    while not pg_is_up() and time.monotonic() < deadline:
        time.sleep(0.2)


def can_control_pg() -> bool:
    if PRIVATE_PGDATA:
        return Path(PRIVATE_PGDATA).is_dir()
    return (
        os.path.isdir("/etc/postgresql")
        and bool(os.listdir("/etc/postgresql"))
        and os.geteuid() == 0
    )
