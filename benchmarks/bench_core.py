"""Core benchmarks: ingest, verify, proofs, search, memory — with baselines in the same run.

    python benchmarks/bench_core.py [--events 1000000] [--proof-leaves 10000000] [--out DIR]
                                    [--headline-events 100000] [--headline-only]

First the headline (``bench_headline.py``, issue 12): ``auditkeep.open(dir).record_many`` of
1,000-event batches with default settings against the issue's raw ``sqlite3`` baseline and
tamperlog, in the same run. Then the figures below.

Ingest goes through ``Ledger.append`` in batches of 1,000, durable (synchronous=FULL), one
batch at a time; a second figure keeps two batches in flight (``submit``), as a server with
concurrent clients does. Baselines on the same events: plain ``sqlite3`` ``executemany`` of
the JSON into one table with three secondary indexes (tenant+time, tenant+actor+time,
tenant+action+time), WAL, synchronous=FULL, batches of 1,000; and a JSON Lines file append
with an fsync per batch.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import orjson
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from events import events

from auditkeep.config import Settings, open_ledger
from auditkeep.ledger import Ledger
from auditkeep.log.proofs import consistency_proof, inclusion_proof
from auditkeep.log.tiles import Frontier
from auditkeep.model.validate import decode_batch
from auditkeep.server.projection import ProjectionProcess

console = Console()
BATCH = 1000


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_events(n: int, path: Path) -> float:
    """The events as JSON Lines on disk (read back batch by batch, so the benchmark's own
    input does not sit in memory); returns the mean size of an event."""
    size = 0
    with path.open("wb") as fh:
        for e in events(n):
            line = orjson.dumps(e) + b"\n"
            size += len(line) - 1
            fh.write(line)
    return size / n


def batches(path: Path) -> Iterator[bytes]:
    """Batches of BATCH events as a JSON array, read from the file."""
    with path.open("rb") as fh:
        while True:
            lines = list(islice(fh, BATCH))
            if not lines:
                return
            yield b"[" + b",".join(x.rstrip(b"\n") for x in lines) + b"]"


def baseline_sqlite(source: Path, path: Path) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE events(id INTEGER PRIMARY KEY, tenant TEXT, time TEXT, actor TEXT, action TEXT, body BLOB)"
    )
    conn.execute("CREATE INDEX e_time ON events(tenant, time)")
    conn.execute("CREATE INDEX e_actor ON events(tenant, actor, time)")
    conn.execute("CREATE INDEX e_action ON events(tenant, action, time)")
    n = 0
    t = time.perf_counter()
    for b in batches(source):
        evs = orjson.loads(b)
        rows = [("default", e["time"], e["actor"]["id"], e["action"], orjson.dumps(e)) for e in evs]
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO events(tenant, time, actor, action, body) VALUES(?,?,?,?,?)", rows)
        conn.execute("COMMIT")
        n += len(rows)
    dt = time.perf_counter() - t
    conn.close()
    return n / dt


def baseline_jsonl(source: Path, path: Path) -> float:
    n = 0
    t = time.perf_counter()
    with open(path, "ab") as fh:
        for b in batches(source):
            evs = orjson.loads(b)
            fh.write(b"".join(orjson.dumps(e) + b"\n" for e in evs))
            fh.flush()
            os.fsync(fh.fileno())
            n += len(evs)
    return n / (time.perf_counter() - t)


def ingest(source: Path, data: Path, pipelined: bool) -> tuple[float, float, list[float], float, float]:
    """(events/s, seconds until the projection caught up after the last append, RSS samples,
    peak RSS of this process, peak RSS of the projection process).

    The projection is followed by a child process, as ``auditkeep serve`` does."""
    settings = Settings(data=str(data))
    lg = open_ledger(settings, create=True, background=False)
    projection = ProjectionProcess(settings)
    samples: list[float] = []
    n = 0
    gc.collect()
    gc.freeze()
    t = time.perf_counter()
    inflight = []
    for i, b in enumerate(batches(source)):
        evs = decode_batch(b)
        if pipelined:
            inflight.append(lg.submit(evs))
            if len(inflight) >= 2:
                n += len(inflight.pop(0).result())
        else:
            n += len(lg.append(evs))
        if i % 100 == 0:
            samples.append(rss_mb())
    for f in inflight:
        n += len(f.result())
    dt = time.perf_counter() - t
    t2 = time.perf_counter()
    while lg.projection_lag("default") > 0:
        time.sleep(0.05)
    lag = time.perf_counter() - t2
    child_peak = _peak_of(projection._proc.pid)
    projection.stop()
    lg.close()
    gc.unfreeze()
    return n / dt, lag, samples, peak_mb(), child_peak


def _peak_of(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def percentile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def bench_proofs_tiles(leaves: int, tmp: Path) -> dict[str, float]:
    """Proof generation from tiles stored in SQLite, at ``leaves`` leaves (tiles built directly
    from synthetic leaf hashes: the proof path only ever reads tiles)."""
    conn = sqlite3.connect(tmp / "tiles.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("CREATE TABLE tiles(level INTEGER, idx INTEGER, data BLOB, PRIMARY KEY(level, idx)) WITHOUT ROWID")
    f = Frontier()
    rng = random.Random(5)
    chunk = 65536
    conn.execute("BEGIN")
    for start in range(0, leaves, chunk):
        hashes = [rng.randbytes(32) for _ in range(min(chunk, leaves - start))]
        changed = f.append(hashes)
        conn.executemany("INSERT OR REPLACE INTO tiles VALUES(?,?,?)", [(lv, ix, d) for (lv, ix), d in changed.items()])
    conn.execute("COMMIT")

    def read(keys):  # type: ignore[no-untyped-def]
        out = {}
        for lv, ix in keys:
            r = conn.execute("SELECT data FROM tiles WHERE level=? AND idx=?", (lv, ix)).fetchone()
            if r:
                out[(lv, ix)] = r[0]
        return out

    inc: list[float] = []
    sizes: list[int] = []
    for _ in range(2000):
        i = rng.randrange(leaves)
        t = time.perf_counter()
        p = inclusion_proof(i, leaves, read)
        inc.append((time.perf_counter() - t) * 1000)
        sizes.append(32 * len(p))
    con: list[float] = []
    for _ in range(2000):
        m = rng.randrange(1, leaves)
        t = time.perf_counter()
        p = consistency_proof(m, leaves, read)
        con.append((time.perf_counter() - t) * 1000)
    conn.close()
    import math

    return {
        "inc_p50": statistics.median(inc),
        "inc_p99": percentile(inc, 99),
        "con_p50": statistics.median(con),
        "con_p99": percentile(con, 99),
        "max_bytes": max(sizes),
        "bound": 32 * math.ceil(math.log2(leaves)),
    }


def bench_search(data: Path) -> dict[str, tuple[float, float, int]]:
    lg = Ledger.open(data, background=False)
    lg.store.analyze()  # type: ignore[attr-defined]
    rng = random.Random(9)
    size = lg.head("default").size
    sample = [lg.record_at(rng.randrange(size)).event for _ in range(200)]  # real values to ask for
    day = 86400

    def window(hours: float) -> dict[str, str]:
        from auditkeep.model.timefmt import format_rfc3339

        start = 1_767_225_600 + rng.randrange(0, 29 * day)
        return {"since": format_rfc3339(start * 10**9), "until": format_rfc3339(int((start + hours * 3600) * 10**9))}

    queries = {
        "actor + 1 day range": lambda: {"actor": f"user-{rng.randrange(2000)}", **window(24)},
        "actor + 1 hour range": lambda: {"actor": f"user-{rng.randrange(2000)}", **window(1)},
        "action prefix + 1 day, newest": lambda: {"action": rng.choice(["user.*", "k8s.*", "db.*"]), **window(24)},
        "full text, 2 common words": lambda: {"text": f"{rng.choice(['alpha', 'bravo', 'golf'])} {rng.choice(['kilo', 'lima', 'mike'])}"},
        "full text, a request id": lambda: {"text": rng.choice(sample).source.request_id},  # type: ignore[union-attr]
        "metadata http.status=403 + 1 day": lambda: {"metadata": {"http.status": "403"}, **window(24)},
    }
    out = {}
    for name, make in queries.items():
        times = []
        hits = 0
        for _ in range(60):
            kw = make()
            t = time.perf_counter()
            page = lg.search("default", limit=100, **kw)  # type: ignore[arg-type]
            times.append((time.perf_counter() - t) * 1000)
            hits += len(page.items)
        out[name] = (statistics.median(times), percentile(times, 95), hits // 60)
    lg.close()
    return out


def bench_verify(data: Path, n: int) -> float:
    lg = Ledger.open(data, background=False)
    t = time.perf_counter()
    rep = lg.verify()
    dt = time.perf_counter() - t
    assert rep.ok
    lg.close()
    return n / dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--proof-leaves", type=int, default=10_000_000)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--headline-events", type=int, default=100_000)
    ap.add_argument("--headline-only", action="store_true")
    args = ap.parse_args()
    import bench_headline

    sys.argv = [sys.argv[0], "--events", str(args.headline_events)] + (["--out", str(args.out)] if args.out else [])
    bench_headline.main()
    if args.headline_only:
        return
    tmp = Path(tempfile.mkdtemp(prefix="auditkeep-bench-", dir=args.out))
    try:
        console.print(f"machine: {os.cpu_count()} cpus, {platform.processor() or platform.machine()}, python {platform.python_version()}")
        source = tmp / "events.jsonl"
        size = write_events(args.events, source)
        console.print(f"{args.events} events, {size:.0f} bytes each as JSON")

        base_sql = baseline_sqlite(source, tmp / "baseline.db")
        base_jsonl = baseline_jsonl(source, tmp / "baseline.jsonl")
        seq_rate, seq_lag, samples, peak, child_peak = ingest(source, tmp / "seq", pipelined=False)
        pipe_rate, pipe_lag, _, _, _ = ingest(source, tmp / "pipe", pipelined=True)

        t = Table(title=f"Ingest of {args.events:,} events, batches of {BATCH}, durable")
        t.add_column("path")
        t.add_column("events/s", justify="right")
        t.add_column("x sqlite baseline", justify="right")
        t.add_column("projection caught up after", justify="right")
        t.add_row("baseline: sqlite executemany, 3 indexes, FULL", f"{base_sql:,.0f}", "1.00", "-")
        t.add_row("baseline: JSON Lines append + fsync", f"{base_jsonl:,.0f}", f"{base_jsonl / base_sql:.2f}", "-")
        t.add_row("Ledger.append (one batch at a time)", f"{seq_rate:,.0f}", f"{seq_rate / base_sql:.2f}", f"{seq_lag:.1f} s")
        t.add_row("Ledger.submit (two batches in flight)", f"{pipe_rate:,.0f}", f"{pipe_rate / base_sql:.2f}", f"{pipe_lag:.1f} s")
        console.print(t)
        console.print(
            f"RSS during ingest: first {samples[0]:.0f} MB, middle {samples[len(samples) // 2]:.0f} MB, "
            f"last {samples[-1]:.0f} MB; peak RSS of the process {peak:.0f} MB, of the projection process {child_peak:.0f} MB"
        )

        vrate = bench_verify(tmp / "seq", args.events)
        t = Table(title="Verify")
        t.add_column("log")
        t.add_column("events/s", justify="right")
        t.add_row(f"{args.events:,} events, full recompute", f"{vrate:,.0f}")
        console.print(t)

        s = bench_search(tmp / "seq")
        t = Table(title=f"Search, first page of 100, on {args.events:,} events (60 runs each)")
        for c in ("query", "p50 ms", "p95 ms", "rows"):
            t.add_column(c, justify="right" if c != "query" else "left")
        for name, (p50, p95, rows) in s.items():
            t.add_row(name, f"{p50:.1f}", f"{p95:.1f}", str(rows))
        console.print(t)

        t = Table(title="Proof generation from stored tiles (2,000 random proofs each)")
        for c in ("leaves", "inclusion p50/p99 ms", "consistency p50/p99 ms", "max proof bytes", "32·⌈log2 n⌉"):
            t.add_column(c, justify="right")
        for leaves in (args.events, args.proof_leaves):
            d = tmp / f"proofs-{leaves}"
            d.mkdir()
            r = bench_proofs_tiles(leaves, d)
            t.add_row(
                f"{leaves:,}",
                f"{r['inc_p50']:.2f} / {r['inc_p99']:.2f}",
                f"{r['con_p50']:.2f} / {r['con_p99']:.2f}",
                str(int(r["max_bytes"])),
                str(int(r["bound"])),
            )
        console.print(t)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
