"""CPU of the search projection, plain against encrypted at rest (issue 13): the projection
of each store is rebuilt from its log in this process and timed with time.process_time, the
two alternating within each round, so a loaded machine's noise falls on both.

    python benchmarks/bench_projection_cpu.py [--events 8000] [--rounds 2]

To compare two versions of the code, run it alternately from each checkout
(``PYTHONPATH=<checkout>/src``), several times.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from events import events

import auditkeep
from auditkeep.crypto.atrest import EncryptionSettings
from auditkeep.ledger import Ledger

ON = EncryptionSettings(enabled=True)
TENANT = "acme"


def rebuild_cpu(path: Path, encrypted: bool) -> float:
    """CPU seconds to rebuild the projection of ``path`` from its log."""
    lg = Ledger.open(path, encryption=ON if encrypted else None, background=False)
    try:
        lg.store.reset_projection()
        c0 = time.process_time()
        lg.search(TENANT, limit=1)  # brings the projection up to the log's head
        return time.process_time() - c0
    finally:
        lg.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=8000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    n = args.events
    evs = list(events(n))
    root = Path(tempfile.mkdtemp(prefix="bench-projection-"))
    load0 = os.getloadavg()[0]
    try:
        paths = {}
        for kind in ("plain", "encrypted"):
            paths[kind] = root / kind
            lg = auditkeep.open(paths[kind], encryption=ON if kind == "encrypted" else None)
            for i in range(0, n, 1000):
                lg.record_many(evs[i : i + 1000], tenant=TENANT)
            lg.close()
        print(f"{'round':>5} {'plain µs CPU/event':>20} {'encrypted µs CPU/event':>24} {'ratio':>6}")
        for r in range(args.rounds):
            order = ("plain", "encrypted") if r % 2 == 0 else ("encrypted", "plain")
            cpu = {k: rebuild_cpu(paths[k], k == "encrypted") for k in order}
            print(f"{r + 1:>5} {cpu['plain'] / n * 1e6:>20.1f} {cpu['encrypted'] / n * 1e6:>24.1f} "
                  f"{cpu['encrypted'] / cpu['plain']:>6.2f}", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{n:,} events, nproc {os.cpu_count()}, load {load0:.1f} -> {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
