"""Encryption at rest (issue 13): what it costs ingest and search, measured in one run
against the same path without encryption.

    python benchmarks/bench_encryption.py [--events 50000] [--rounds 2]

Ingest: ``auditkeep.open(dir[, encryption=...]).record_many(batch, tenant="acme")`` in
batches of 1,000 realistic events (``events.py``, actor name and IP sealed as personal
fields), durable, default settings; the rounds alternate plain and encrypted so a loaded
machine's noise falls on both. Only the appends are timed.

Search (after the last round, on the two stores of that round): the projection is rebuilt
from the log and timed, then the same queries on both, each run ``--repeat`` times, the median reported, and the
number of matches compared (an encrypted store must find exactly what the plain one finds),
plus the size of each search projection (``index.db``) and log (``log.db``).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from events import events

import auditkeep
from auditkeep.crypto.atrest import EncryptionSettings
from auditkeep.ledger import Ledger

console = Console(width=200)
BATCH = 1000
TENANT = "acme"
ON = EncryptionSettings(enabled=True)

QUERIES: list[tuple[str, dict[str, Any]]] = [
    ("actor (exact)", {"actor": "user-17"}),
    ("action (exact)", {"action": "k8s.pods.exec"}),
    ("action prefix user.*", {"action": "user.*"}),
    ("resource type + id", {"resource_type": "pod", "resource_id": "r-123"}),
    ("metadata http.status=403", {"metadata": {"http.status": "403"}}),
    ("text: one word", {"text": "foxtrot"}),
    ("text: two words", {"text": "foxtrot kilo"}),
    ("text: dotted phrase", {"text": "node-7"}),
    ("outcome + time range", {"outcome": "denied", "since": "2026-01-10T00:00:00Z", "until": "2026-01-12T00:00:00Z"}),
]


def ingest(batches: list[list[dict[str, Any]]], path: Path, encrypted: bool) -> tuple[float, float]:
    lg = auditkeep.open(path, encryption=ON if encrypted else None)
    try:
        c0, t0 = time.process_time(), time.perf_counter()
        for b in batches:
            lg.record_many(b, tenant=TENANT)
        return time.perf_counter() - t0, time.process_time() - c0
    finally:
        lg.close()


def search_times(path: Path, encrypted: bool, repeat: int) -> tuple[dict[str, tuple[float, int]], float]:
    """Median time and matches of each query, and the time to rebuild the whole projection
    (in this process: what the follower child spends, plus tokens on an encrypted store)."""
    lg = Ledger.open(path, encryption=ON if encrypted else None, background=False)
    out: dict[str, tuple[float, int]] = {}
    try:
        lg.store.reset_projection()
        t0 = time.perf_counter()
        lg.search(TENANT, limit=1)  # the projection rebuilt from the log
        rebuild = time.perf_counter() - t0
        for name, q in QUERIES:
            times = []
            n = 0
            for _ in range(repeat):
                t0 = time.perf_counter()
                page = lg.search(TENANT, limit=100, **q)
                times.append(time.perf_counter() - t0)
                n = len(page.items)
            out[name] = (statistics.median(times), n)
    finally:
        lg.close()
    return out, rebuild


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    evs = list(events(args.events))
    batches = [evs[i : i + BATCH] for i in range(0, len(evs), BATCH)]
    root = Path(tempfile.mkdtemp(prefix="bench-enc-"))
    rates: dict[str, list[float]] = {"plain": [], "encrypted": []}
    cpu: dict[str, list[float]] = {"plain": [], "encrypted": []}
    load0 = os.getloadavg()
    try:
        for r in range(args.rounds):
            order = ("plain", "encrypted") if r % 2 == 0 else ("encrypted", "plain")
            for kind in order:
                path = root / f"{kind}-{r}"
                wall, proc = ingest(batches, path, kind == "encrypted")
                rates[kind].append(args.events / wall)
                cpu[kind].append(proc / args.events * 1e6)
                console.print(f"round {r + 1} {kind}: {args.events / wall:,.0f} events/s, {proc / args.events * 1e6:.1f} µs CPU/event")
        last = args.rounds - 1
        plain_s, plain_rebuild = search_times(root / f"plain-{last}", False, args.repeat)
        enc_s, enc_rebuild = search_times(root / f"encrypted-{last}", True, args.repeat)
        sizes = {k: {f: os.path.getsize(root / f"{k}-{last}" / f) for f in ("log.db", "index.db")}
                 for k in ("plain", "encrypted")}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    load1 = os.getloadavg()

    t = Table(title=f"ingest, {args.events:,} events, batches of {BATCH}, {args.rounds} rounds (best round)")
    for col in ("path", "events/s", "µs CPU/event", "ratio to plain"):
        t.add_column(col, justify="right")
    best_plain = max(rates["plain"])
    for kind in ("plain", "encrypted"):
        best = max(rates[kind])
        t.add_row(kind, f"{best:,.0f}", f"{min(cpu[kind]):.1f}", f"{best / best_plain:.2f}")
    console.print(t)
    s = Table(title=f"search, median of {args.repeat}, limit 100")
    for col in ("query", "plain ms", "encrypted ms", "ratio", "matches (plain / encrypted)"):
        s.add_column(col, justify="right")
    for name, _q in QUERIES:
        (pt, pn), (et, en) = plain_s[name], enc_s[name]
        s.add_row(name, f"{pt * 1e3:.2f}", f"{et * 1e3:.2f}", f"{et / pt:.2f}", f"{pn} / {en}" + ("" if pn == en else "  DIFFER"))
    console.print(s)
    console.print(f"projection rebuilt from the log ({args.events:,} events): plain {plain_rebuild:.2f} s, "
                  f"encrypted {enc_rebuild:.2f} s ({enc_rebuild / plain_rebuild:.2f}x)")
    for k, v in sizes.items():
        console.print(f"{k}: log.db {v['log.db'] / 1e6:.1f} MB, index.db {v['index.db'] / 1e6:.1f} MB")
    console.print(f"python {platform.python_version()}, nproc {os.cpu_count()}, load {load0[0]:.1f} -> {load1[0]:.1f}")


if __name__ == "__main__":
    main()
