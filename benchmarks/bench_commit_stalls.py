"""How long the SQLite ``COMMIT`` of each append takes: the stalls a batch queued behind it waits.

    python benchmarks/bench_commit_stalls.py [--batches 250] [--size 1000]

Appends ``--batches`` realistic batches (``benchmarks/events.py``) one after another through
``Ledger.append`` (durable, default settings, no projection) and times each ``COMMIT`` on the
writer connection (the statement alone: an automatic WAL checkpoint runs inside it). Prints
the distribution and how many commits took over 100 ms. The checkpoint is I/O, so the count of
stalls separates before from after even on a loaded machine, where end-to-end HTTP latencies
measure the scheduler; compare code versions by running this file with ``PYTHONPATH`` set to
each version's ``src``, alternating.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from events import make_event


class _TimedCommits:
    """The writer connection, with each COMMIT's duration recorded."""

    def __init__(self, conn: sqlite3.Connection, out: list[float]) -> None:
        self._conn = conn
        self._out = out

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql != "COMMIT":
            return self._conn.execute(sql, *args)
        t0 = time.perf_counter()
        cur = self._conn.execute(sql)
        self._out.append((time.perf_counter() - t0) * 1000)
        return cur

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=250)
    ap.add_argument("--size", type=int, default=1000)
    args = ap.parse_args()
    from auditkeep.ledger import Ledger

    rng = random.Random(1)
    bodies = [[make_event(rng, k * args.size + i) for i in range(args.size)] for k in range(8)]
    commits: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-commit-") as d, Ledger.open(Path(d) / "data", background=False) as lg:
        lg.store._wconn = _TimedCommits(lg.store._wconn, commits)  # type: ignore[attr-defined]
        c0 = time.process_time()
        for k in range(args.batches):
            lg.append([dict(e) for e in bodies[k % len(bodies)]], "bench")
        cpu = time.process_time() - c0
    print(
        f"COMMIT ms over {len(commits)} commits of {args.size}-event batches: p50 {statistics.median(commits):.1f} "
        f"p95 {pct(commits, 95):.1f} p99 {pct(commits, 99):.1f} max {max(commits):.1f}; "
        f"over 100 ms: {sum(c > 100 for c in commits)}; process CPU {cpu / (args.batches * args.size) * 1e6:.1f} us/event; "
        f"load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
