"""``auditkeep gateway postgres`` as a process, with the real clients: psql, pgbench, a large
COPY in and out (its size: AUDITKEEP_TEST_COPY_MB, 64 by default; memory must not grow with
it), the metrics endpoint, and a clean stop that leaves every event in the log."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from http_server_support import free_port
from pg_gateway_support import UPSTREAM, dsn, unique

COPY_MB = int(os.environ.get("AUDITKEEP_TEST_COPY_MB", "64"))
RULES = """\
rules:
  - name: no-unbounded-writes
    action: deny
    message: DELETE and UPDATE need a WHERE clause
    kinds: [delete, update]
    missing_where: true
"""


@dataclass
class Proc:
    proc: subprocess.Popen[bytes]
    port: int
    metrics: int
    data: Path
    db: str
    log: Path

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def psql(self, *commands: str, user: str = "postgres") -> subprocess.CompletedProcess[str]:
        args = ["psql", "-X", "-v", "ON_ERROR_STOP=0", dsn(self.port, user, self.db)]
        for c in commands:
            args += ["-c", c]
        return subprocess.run(args, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    tmp = tmp_path_factory.mktemp("gwcli")
    (tmp / "rules.yml").write_text(RULES)
    db = unique("gwdb")
    with psycopg.connect(dsn(UPSTREAM[1]), autocommit=True) as c:
        c.execute(f"CREATE DATABASE {db}")
    port, metrics = free_port(), free_port()
    log = tmp / "gateway.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "auditkeep.cli.main", "gateway", "postgres", "--data", str(tmp / "data"),
             "--listen", f"127.0.0.1:{port}", "--upstream", f"{UPSTREAM[0]}:{UPSTREAM[1]}", "--tenant", "acme",
             "--rules", str(tmp / "rules.yml"), "--metrics", f"127.0.0.1:{metrics}"],
            stdout=out, stderr=subprocess.STDOUT, cwd=tmp,
        )  # fmt: skip
    p = Proc(proc, port, metrics, tmp / "data", db, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    try:
        yield p
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        with psycopg.connect(dsn(UPSTREAM[1]), autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def test_psql_through_the_gateway(gateway: Proc) -> None:
    r = gateway.psql("CREATE TABLE t (id int, email text)", "INSERT INTO t VALUES (1, 'a@example.com'), (2, 'b')",
                     "SELECT id FROM t ORDER BY id", "DELETE FROM t", "SELECT count(*) FROM t")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "INSERT 0 2" in r.stdout and " id \n----\n  1\n  2\n(2 rows)" in r.stdout
    assert "ERROR:  DELETE and UPDATE need a WHERE clause" in r.stderr
    assert "CONTEXT" not in r.stderr  # the refusal reads like a server error, no trace of how
    assert " count \n-------\n     2\n" in r.stdout


def _pgbench(gateway: Proc, *args: str) -> str:
    r = subprocess.run(["pgbench", "-h", "127.0.0.1", "-p", str(gateway.port), "-U", "postgres", *args, gateway.db],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout + r.stderr


def test_pgbench_through_the_gateway(gateway: Proc) -> None:
    _pgbench(gateway, "-i", "-s", "1", "-q")  # creates and COPYs 100,000 accounts through the gateway
    for mode in ("simple", "extended", "prepared"):
        out = _pgbench(gateway, "-t", "25", "-c", "2", "-M", mode)
        assert "number of transactions actually processed: 50/50" in out, out
    out = _pgbench(gateway, "-t", "25", "-c", "2", "-S", "-M", "prepared")
    assert "number of failed transactions: 0" in out


def test_a_large_copy_is_streamed_not_held(gateway: Proc) -> None:
    row = b"%d\t" + b"x" * 1000 + b"\n"
    n = COPY_MB * 1024 * 1024 // len(row % 0)
    with psycopg.connect(dsn(gateway.port, dbname=gateway.db), autocommit=True) as c:
        c.execute("CREATE TABLE big (id int, pad text)")
        c.execute("SELECT 1")
        before = gateway.rss_kb()
        for _round in range(2):
            c.execute("TRUNCATE big")
            with c.cursor().copy("COPY big FROM STDIN") as cp:
                for i in range(0, n, 1000):
                    cp.write(b"".join(row % j for j in range(i, min(n, i + 1000))))
            assert c.execute("SELECT count(*) FROM big").fetchone() == (n,)
            total = 0
            with c.cursor().copy("COPY big TO STDOUT") as cp:
                for chunk in cp:
                    total += len(chunk)
            assert total >= COPY_MB * 1024 * 1024 * 0.99
            if _round == 0:
                after_first = gateway.rss_kb()
        after = gateway.rss_kb()
        c.execute("DROP TABLE big")
    growth_mb = (after_first - before) / 1024
    # held whole, the copy alone would add COPY_MB (twice over, in and out)
    assert growth_mb < min(32, COPY_MB / 2 + 8), f"RSS grew {growth_mb:.0f} MB for a {COPY_MB} MB copy"
    assert (after - after_first) / 1024 < 8, "memory grew again on the second copy"
    print(f"copy {COPY_MB} MB in and out: RSS {before // 1024} -> {after_first // 1024} -> {after // 1024} MB")


def test_metrics_then_a_clean_stop_keeps_every_event(gateway: Proc) -> None:
    text = httpx.get(f"http://127.0.0.1:{gateway.metrics}/metrics", timeout=10).text
    assert 'auditkeep_pg_gateway_statements_total{kind="select",outcome="success"}' in text
    assert "auditkeep_pg_gateway_denials_total 1.0" in text
    assert "auditkeep_pg_gateway_added_seconds_count" in text
    assert re.search(r"^auditkeep_pg_gateway_events_pending \d+\.0$", text, re.M), text
    gateway.proc.send_signal(signal.SIGTERM)
    assert gateway.proc.wait(60) == 0, gateway.log.read_text()
    assert "Traceback" not in gateway.log.read_text()
    r = subprocess.run([sys.executable, "-m", "auditkeep.cli.main", "search", "--data", str(gateway.data), "--tenant",
                        "acme", "--action", "db.*", "--order", "oldest", "--json", "--all"],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    events = [json.loads(line)["event"] for line in r.stdout.splitlines()]
    statements = [e["metadata"]["db"]["statement"] for e in events if e["action"] == "db.query"]
    assert statements[:5] == ["CREATE TABLE t (id int, email text)", "INSERT INTO t VALUES (1, 'a@example.com'), (2, 'b')",
                              "SELECT id FROM t ORDER BY id", "DELETE FROM t", "SELECT count(*) FROM t"]  # fmt: skip
    starts = sum(e["action"] == "db.session.start" for e in events)
    ends = sum(e["action"] == "db.session.end" for e in events)
    assert starts == ends > 5
    assert sum("pgbench_accounts" in s for s in statements) > 100
