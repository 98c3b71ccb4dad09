"""Verify throughput: the default check against the same check without personal fields.

    python benchmarks/bench_verify.py [--events 1000000] [--out DIR]

Builds a log of realistic events (actor name and IP sealed as personal fields, as by
default) with ``auditkeep.open``'s ledger, then times, on the same log in the same run:

- ``LogReader.open(dir).verify()`` — the default path (``auditkeep verify``): read-only,
  every leaf, tile, root, checkpoint, id and time, and every personal field recomputed from
  its plaintext and salt;
- the same with the keys given (``verify --key``);
- the baseline: the same recomputation without the personal-field check (what verify did
  before it checked personal fields).

Logs of 200,000 entries and more are checked by worker processes (one per CPU).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from events import events

from auditkeep.ledger import Ledger, LedgerConfig
from auditkeep.ledger.reader import LogReader
from auditkeep.ledger.trust import Trust
from auditkeep.ledger.verify import verify_log
from auditkeep.log.note import NoteVerifier

console = Console()


def build(data: Path, n: int) -> None:
    with Ledger.open(data, LedgerConfig(), background=False) as lg:
        batch = []
        for e in events(n):
            batch.append(e)
            if len(batch) == 1000:
                lg.append(batch)
                batch = []
        if batch:
            lg.append(batch)
        lg.checkpoint(new=True)


def timed(data: Path, how: str) -> tuple[float, int, int]:
    with LogReader.open(data) as rd:
        head = rd.head("default")
        t = time.perf_counter()
        if how == "default":
            rep = rd.verify().tenants[0]
        elif how == "key":
            rep = rd.verify(trust=Trust.given([NoteVerifier.from_vkey(rd.pubkey())])).tenants[0]
        else:
            rep = verify_log(rd.store, head, rd.origin("default"), rd.stored_trust(), personal_fields=False)
        dt = time.perf_counter() - t
    assert rep.ok, rep.problems[:3]
    return head.size / dt, rep.sealed_checked, rep.entries_checked


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--runs", type=int, default=2, help="runs of each, best kept")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="auditkeep-bench-verify-", dir=args.out))
    try:
        load = os.getloadavg()
        console.print(
            f"machine: {os.cpu_count()} cpus, {platform.processor() or platform.machine()}, python "
            f"{platform.python_version()}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
        )
        t = time.perf_counter()
        build(tmp / "data", args.events)
        console.print(f"built a log of {args.events:,} events in {time.perf_counter() - t:.0f} s")
        t = Table(title=f"Verify of {args.events:,} events (best of {args.runs})")
        for c in ("check", "events/s", "personal fields checked", "x baseline"):
            t.add_column(c, justify="right" if c != "check" else "left")
        results = {}
        for how in ("baseline", "default", "key"):
            best = max((timed(tmp / "data", how) for _ in range(args.runs)), key=lambda r: r[0])
            results[how] = best
        base = results["baseline"][0]
        t.add_row("baseline: leaves, tiles, roots, checkpoints, ids, times", f"{base:,.0f}", "0", "1.00")
        t.add_row("LogReader.verify() (auditkeep verify): + personal fields", f"{results['default'][0]:,.0f}",
                  f"{results['default'][1]:,}", f"{results['default'][0] / base:.2f}")
        t.add_row("the same, keys given (verify --key)", f"{results['key'][0]:,.0f}",
                  f"{results['key'][1]:,}", f"{results['key'][0] / base:.2f}")
        console.print(t)
        load = os.getloadavg()
        console.print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
