"""CPU per event of the appending process alone (issue 12): ``Ledger.open(dir,
background=False).record_many`` of the headline's events in batches of 1,000, each batch's
``process_time`` taken apart, so a loaded machine's noise shows as spread and the low
percentiles stay comparable. No projection, no other process.

    python benchmarks/bench_append_cpu.py [--events 20000] [--reps 2]

For a before/after in one window, run it alternately against two trees, e.g.
``PYTHONPATH=/path/to/old/src python benchmarks/bench_append_cpu.py`` and without.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_headline import TENANT, make_batches

from auditkeep.ledger import Ledger


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args()
    batches, _ = make_batches(args.events)
    tmp = Path(tempfile.mkdtemp(prefix="auditkeep-append-cpu-"))
    try:
        lg = Ledger.open(tmp / "data", background=False)
        lg.record_many(batches[0], tenant=TENANT)  # tenant, salts of the first subjects, caches
        xs: list[float] = []
        for _ in range(args.reps):
            for b in batches[1:]:
                c = time.process_time()
                lg.record_many(b, tenant=TENANT)
                xs.append((time.process_time() - c) / len(b) * 1e6)
        lg.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    xs.sort()
    q = {p: xs[int(len(xs) * p)] for p in (0.1, 0.25, 0.5)}
    print(
        f"CPU us/event over {len(xs)} batches: p10 {q[0.1]:.1f} p25 {q[0.25]:.1f} median {q[0.5]:.1f} "
        f"mean {statistics.mean(xs):.1f}; load {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
