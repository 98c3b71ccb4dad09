"""Evidence bundles: build and verify time for a large window, against same-run baselines.

    python benchmarks/bench_evidence.py [--events 1000000] [--out DIR]

Builds a log of realistic events (benchmarks/events.py: ~500 bytes, actor name and IP
sealed) with a signed checkpoint, then times on it, in the same run:

- baseline (build): reading every entry of the window from the store and hashing its leaf
  (the least any bundle of that window must do);
- ``build_bundle`` over the whole log as one window (as ``auditkeep evidence`` does, from a
  read-only ``LogReader``), to a file;
- the same with a filter (``--action user.login``: matching events in full, the rest hashed);
- baseline (verify): unzipping events.jsonl and hashing every line;
- ``verify_bundle`` of each bundle (as ``auditkeep verify-bundle`` and
  ``examples/verify_bundle.py`` do).

The issue's target: a bundle of a 1M-event window built in < 30 s and verified in < 30 s.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from events import events

from auditkeep.evidence import build_bundle, verify_bundle
from auditkeep.ledger import Ledger, LedgerConfig
from auditkeep.ledger.reader import LogReader
from auditkeep.log.hashing import leaf_hash
from auditkeep.query.filters import Filters

console = Console()


def build_log(data: Path, n: int) -> None:
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
        lg.sync_projection("default")  # the filtered bundle searches it


class Clock:
    """Wall-clock and CPU seconds of this process (the CPU time is what a loaded machine
    does not inflate: on a shared machine compare it, and the wall time as a multiple of its baseline)."""

    def __enter__(self) -> Clock:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self._wall, time.process_time() - self._cpu


def baseline_read(data: Path) -> tuple[Clock, int]:
    with LogReader.open(data) as rd:
        tid = rd.tenant_id("default")
        size = rd.head("default").size
        with Clock() as c:
            n = sum(1 for e in rd.store.entries(tid, 0, size) if leaf_hash(e.leaf))
        return c, n


def timed_build(data: Path, out: Path, filters: dict[str, str]) -> tuple[Clock, int, int]:
    with LogReader.open(data) as rd, Clock() as c, out.open("wb") as f:
        s = build_bundle(rd, f, "default", 0, time.time_ns(), filters=Filters.from_kwargs(filters))
    return c, s.events, s.hashed


def baseline_unzip(bundle: Path) -> Clock:
    with Clock() as c, zipfile.ZipFile(bundle) as zf, zf.open("events.jsonl") as f:
        for line in f:
            hashlib.sha256(b"\x00" + line.rstrip(b"\n")).digest()
    return c


def timed_verify(bundle: Path, key: str) -> Clock:
    with Clock() as c:
        result = verify_bundle(str(bundle), [key])
    assert result.ok, result.failures[:3]
    return c


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="auditkeep-bench-evidence-", dir=args.out))
    try:
        load = os.getloadavg()
        console.print(
            f"machine: {os.cpu_count()} cpus, {platform.processor() or platform.machine()}, python "
            f"{platform.python_version()}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
        )
        t = time.perf_counter()
        build_log(tmp / "data", args.events)
        console.print(f"built a log of {args.events:,} events in {time.perf_counter() - t:.0f} s")
        with LogReader.open(tmp / "data") as rd:
            key = rd.pubkey()
        table = Table(title=f"Evidence bundle of a {args.events:,}-event window")
        for col in ("step", "seconds", "CPU seconds", "events/s", "events in full", "hashed", "bundle MB"):
            table.add_column(col, justify="left" if col == "step" else "right")
        base, n = baseline_read(tmp / "data")
        table.add_row("baseline: read the window's entries, hash each leaf", f"{base.wall:.1f}", f"{base.cpu:.1f}", f"{n / base.wall:,.0f}", "", "", "")
        for label, filters, name in (("build_bundle, whole window", {}, "all.zip"),
                                     ("build_bundle, --action user.login", {"action": "user.login"}, "login.zip")):  # fmt: skip
            c, full, hashed = timed_build(tmp / "data", tmp / name, filters)
            mb = (tmp / name).stat().st_size / 2**20
            table.add_row(label, f"{c.wall:.1f}", f"{c.cpu:.1f}", f"{args.events / c.wall:,.0f}", f"{full:,}", f"{hashed:,}", f"{mb:,.0f}")
        ub = baseline_unzip(tmp / "all.zip")
        table.add_row("baseline: unzip events.jsonl, hash each line", f"{ub.wall:.1f}", f"{ub.cpu:.1f}", f"{args.events / ub.wall:,.0f}", "", "", "")
        for label, name in (("verify_bundle, whole window", "all.zip"), ("verify_bundle, --action user.login", "login.zip")):
            c = timed_verify(tmp / name, key)
            table.add_row(label, f"{c.wall:.1f}", f"{c.cpu:.1f}", f"{args.events / c.wall:,.0f}", "", "", "")
        console.print(table)
        load = os.getloadavg()
        console.print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
