"""A small batch's wait behind bulk batches in the ledger's writer (no HTTP in the way).

    python benchmarks/bench_ingest_tail.py [--seconds 20] [--rate 10000] [--bulk-threads 2]

One process, one ledger (``Ledger.open(dir, background=False)``: no projection child, so
the figures are the writer's): ``--bulk-threads`` threads submit realistic 1,000-event
batches through ``Ledger.submit`` (conversion, validation and the rest in their own thread,
as the HTTP server's thread pool does), paced to ``--rate`` events/s in all; a probe thread
submits 100-event batches one after another and waits for each. Prints the probe's latency
percentiles; the writer's CPU per event inside the append transaction (``Sequencer.run``,
``time.thread_time``), the figure that a queued batch waits for; and, for each probe, the
sequencing work it waited for: the events and the writer's CPU of every group sequenced
while it was queued or being committed (its own included). Those two depend on the code
far more than on the machine's load, which moves the wall-clock latencies several-fold on a
shared machine. Run it with ``PYTHONPATH`` set to another tree's ``src`` to compare code
versions in the same minutes.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from events import make_event


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rate", type=float, default=10_000.0, help="bulk events/s offered, in all")
    ap.add_argument("--bulk-threads", type=int, default=2)
    args = ap.parse_args()

    import auditkeep
    from auditkeep.ledger import Ledger
    from auditkeep.ledger.append import Sequencer

    # the writer's CPU inside the append transaction, by the size of what it sequenced
    seq_cpu: list[tuple[int, float]] = []
    runs: list[tuple[float, float, int, float]] = []  # wall start, wall end, events, CPU
    run = Sequencer.run

    def timed_run(self: Sequencer, txn: Any, group: Any) -> Any:
        w, t = time.perf_counter(), time.thread_time()
        out = run(self, txn, group)
        n, cpu = sum(len(p.events) for p in group), time.thread_time() - t
        seq_cpu.append((n, cpu))
        runs.append((w, time.perf_counter(), n, cpu))
        return out

    Sequencer.run = timed_run  # type: ignore[method-assign]
    rng = random.Random(5)
    bulk = [[make_event(rng, k * 1000 + i) for i in range(1000)] for k in range(4)]
    small = [[make_event(rng, 10_000 + k * 100 + i) for i in range(100)] for k in range(8)]
    d = Path(tempfile.mkdtemp(prefix="bench-tail-"))
    lat: list[float] = []
    spans: list[tuple[float, float]] = []
    try:
        with Ledger.open(d / "data", background=False) as lg:
            for b in bulk + small:  # every subject has its salt, as in a running server
                lg.append(b, "bench")
            seq_cpu.clear()
            stop = time.perf_counter() + args.seconds
            pace = args.bulk_threads * 1000 / args.rate

            def bulk_sender(i: int) -> None:
                next_at = time.perf_counter() + i * pace / args.bulk_threads
                k = i
                while time.perf_counter() < stop:
                    delay = next_at - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    next_at += pace
                    lg.submit(bulk[k % len(bulk)], "bench").result()
                    k += 1

            threads = [threading.Thread(target=bulk_sender, args=(i,)) for i in range(args.bulk_threads)]
            for t in threads:
                t.start()
            time.sleep(0.5)
            k = 0
            while time.perf_counter() < stop - 0.5:
                t0 = time.perf_counter()
                lg.submit(small[k % len(small)], "bench").result()
                t1 = time.perf_counter()
                lat.append((t1 - t0) * 1000)
                spans.append((t0, t1))
                k += 1
            for t in threads:
                t.join()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    big = [cpu / n * 1e6 for n, cpu in seq_cpu if n >= 1000]
    ahead_events: list[float] = []
    ahead_cpu: list[float] = []
    for t0, t1 in spans:
        overlapping = [(n, cpu) for s, e, n, cpu in runs if e > t0 and s < t1]
        ahead_events.append(sum(n for n, _ in overlapping))
        ahead_cpu.append(sum(cpu for _, cpu in overlapping) * 1000)
    print(f"auditkeep from {Path(auditkeep.__file__).parent}, load average {os.getloadavg()[0]:.1f}")
    print(f"probe 100-event batches: p50 / p95 / p99 / max {statistics.median(lat):.1f} / {pct(lat, 95):.1f} / "
          f"{pct(lat, 99):.1f} / {max(lat):.1f} ms ({len(lat)} requests)")
    print(f"writer CPU inside the transaction, groups of >= 1,000 events: median {statistics.median(big):.1f} "
          f"us/event ({len(big)} groups); groups holding a probe and bulk: "
          f"{sum(1 for n, _ in seq_cpu if n > 1000 and n % 1000)}")
    print(f"sequencing a probe waited for (events / writer CPU ms): p50 {pct(ahead_events, 50):,.0f} / "
          f"{pct(ahead_cpu, 50):.1f}, p95 {pct(ahead_events, 95):,.0f} / {pct(ahead_cpu, 95):.1f}, p99 "
          f"{pct(ahead_events, 99):,.0f} / {pct(ahead_cpu, 99):.1f}, max {max(ahead_events):,.0f} / {max(ahead_cpu):.1f}")


if __name__ == "__main__":
    main()
