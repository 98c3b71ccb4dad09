"""SDK ``record()`` cost in the calling thread, while the worker delivers to a real server.

    python benchmarks/bench_sdk.py [--seconds 4] [--url URL --key KEY]

Without ``--url`` it starts ``auditkeep serve`` on a fresh data directory (a free port on
127.0.0.1) and creates an ingest key. Each ``record()`` call is timed on its own with
``perf_counter_ns`` (the timer's own cost, measured and shown, is included). Scenarios:

- paced at a steady rate (the application records, the worker delivers all the while):
  each millisecond a burst of calls, then the thread sleeps as a request handler waits on I/O;
- flat out: one thread records as fast as it can while the worker sends (a queue large
  enough that the policy never blocks);
- the server down: batches go to the disk spool instead (fsync per batch, in the worker);
- the same pacing with an idle worker, and ``prepare()`` alone once per millisecond: what
  the machine itself adds to a call made by a thread just woken from sleep (cold caches,
  waiting for a CPU), whatever the code.

The baselines in the same run: validation and encoding alone (``prepare``), and the
embedded ledger's ``record()``, which returns only when the event is durable.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from machine import cpu_model  # noqa: E402

import auditkeep  # noqa: E402
from auditkeep.client import Client, context  # noqa: E402
from auditkeep.client.context import merge_into  # noqa: E402
from auditkeep.client.prepare import prepare  # noqa: E402
from auditkeep.ledger import LedgerConfig  # noqa: E402

CLI = [sys.executable, "-m", "auditkeep.cli.main"]




def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, data: Path) -> None:
        self.data = data
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        subprocess.run([*CLI, "init", "--data", str(data)], check=True, capture_output=True)
        out = subprocess.run(
            [*CLI, "keys", "create", "--data", str(data), "--tenant", "bench", "--scopes", "ingest,read", "--json"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        self.key: str = json.loads(out.stdout)["key"]

    def start(self) -> None:
        import httpx

        self.proc = subprocess.Popen(
            [*CLI, "serve", "--data", str(self.data), "--port", str(self.port), "--log-level", "error"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(600):
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise SystemExit("server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(30)
            self.proc = None


FIELDS: dict[str, Any] = {
    "action": "document.read",
    "resource": {"type": "document", "id": "doc-4711"},
    "outcome": "success",
    "metadata": {"bytes": 5120, "format": "pdf"},
}


def timed(record: Callable[..., Any], count: int, rate: float | None) -> list[int]:
    """Nanoseconds of each of ``count`` calls, at ``rate`` calls/s (None: flat out).

    Paced like a request handler: each millisecond a burst of ``rate / 1000`` calls, then
    the thread sleeps (as it would waiting on I/O) until the next millisecond.
    """
    out = [0] * count
    clock = time.perf_counter_ns
    per_ms = max(1, round(rate / 1000)) if rate else 0
    start = clock()
    with context(actor={"id": "alice", "ip": "10.0.0.7"}, request_id="req-1"):
        for i in range(count):
            if per_ms and i % per_ms == 0:
                due = start + (i // per_ms) * 1_000_000
                wait = due - clock()
                if wait > 0:
                    time.sleep(wait / 1e9)
            t0 = clock()
            record(**FIELDS)
            out[i] = clock() - t0
    return out


def row(name: str, ns: list[int], extra: str = "") -> str:
    ns = sorted(ns)
    n = len(ns)

    def q(p: float) -> float:
        return ns[min(n - 1, int(p * n))] / 1000

    return (
        f"| {name:<44} | {n:>8,} | {statistics.median(ns) / 1000:>7.2f} | {q(0.90):>7.2f} | {q(0.99):>7.2f} "
        f"| {q(0.999):>8.1f} | {ns[-1] / 1000:>8.1f} | {extra:<28} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=4.0, help="length of each paced run")
    ap.add_argument("--url", help="an already running server (default: start one)")
    ap.add_argument("--key", help="its ingest key")
    args = ap.parse_args()
    # The server-down scenario makes the SDK log its outage; keep the table clean.
    logging.getLogger("auditkeep").setLevel(logging.ERROR)

    tmp = Path(tempfile.mkdtemp(prefix="bench-sdk-"))
    server: Server | None = None
    if args.url:
        url, key = args.url, args.key
    else:
        server = Server(tmp / "data")
        server.start()
        url, key = server.url, server.key

    print("# SDK record() cost in the calling thread")
    print()
    print(f"- command: `python benchmarks/bench_sdk.py --seconds {args.seconds:g}`")
    print(f"- machine: {os.cpu_count()} CPUs ({cpu_model()}), Python {platform.python_version()}, {platform.system()}")
    print(f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, load average at start {os.getloadavg()[0]:.2f}")
    print(f"- server: {'given' if args.url else 'auditkeep serve (subprocess, same machine), SQLite, durable commits'}")
    print()
    print("| scenario                                     |   events |  median |     p90 |     p99 |   p99.9 |      max | worker                       |")
    print("|----------------------------------------------|---------:|--------:|--------:|--------:|--------:|---------:|------------------------------|")
    rows: list[str] = []
    try:
        clock_cost = timed(lambda **_: None, 200_000, None)
        rows.append(row("timer alone (included in every row)", clock_cost))
        alone = timed(lambda **f: prepare(dict(f)), 200_000, None)
        rows.append(row("baseline: prepare() (validate+encode), hot", alone))
        # The same code once per millisecond, the thread asleep in between: what waking up
        # costs on this machine (cold caches, waiting for a CPU), whatever the code.
        cold = timed(lambda **f: prepare(dict(f)), int(1_000 * args.seconds), 1_000)
        rows.append(row("baseline: prepare(), one call per ms", cold))

        with Client(url, key, max_queue=1_000_000) as client:
            timed(client.record, 20_000, None)  # warm up: connections, caches
            client.flush(30)
            before = client.stats().delivered
            t0 = time.perf_counter()
            ns = timed(client.record, 200_000, None)
            during = client.stats().delivered - before
            took = time.perf_counter() - t0
            client.flush(120)
            rows.append(row("Client.record, flat out", ns, f"{during / took:,.0f} ev/s sent meanwhile"))

        with Client(url, key, spool_dir=tmp / "spool") as client:
            for rate in (25_000, 10_000, 2_000):
                count = int(rate * args.seconds)
                before = client.stats().delivered
                t0 = time.perf_counter()
                ns = timed(client.record, count, rate)
                during = client.stats().delivered - before
                took = time.perf_counter() - t0
                client.flush(60)
                st = client.stats()
                rows.append(row(f"Client.record, paced {rate:,}/s", ns,
                                f"{during / took:,.0f} ev/s sent, {st.dropped} drop"))  # fmt: skip

        # The same pacing with a worker that has nothing to do.
        with Client(url, key, flush_interval=3600, batch_size=10**6, max_queue=10**6) as idle:
            for rate in (10_000, 2_000):
                ns = timed(idle.record, int(rate * args.seconds), rate)
                rows.append(row(f"Client.record, paced {rate:,}/s, worker idle", ns, "nothing sent until close"))
            idle.close(timeout=60)

        if server is not None:
            server.stop()
            with Client(url, key, spool_dir=tmp / "spool-down") as down:
                ns = timed(down.record, int(10_000 * args.seconds), 10_000)
                time.sleep(0.5)
                st = down.stats()
                rows.append(row("Client.record, paced 10,000/s, server down", ns,
                                f"{st.spooled:,} spooled, {st.dropped} drop"))  # fmt: skip
                down.close(timeout=0)

        with auditkeep.open(tmp / "embedded", LedgerConfig(durability="full")) as ledger:
            # The embedded ledger does not read the audit context: merge it as the integrations do.
            def embedded(**f: Any) -> Any:
                return ledger.record(**merge_into(f))

            rows.append(row("baseline: embedded Ledger.record (durable)", timed(embedded, 500, None),
                            "fsync per call"))  # fmt: skip
    finally:
        if server is not None:
            server.stop()
    for r in rows:
        print(r)
    print()
    print("Times in microseconds per call, measured in the calling thread.")


if __name__ == "__main__":
    main()
