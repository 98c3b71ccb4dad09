"""How long one batch waits for its commit when it is the only one: ``Ledger.submit(...)
.result()`` one batch at a time (how ``sources/intake.py`` and the gateway's ledger sink
deliver), beside ``Ledger.append`` (the caller commits itself) in the same run, on
PostgreSQL (the pipelined writer) and SQLite.

    python benchmarks/bench_submit_wait.py [--url postgresql://postgres@127.0.0.1/test]
        [--batches 200] [--size 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).parent))
from machine import cpu_model

from auditkeep.ledger import Ledger, LedgerConfig
from auditkeep.ledger.datadir import establish
from auditkeep.model import Actor, Event
from auditkeep.store.postgres import PostgresStore

SCHEMA = "bench_submit_wait"


def _events(n: int, base: int) -> list[Event]:
    return [Event(actor=Actor(id="alice", type="user"), action="db.query", metadata={"i": base + i}) for i in range(n)]


def _pg_ledger(url: str) -> Ledger:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE')
    store = PostgresStore(url + ("&" if "?" in url else "?") + "schema=" + SCHEMA)
    identity, _ = establish(store, Path(tempfile.mkdtemp(prefix="bench-submit-key-")))
    return Ledger(store, identity, LedgerConfig(), background=False)


def _measure(lg: Ledger, batches: int, size: int, how: str) -> str:
    waits: list[float] = []
    c0, w0 = time.process_time(), time.perf_counter()
    for b in range(batches):
        evs = _events(size, b * size)
        t = time.perf_counter()
        if how == "submit":
            lg.submit(evs, "acme").result(60)
        else:
            lg.append(evs, "acme")
        waits.append(time.perf_counter() - t)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    q = statistics.quantiles(waits, n=20)
    return (f"{how:6}  p50 {statistics.median(waits) * 1e3:7.1f} ms  p95 {q[18] * 1e3:7.1f} ms  "
            f"{batches * size / wall:8,.0f} events/s  CPU {cpu / (batches * size) * 1e6:6.1f} us/event")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--size", type=int, default=50)
    a = ap.parse_args()
    print(f"CPU {cpu_model()}, nproc {os.cpu_count()}, load {os.getloadavg()[0]:.2f}")
    for name in ("postgres", "sqlite"):
        for how in ("submit", "append"):
            lg = _pg_ledger(a.url) if name == "postgres" else Ledger.open(Path(tempfile.mkdtemp()) / "d", background=False)
            try:
                print(f"{name:8} {_measure(lg, a.batches, a.size, how)}")
            finally:
                lg.close()
    with psycopg.connect(a.url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE')
    print(f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
