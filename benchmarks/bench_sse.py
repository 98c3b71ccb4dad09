"""Commit-to-SSE delivery latency of the live tail.

    python benchmarks/bench_sse.py [--seconds 10] [--streams 4] [--rate 200] [--batch 10]

``auditkeep serve`` runs in a subprocess; ``--streams`` clients follow ``/v1/stream`` while a
writer posts ``--batch``-event batches at ``--rate`` events/s. Delivery latency of an event is
the time it arrives at a client minus its ``received_at`` (stamped by the ledger while
sequencing, just before the commit), so it includes the commit's fsync: an upper bound of the
commit-to-delivery time. Every stream must see every event, in order, with no gap.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).parent))
from bench_http import pct, start_server

from auditkeep.model.timefmt import parse_rfc3339


def follow(url: str, key: str, ready: threading.Event, stop: threading.Event, out: list[float], seen: list[int]) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=None) as c, c.stream(
        "GET", "/v1/stream", params={"action": "bench.*"}
    ) as r:
        ready.set()
        for line in r.iter_lines():
            if line.startswith("data:"):
                now = time.time_ns()
                rec = orjson.loads(line[5:])
                out.append((now - parse_rfc3339(rec["event"]["received_at"])) / 1e6)
                seen.append(rec["index"])
            if stop.is_set() and line == "":
                return


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--rate", type=float, default=200.0, help="events per second")
    ap.add_argument("--batch", type=int, default=10)
    args = ap.parse_args()

    import shutil
    import signal
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="bench-sse-"))
    proc, url, key, _ = start_server(tmp / "data")
    lat: list[list[float]] = [[] for _ in range(args.streams)]
    seen: list[list[int]] = [[] for _ in range(args.streams)]
    stop = threading.Event()
    readies = [threading.Event() for _ in range(args.streams)]
    readers = [
        threading.Thread(target=follow, args=(url, key, readies[i], stop, lat[i], seen[i]), daemon=True)
        for i in range(args.streams)
    ]
    sent = 0
    try:
        for t in readers:
            t.start()
        for ev in readies:
            ev.wait(10)
        time.sleep(0.5)
        pace = args.batch / args.rate
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as c:
            end = time.perf_counter() + args.seconds
            nxt = time.perf_counter()
            while time.perf_counter() < end:
                body = [{"actor": {"id": f"u{sent + j}"}, "action": "bench.tick"} for j in range(args.batch)]
                assert c.post("/v1/events", json=body).status_code == 200
                sent += args.batch
                nxt += pace
                time.sleep(max(0.0, nxt - time.perf_counter()))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(len(s) < sent for s in seen):
            time.sleep(0.05)
        stop.set()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        shutil.rmtree(tmp, ignore_errors=True)

    for s in seen:
        assert s == list(range(s[0], s[0] + len(s))), "a stream skipped or repeated an index"
    every = [x for group in lat for x in group]
    rows = [
        ("machine", f"{platform.processor() or platform.machine()}, nproc={os.cpu_count()}, python {platform.python_version()}"),
        ("events sent", f"{sent:,} ({args.rate:g}/s in batches of {args.batch})"),
        ("streams", f"{args.streams}, delivered {min(len(s) for s in seen):,} each, in order, no gap"),
        ("delivery p50 / p95 / p99 / max",
         f"{statistics.median(every):.1f} / {pct(every, 95):.1f} / {pct(every, 99):.1f} / {max(every):.1f} ms"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  value")
    print(f"{'-' * width}  {'-' * 40}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
