"""pgbench through the PostgreSQL gateway against pgbench straight to the server, in the same run.

    python benchmarks/bench_gateway_pg.py [--seconds 15] [--clients 1,4,16] [--scale 10] [--rounds 3]

Workloads: pgbench's select-only (-S) and TPC-B-like (default script), with the simple and
the prepared protocol, at each client count. Gateway configurations: the default a user
gets (`auditkeep gateway postgres --data DIR`, no rules, upstream over TCP), the same with
the upstream over the server's Unix socket (`--upstream /var/run/postgresql:5432`, when it
exists), and with a guardrails file and masking. Direct runs always use TCP. Every run's
transactions are logged per transaction (pgbench -l) to get the latency percentiles; the
added latency is the gateway's p50 minus the direct p50 of the same workload; with
``--rounds N`` every pair runs N times, alternating, and the table gives each figure's median
(the ratio is the median of each round's gateway/direct ratio). After each
gateway run the gateway is stopped (SIGTERM) and the db.query events in its log counted.
The gateway's CPU time (its process and its ledger child, from /proc) per transaction is
printed too: on a loaded machine it moves less than the throughput does.

Targets (issue 16): at least 0.8 x direct TPS, added p50 latency < 0.3 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

PG = ("127.0.0.1", 5432)
PG_SOCKET_DIR = "/var/run/postgresql"
DB = "akbench_gateway"
RULES = """\
rules:
  - {name: dba, action: allow, users: [dba_*]}
  - {name: no-unbounded-writes, action: deny, kinds: [delete, update], missing_where: true}
  - {name: payroll, action: deny, tables: ["payroll*"]}
  - {name: ddl, action: review, kinds: [ddl]}
masking:
  columns: ["*email*", ssn]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pgbench(port: int, args: list[str], logdir: Path | None = None) -> str:
    cmd = ["pgbench", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", *args]
    if logdir is not None:
        cmd += ["-l", "--log-prefix", str(logdir / "pgbench_log")]
    cmd.append(DB)
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=logdir)
    if r.returncode != 0:
        raise SystemExit(f"pgbench failed: {r.stdout}\n{r.stderr}")
    return r.stdout + r.stderr


def latencies(logdir: Path) -> list[float]:
    out: list[float] = []
    for f in logdir.glob("pgbench_log*"):
        for line in f.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3:
                out.append(int(parts[2]) / 1000.0)  # µs -> ms
        f.unlink()
    return out


def run(port: int, workload: list[str], seconds: int, clients: int) -> tuple[float, float, float, int]:
    with tempfile.TemporaryDirectory() as d:
        logdir = Path(d)
        text = pgbench(port, [*workload, "-T", str(seconds), "-c", str(clients), "-j", str(min(clients, 2))], logdir)
        lat = latencies(logdir)
    m = re.search(r"tps = ([\d.]+) \(without initial connection time\)", text)
    tx = re.search(r"number of transactions actually processed: (\d+)", text)
    if m is None or tx is None or not lat:
        raise SystemExit(f"cannot read pgbench output:\n{text}")
    lat.sort()
    p95 = lat[int(len(lat) * 0.95)]
    return float(m.group(1)), statistics.median(lat), p95, int(tx.group(1))


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of ``pid`` and its children, from /proc."""
    total = 0
    pids = [pid]
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            pids += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    for p in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


class GatewayProc:
    def __init__(self, rules: Path | None, data: Path, upstream: str = f"{PG[0]}:{PG[1]}") -> None:
        self.port = free_port()
        self.data = data
        args = [sys.executable, "-m", "auditkeep.cli.main", "gateway", "postgres", "--data", str(data),
                "--listen", f"127.0.0.1:{self.port}", "--upstream", upstream, "--tenant", "bench"]  # fmt: skip
        if rules is not None:
            args += ["--rules", str(rules)]
        self.log = data.parent / f"gateway-{self.port}.log"
        self.proc = subprocess.Popen(args, stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise SystemExit(self.log.read_text()) from None
                time.sleep(0.1)

    def stop(self) -> int:
        """Stop it and count the db.query events it recorded."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(120)
        from auditkeep.ledger import Ledger

        with Ledger.open(self.data, create=False, background=False) as lg:
            n = lg.head("bench").size
            return sum(1 for r in lg.records(0, n, "bench") if r.event.action == "db.query")


Row = tuple[str, str, str, int, float, float, float, float, float, float, float, float]


def _measure(gw: GatewayProc, workloads: list[tuple[str, list[str]]], mode: str, a: argparse.Namespace,
             cname: str, rows: list[Row]) -> int:  # fmt: skip
    """Run each workload direct and through ``gw`` at each client count; the statements sent
    through it."""
    sent = 0
    got: dict[tuple[int, str], list[tuple[float, ...]]] = {}
    for _ in range(a.rounds):  # direct and gateway alternate, round after round
        for clients in a.clients:
            for wname, wargs in workloads:
                args = [*wargs, "-M", mode]
                d_tps, d_p50, d_p95, _ = run(PG[1], args, a.seconds, clients)
                cpu0 = cpu_seconds(gw.proc.pid)
                g_tps, g_p50, g_p95, g_tx = run(gw.port, args, a.seconds, clients)
                cpu_us = (cpu_seconds(gw.proc.pid) - cpu0) * 1e6 / max(g_tx, 1)
                sent += g_tx * (1 if wargs else 7)  # TPC-B: 7 statements a transaction
                got.setdefault((clients, wname), []).append((d_tps, g_tps, d_p50, g_p50, d_p95, g_p95, cpu_us))
                print(f"  {cname:28} {wname:12} {mode:9} c={clients:<3} direct {d_tps:8.0f} tps  gateway {g_tps:8.0f} tps "
                      f"({g_tps / d_tps:.2f}x)  p50 +{g_p50 - d_p50:.3f} ms  gateway cpu {cpu_us:.0f} us/tx  "
                      f"load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    for (clients, wname), runs in got.items():  # each figure the median of its rounds
        d_tps, g_tps, d_p50, g_p50, d_p95, g_p95, cpu_us = (statistics.median(col) for col in zip(*runs, strict=True))
        ratio = statistics.median(r[1] / r[0] for r in runs)  # of each round's pair, run side by side
        rows.append((cname, wname, mode, clients, d_tps, g_tps, ratio, d_p50, g_p50, d_p95, g_p95, cpu_us))
    return sent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--clients", type=lambda v: [int(c) for c in v.split(",")], default=[4],
                    help="client counts, comma-separated (pgbench -c; threads -j up to 2)")
    ap.add_argument("--scale", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=1, help="rounds of every pair; the table gives the medians")
    ap.add_argument("--quick", action="store_true", help="only the prepared protocol, default gateway")
    a = ap.parse_args()
    with psycopg.connect(f"host={PG[0]} port={PG[1]} user=postgres dbname=postgres", autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {DB}")
    pgbench(PG[1], ["-i", "-s", str(a.scale), "-q"])
    print(f"nproc {os.cpu_count()}, load {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} at start; "
          f"{a.clients} clients, {a.seconds}s per run, scale {a.scale}")  # fmt: skip
    workloads = [("select-only", ["-S"]), ("TPC-B-like", [])]
    modes = ["prepared"] if a.quick else ["simple", "prepared"]
    tcp = f"{PG[0]}:{PG[1]}"
    configs: list[tuple[str, str | None, str]] = [("default (--data, no rules)", None, tcp)]
    if Path(PG_SOCKET_DIR, f".s.PGSQL.{PG[1]}").exists():
        configs.append(("default, upstream on Unix socket", None, f"{PG_SOCKET_DIR}:{PG[1]}"))
    if not a.quick:
        configs.append(("guardrails + masking", RULES, tcp))
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        for cname, rules_text, upstream in configs:
            rules = None
            if rules_text is not None:
                rules = Path(tmp) / "rules.yml"
                rules.write_text(rules_text)
            for mode in modes:
                gw = GatewayProc(rules, Path(tmp) / f"data-{len(rows)}", upstream)
                try:
                    sent = _measure(gw, workloads, mode, a, cname, rows)
                except BaseException:
                    gw.proc.kill()  # a failed run must not leave the gateway behind
                    gw.proc.wait()
                    raise
                recorded = gw.stop()
                print(f"  events: {recorded} db.query recorded for ~{sent} statements sent", flush=True)
    print()
    print("| gateway | workload | protocol | clients | direct TPS | gateway TPS | ratio | direct p50 ms | gateway p50 ms "
          "| added p50 ms | direct p95 ms | gateway p95 ms | gateway CPU µs/tx |")  # fmt: skip
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for cname, wname, mode, clients, d_tps, g_tps, ratio, d_p50, g_p50, d_p95, g_p95, cpu_us in rows:
        print(f"| {cname} | {wname} | {mode} | {clients} | {d_tps:,.0f} | {g_tps:,.0f} | {ratio:.2f} | {d_p50:.3f} | "
              f"{g_p50:.3f} | {g_p50 - d_p50:.3f} | {d_p95:.3f} | {g_p95:.3f} | {cpu_us:.0f} |")  # fmt: skip
    print(f"\nload {os.getloadavg()[0]:.2f} at the end")
    with psycopg.connect(f"host={PG[0]} port={PG[1]} user=postgres dbname=postgres", autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


if __name__ == "__main__":
    main()
