"""The headline of issue 12: what a library user gets with default settings, against the
issue's raw ``sqlite3`` baseline and tamperlog, all measured in the same run.

    python benchmarks/bench_headline.py [--events 100000] [--rounds 2]

Every path gets the same pre-parsed dicts (100,000 events of ~480 bytes with actor ip and
user agent, from ``events.py``) in batches of 1,000; only the appends are timed (opening
and closing are not). Rows:

- baseline: raw ``sqlite3``, ``json.dumps`` per row, ``executemany`` of 1,000 rows into one
  table (tenant, time, actor, action, resource type, resource id, outcome, body) with
  indexes (tenant,time), (tenant,actor,time), (tenant,action,time), WAL, synchronous=FULL;
- ``auditkeep.open(dir).record_many(batch, tenant="acme")``: the default embedded path,
  durable, with the search projection kept as the defaults keep it; the projection's
  catch-up time after the last append is measured too;
- ``Ledger.open(dir, background=False)`` with no projection at all during the run (a special
  configuration, second row: the projection then catches up on the first search);
- tamperlog 0.1.0 ``AppendOnlyLog().append_json`` (in memory, no fsync, unsigned), if installed.

The rounds alternate the paths so a loaded machine's noise falls on all of them. Beside the
rates, the CPU time an event costs (``process_time`` of the appending process; for the
default path, apart, all the CPU of its projection child, catch-up included): on a shared,
loaded machine the rates swing with the load, the CPU cost much less.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from events import events
from machine import cpu_model

import auditkeep
from auditkeep.ledger import Ledger

console = Console(width=200)
BATCH = 1000
TENANT = "acme"
Batches = list[list[dict[str, Any]]]


def make_batches(n: int) -> tuple[Batches, float]:
    evs = list(events(n))
    for i, e in enumerate(evs):
        e["actor"]["user_agent"] = _AGENTS[i % len(_AGENTS)]
    size = sum(len(orjson.dumps(e)) for e in evs) / n
    return [evs[i : i + BATCH] for i in range(0, n, BATCH)], size


_AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "curl/8.5.0",
    "python-httpx/0.27.0",
]


def baseline_sqlite(batches: Batches, path: Path) -> tuple[float, float]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE events(id INTEGER PRIMARY KEY, tenant TEXT, time TEXT, actor TEXT, action TEXT,"
        " resource_type TEXT, resource_id TEXT, outcome TEXT, body TEXT)"
    )
    conn.execute("CREATE INDEX e_time ON events(tenant, time)")
    conn.execute("CREATE INDEX e_actor ON events(tenant, actor, time)")
    conn.execute("CREATE INDEX e_action ON events(tenant, action, time)")
    sql = "INSERT INTO events(tenant, time, actor, action, resource_type, resource_id, outcome, body) VALUES(?,?,?,?,?,?,?,?)"
    n = 0
    c = time.process_time()
    t = time.perf_counter()
    for b in batches:
        rows = [
            (TENANT, e["time"], e["actor"]["id"], e["action"], e["resource"]["type"], e["resource"]["id"], e["outcome"], json.dumps(e))
            for e in b
        ]
        conn.execute("BEGIN")
        conn.executemany(sql, rows)
        conn.execute("COMMIT")
        n += len(rows)
    dt = time.perf_counter() - t
    cpu = time.process_time() - c
    conn.close()
    return n / dt, cpu / n * 1e6


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def default_path(batches: Batches, data: Path) -> tuple[float, float, float, float]:
    """(events/s, CPU µs an event of this process during the appends, CPU µs an event of
    the projection child (all of it, catch-up included), seconds from the last append until
    the projection had caught up)."""
    lg = auditkeep.open(data)
    child0 = _children_cpu()
    n = 0
    c = time.process_time()
    t = time.perf_counter()
    for b in batches:
        n += len(lg.record_many(b, tenant=TENANT))
    dt = time.perf_counter() - t
    cpu = time.process_time() - c
    t2 = time.perf_counter()
    while lg.projection_lag(TENANT) > 0 and time.perf_counter() - t2 < 120:
        time.sleep(0.01)
    lag = time.perf_counter() - t2
    lg.close()  # waits for the child, so its CPU is counted in RUSAGE_CHILDREN
    return n / dt, cpu / n * 1e6, (_children_cpu() - child0) / n * 1e6, lag


def no_projection(batches: Batches, data: Path) -> tuple[float, float]:
    lg = Ledger.open(data, background=False)
    n = 0
    c = time.process_time()
    t = time.perf_counter()
    for b in batches:
        n += len(lg.record_many(b, tenant=TENANT))
    dt = time.perf_counter() - t
    cpu = time.process_time() - c
    lg.close()
    return n / dt, cpu / n * 1e6


def tamperlog_path(batches: Batches) -> tuple[float, float] | None:
    try:
        from tamperlog import AppendOnlyLog  # type: ignore[import-not-found]
    except ImportError:
        return None
    log = AppendOnlyLog()
    n = 0
    c = time.process_time()
    t = time.perf_counter()
    for b in batches:
        for e in b:
            log.append_json(e)
        n += len(b)
    return n / (time.perf_counter() - t), (time.process_time() - c) / n * 1e6




def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="auditkeep-headline-", dir=args.out))
    try:
        load = os.getloadavg()
        console.print(
            f"nproc {os.cpu_count()}, {cpu_model()}, python {platform.python_version()}, "
            f"sqlite {sqlite3.sqlite_version}, load average {load[0]:.2f} {load[1]:.2f} at start"
        )
        batches, size = make_batches(args.events)
        console.print(f"{args.events:,} events, {size:.0f} bytes each as JSON, batches of {BATCH}")
        rows: dict[str, list[float]] = {k: [] for k in ("base", "default", "noproj", "tamperlog")}
        cpus: dict[str, list[float]] = {k: [] for k in rows}
        lags: list[float] = []
        child_cpus: list[float] = []
        for r in range(args.rounds):
            rate, cpu = baseline_sqlite(batches, tmp / f"base{r}.db")
            rows["base"].append(rate)
            cpus["base"].append(cpu)
            rate, cpu, child, lag = default_path(batches, tmp / f"default{r}")
            rows["default"].append(rate)
            cpus["default"].append(cpu)
            child_cpus.append(child)
            lags.append(lag)
            rate, cpu = no_projection(batches, tmp / f"noproj{r}")
            rows["noproj"].append(rate)
            cpus["noproj"].append(cpu)
            tl = tamperlog_path(batches)
            if tl is not None:
                rows["tamperlog"].append(tl[0])
                cpus["tamperlog"].append(tl[1])
            for k in rows:
                if rows[k]:
                    console.print(f"round {r + 1}: {k} {rows[k][-1]:,.0f}/s, {cpus[k][-1]:.1f} CPU µs/event", highlight=False)
            console.print(f"round {r + 1}: projection child {child_cpus[-1]:.1f} CPU µs/event, caught up {lags[-1]:.2f} s after the last append", highlight=False)
        base = max(rows["base"])
        t = Table(title=f"Append of {args.events:,} events, batches of {BATCH} (best of {args.rounds} rounds; all rounds listed)")
        for c in ("path", "events/s", "x sqlite baseline", "x tamperlog", "rounds", "CPU µs/event (min)", "child CPU µs/event", "projection caught up after"):
            t.add_column(c, justify="left" if c == "path" else "right")
        tl_best = max(rows["tamperlog"]) if rows["tamperlog"] else None

        def add(name: str, key: str, lag: str = "-", child: str = "-") -> None:
            xs = rows[key]
            best = max(xs)
            vs_tl = f"{best / tl_best:.2f}" if tl_best else "-"
            t.add_row(name, f"{best:,.0f}", f"{best / base:.2f}", vs_tl, " / ".join(f"{x:,.0f}" for x in xs), f"{min(cpus[key]):.1f}", child, lag)

        add("baseline: raw sqlite3, json.dumps, executemany 1,000, 3 indexes, WAL, FULL", "base")
        add('auditkeep.open(dir).record_many(batch, tenant="acme") — defaults', "default", " / ".join(f"{x:.2f} s" for x in lags), " / ".join(f"{x:.1f}" for x in child_cpus))
        add("Ledger.open(dir, background=False): no projection during the run", "noproj", "on first search")
        if rows["tamperlog"]:
            add("tamperlog 0.1.0 append_json (memory, no fsync, unsigned)", "tamperlog")
        else:
            t.add_row("tamperlog 0.1.0", "not installed (pip install -e '.[bench]')", "-", "-", "-", "-", "-", "-")
        console.print(t)
        load = os.getloadavg()
        console.print(f"load average {load[0]:.2f} {load[1]:.2f} at end")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
