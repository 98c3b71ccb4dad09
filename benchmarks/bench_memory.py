"""Memory of the default embedded path over many events (issue 12: < 300 MB RSS a process).

    python benchmarks/bench_memory.py [--events 1000000]

``auditkeep.open(dir).record_many(batch, tenant="acme")`` in batches of 1,000 events made on
the fly (``events.py``, so the benchmark's own input does not grow), then a search once the
projection has caught up. Prints the peak RSS of the appending process and of its projection
child (``getrusage``: ``RUSAGE_SELF`` and, after the ledger closed, ``RUSAGE_CHILDREN``, the
largest child that ended), and the RSS of the appender after every 100,000 events.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from events import events

import auditkeep


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="auditkeep-memory-"))
    try:
        load = os.getloadavg()
        print(f"nproc {os.cpu_count()}, load average {load[0]:.2f} {load[1]:.2f} at start")
        lg = auditkeep.open(tmp / "data")
        batch: list[dict[str, object]] = []
        n = 0
        t = time.perf_counter()
        for e in events(args.events):
            batch.append(e)
            if len(batch) == 1000:
                lg.record_many(batch, tenant="acme")
                n += len(batch)
                batch = []
                if n % 100_000 == 0:
                    print(f"{n:>9,} events  appender RSS {rss_mb():6.1f} MB  {n / (time.perf_counter() - t):,.0f} events/s", flush=True)
        if batch:
            lg.record_many(batch, tenant="acme")
        t2 = time.perf_counter()
        while lg.projection_lag("acme") > 0 and time.perf_counter() - t2 < 600:
            time.sleep(0.1)
        print(f"projection caught up {time.perf_counter() - t2:.1f} s after the last append")
        page = lg.search("acme", actor="user-7", limit=50)
        print(f"a search: {len(page.items)} events; appender RSS now {rss_mb():.1f} MB")
        lg.close()
        # ru_maxrss is in KiB on Linux; MB (10^6 bytes) as rss_mb
        me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6
        child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 1e6
        print(f"peak RSS: appender {me:.1f} MB, projection child {child:.1f} MB")
        load = os.getloadavg()
        print(f"load average {load[0]:.2f} {load[1]:.2f} at end")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
