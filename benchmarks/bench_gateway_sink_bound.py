"""What a gateway's ledger sink costs per emitted event while the log does not keep up:
under the memory bound (a deque append under a lock) and past it (the oldest batch of 500
written to the spool, fsync'd, once per 500 events). The store is held by another
connection's write lock, so nothing is committed during the measurement; both cases run in
the same process, one after the other, in alternation.

    python benchmarks/bench_gateway_sink_bound.py [EVENTS] [ROUNDS]
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from auditkeep.gateway.sink import LedgerSink
from auditkeep.ledger import Ledger
from auditkeep.model import Actor, Event


def _run(root: Path, n: int, max_queue: int) -> tuple[float, int]:
    data = root / "data"
    lg = Ledger.open(data, background=False)
    held = sqlite3.connect(data / "log.db", isolation_level=None, timeout=30)
    held.execute("BEGIN IMMEDIATE")
    sink = LedgerSink(lg, "acme", "postgres-gateway", spool_dir=root / "spool", max_queue=max_queue)
    events = [Event(actor=Actor(id="alice", type="user"), action="db.query", metadata={"i": i, "sql": "SELECT 1"})
              for i in range(n)]  # fmt: skip
    t0 = time.perf_counter()
    for ev in events:
        sink.emit(ev)
    took = time.perf_counter() - t0
    spilled = sink.spilled_total
    held.execute("ROLLBACK")
    held.close()
    sink.flush(600)
    sink.close()
    lg.close()
    return took, spilled


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    best = {"in memory": float("inf"), "past the bound": float("inf")}
    for _ in range(rounds):
        for name, bound in (("in memory", n + 1), ("past the bound", 1000)):
            with tempfile.TemporaryDirectory() as tmp:
                took, spilled = _run(Path(tmp), n, bound)
            best[name] = min(best[name], took)
            print(f"{name:15} {n} events, {spilled} spilled: {took:.3f} s", flush=True)
    for name, took in best.items():
        print(f"best {name:15} {n / took:,.0f} events/s ({took / n * 1e6:.1f} us/event)")
    print(f"ratio past/in memory: {best['past the bound'] / best['in memory']:.2f}x per event")


if __name__ == "__main__":
    main()
