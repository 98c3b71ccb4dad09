"""Retention and erasure throughput on the embedded store, each against a same-run baseline.

    python benchmarks/bench_lifecycle.py [--events 1000000] [--subject-events 10000] [--out DIR]
                                         [--parts all|archive|retention]

Builds one log of realistic events (actor name and IP sealed, as by default) in which one
data subject has ``--subject-events`` events spread through the log, projects it (search
index and full text), copies the data directory, then times:

- ``plan_retention`` and ``run_retention`` with one policy that makes every event due
  (``delete_after = "1d"``, run as of two days later): every payload deleted, a record per
  chunk appended, the search rows removed; the baseline is one SQL statement on the copy
  that empties the same payload columns (``UPDATE entries SET leaf=X'', subject=NULL,
  sealed=NULL``), the least work any deletion of them does;
- ``erase_subject`` of the subject with its events (salt, plaintext, search rows rewritten,
  FTS merge, WAL truncation); the baseline is ``UPDATE entries SET sealed=NULL WHERE
  subject=?`` on the copy.

Each is then checked: ``verify`` passes and reports the expired entries / erased fields.

- ``run_archive`` of the whole log to a directory target (segments of 65,536 entries: leaf
  hashes checked against the tiles, range proofs, signed segment notes, fsync); the
  baseline reads the same entries and writes the same JSON Lines through the same zstd
  level to one file (fsync), without any hash, proof or manifest. Every segment is then
  checked with ``check_segment``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
import orjson
import zstandard
from events import events

from auditkeep.archive.check import check_segment, read_segment
from auditkeep.archive.run import run_archive
from auditkeep.archive.segment import ZSTD_LEVEL
from auditkeep.archive.target import DirTarget
from auditkeep.ledger import Ledger, LedgerConfig
from auditkeep.retention import load_policies, plan_retention, run_retention
from auditkeep.retention.erase import erase_subject

console = Console()
DAY = 86_400 * 1_000_000_000
SUBJECT = "user-subject-x"


def build(data: Path, n: int, subject_events: int) -> None:
    every = max(1, n // max(1, subject_events))
    mine = 0
    with Ledger.open(data, LedgerConfig(), background=False) as lg:
        batch = []
        for i, e in enumerate(events(n)):
            if i % every == 0 and mine < subject_events:
                e["actor"]["id"] = SUBJECT
                e["actor"]["name"] = "Subject X"
                mine += 1
            batch.append(e)
            if len(batch) == 1000:
                lg.append(batch)
                batch = []
        if batch:
            lg.append(batch)
        lg.checkpoint(new=True)
        lg.sync_projection("default")


def _baseline(lg: Ledger, tid: int, end: int, out: Path) -> float:
    """Seconds to write entries [0, end) as the same JSON Lines through the same zstd level
    into one file (fsync): what any export of them costs, without hashes, proofs or notes."""
    t = time.perf_counter()
    cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    with open(out, "wb") as f:
        buf = []
        for e in lg.store.entries(tid, 0, end):
            buf.append(orjson.dumps({"index": e.index, "received_ns": e.received_ns, "leaf": e.leaf.decode()}))
            if len(buf) == 65536:
                f.write(cctx.compress(b"\n".join(buf) + b"\n"))
                buf = []
        if buf:
            f.write(cctx.compress(b"\n".join(buf) + b"\n"))
        f.flush()
        os.fsync(f.fileno())
    return time.perf_counter() - t


def bench_archive(data: Path, tmp: Path) -> tuple[str, str, str, str]:
    """Archive throughput against writing the same JSON Lines + zstd without proofs; the
    baseline runs before and after the archive (the mean is reported), so neither side gets
    the warmer page cache alone."""
    target = DirTarget(tmp / "archive")
    with Ledger.open(data, create=False, background=False) as lg:
        at = lg.head("default").received_ns + 2 * 86_400 * 1_000_000_000
        tid = lg.tenant_id("default")
        size = lg.store.latest_checkpoint(tid).size  # type: ignore[union-attr]
        before = _baseline(lg, tid, size, tmp / "baseline1.jsonl.zst")
        t = time.perf_counter()
        done = run_archive(lg, target, [], 65536, at, "default", older_than_ns=1)[0]
        dt_arch = time.perf_counter() - t
        after = _baseline(lg, tid, done.archived_to, tmp / "baseline2.jsonl.zst")
        key = lg.pubkey()
    dt_base = (before + after) / 2
    for first, end in done.segments:
        rep = check_segment(*read_segment(target.get, f"default/{first:012d}-{end:012d}"), [key])
        assert rep.ok, rep.failures[:3]
    n = done.entries
    return (f"archive run: {n:,} events, {len(done.segments)} segments, {done.bytes / 2**20:.1f} MiB",
            f"{n / dt_arch:,.0f} events/s",
            f"{n / dt_base:,.0f} events/s (JSONL + zstd, no proofs; {n / before:,.0f} before, {n / after:,.0f} after)",
            f"auditkeep / baseline {dt_base / dt_arch:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--subject-events", type=int, default=10_000)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--parts", choices=["all", "archive", "retention"], default="all")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="auditkeep-bench-lifecycle-", dir=args.out))
    load = os.getloadavg()
    console.print(
        f"machine: {os.cpu_count()} cpus, {platform.processor() or platform.machine()}, python "
        f"{platform.python_version()}, sqlite {sqlite3.sqlite_version}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    try:
        data = tmp / "data"
        t = time.perf_counter()
        build(data, args.events, args.subject_events)
        console.print(f"built {args.events:,} events in {time.perf_counter() - t:.1f} s")
        if args.parts in ("all", "archive"):
            arch_row = bench_archive(data, tmp)  # first: it deletes nothing
            if args.parts == "archive":
                table = Table("operation", "auditkeep", "baseline (same run)", "")
                table.add_row(*arch_row)
                console.print(table)
                return
        base = tmp / "baseline"
        shutil.copytree(data, base)
        erase_copy = tmp / "erase"
        shutil.copytree(data, erase_copy)
        rows: list[tuple[str, str, str, str]] = []

        # erasure first, on its own copy (retention would take the subject's payloads too)
        with Ledger.open(erase_copy, create=False, background=False) as lg:
            t = time.perf_counter()
            done = erase_subject(lg, "default", SUBJECT, "benchmark", {"id": "bench", "type": "user"})
            dt_erase = time.perf_counter() - t
            rep = lg.verify("default").tenants[0]
            assert rep.ok and rep.erased >= done.events, rep.problems[:3]
        conn = sqlite3.connect(base / "log.db")
        t = time.perf_counter()
        conn.execute("UPDATE entries SET sealed=NULL WHERE subject=?", (SUBJECT,))
        conn.commit()
        dt_erase_base = time.perf_counter() - t
        conn.close()
        rows.append((f"erase a subject with {done.events:,} events", f"{dt_erase:.3f} s", f"{dt_erase_base:.3f} s",
                     "target < 1 s: " + ("met" if dt_erase < 1 else "not met")))

        policies = load_policies([{"name": "all", "delete_after": "1d"}])
        with Ledger.open(data, create=False, background=False) as lg:
            at = lg.head("default").received_ns + 2 * DAY
            t = time.perf_counter()
            plan = plan_retention(lg, policies, at, "default")[0]
            dt_plan = time.perf_counter() - t
            t = time.perf_counter()
            ran = run_retention(lg, policies, at, "default")[0]
            dt_run = time.perf_counter() - t
            rep = lg.verify("default").tenants[0]
            assert rep.ok and rep.expired == ran.due, rep.problems[:3]
        conn = sqlite3.connect(base / "log.db")
        t = time.perf_counter()
        conn.execute("UPDATE entries SET leaf=X'', subject=NULL, sealed=NULL WHERE length(leaf) > 0")
        conn.commit()
        dt_base = time.perf_counter() - t
        conn.close()
        rows.insert(0, (f"retention plan over {plan.scanned:,} events", f"{plan.scanned / dt_plan:,.0f} events/s",
                        "–", ""))
        rows.insert(1, (f"retention run: {ran.due:,} expired, {ran.records} records", f"{ran.due / dt_run:,.0f} events/s",
                        f"{ran.due / dt_base:,.0f} events/s",
                        "target ≥ 100,000/s: " + ("met" if ran.due / dt_run >= 100_000 else "not met")))
        if args.parts == "all":
            rows.append(arch_row)
        table = Table("operation", "auditkeep", "baseline (bare SQL on a copy; for the archive: no proofs)", "")
        for r in rows:
            table.add_row(*r)
        console.print(table)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
