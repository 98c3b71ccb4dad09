"""Export and forwarding throughput.

Export: events/s written by ``auditkeep export``'s code path (``iter_pages`` + ``Formatter``)
to a file in each format, against a same-run baseline: the same rows read page by page and
written as plain JSON Lines (the stored leaf bytes, one a line, no decoding or formatting).

Forwarding: a file target (the cheapest receiver, so the figure is the forwarder's own cost)
follows the log while events are appended at a steady offered rate in the same process, as
under ``auditkeep serve``; the table gives the ingest rate achieved, the target's lag
(sampled every 0.1 s) and how long it took to catch up after the last append.

    python benchmarks/bench_export.py --events 200000 --forward-rate 20000 --forward-seconds 15
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from events import make_event

from auditkeep.config import ForwardSettings
from auditkeep.export import Formatter, iter_chunks
from auditkeep.export.reading import PAGE
from auditkeep.forward.forwarder import Target
from auditkeep.ledger.config import LedgerConfig
from auditkeep.ledger.ledger import Ledger
from auditkeep.ledger.reader import LogReader
from auditkeep.query.filters import Filters
from auditkeep.store.base import row_chunks

TENANT = "bench"


def build(path: Path, n: int) -> None:
    rng = random.Random(7)
    with Ledger.open(path, LedgerConfig(personal_fields=())) as lg:
        for start in range(0, n, 2000):
            lg.append([make_event(rng, i) for i in range(start, min(n, start + 2000))], TENANT)


def baseline(reader: LogReader, out: Path) -> tuple[int, float, float]:
    """The same rows, paged the same way, written as they are stored (one JSON a line): the
    raw rows of the store (no object per row), the least any export must do."""
    tid = reader.tenant_id(TENANT)
    size = reader.head(TENANT).size
    t, cpu = time.perf_counter(), time.process_time()
    n = 0
    with open(out, "wb") as f:
        for rows in row_chunks(reader.store, tid, 0, size, PAGE):
            f.write(b"".join([r[3] + b"\n" for r in rows]))
            n += len(rows)
    return n, time.perf_counter() - t, time.process_time() - cpu


def export(reader: LogReader, fmt: str, out: Path) -> tuple[int, float, float]:
    """Events, wall seconds and CPU seconds of this process (which a loaded machine does
    not inflate) of one export."""
    formatter = Formatter(fmt)
    t, cpu = time.perf_counter(), time.process_time()
    n = 0
    with open(out, "wb") as f:
        for count, chunk in iter_chunks(reader, TENANT, Filters(), formatter):
            f.write(chunk)
            n += count
    return n, time.perf_counter() - t, time.process_time() - cpu


def forward_drain(reader_path: Path, folder: Path, fmt: str) -> float:
    """Events/s a file target sends from a backlog (the whole log), in ``fmt``."""
    with Ledger.open(reader_path, LedgerConfig(personal_fields=()), background=False) as lg:
        target = Target(ForwardSettings(name=f"drain-{fmt}", type="file", path=str(folder / f"drain.{fmt}"), format=fmt, batch=2000), lg)
        t = time.perf_counter()
        try:
            while target.step():
                pass
        finally:
            target.close()
        return target.stats.sent / (time.perf_counter() - t)


def forward_under_ingest(folder: Path, rate: int, seconds: float) -> dict[str, float]:
    rng = random.Random(11)
    with Ledger.open(folder / "fwdata", LedgerConfig(personal_fields=())) as lg:
        target = Target(ForwardSettings(name="bench", type="file", path=str(folder / "fw.jsonl"), batch=2000), lg, poll_interval=0.05)
        lg.on_commit(lambda _ids: target.wake())
        target.start()
        batch = max(1, rate // 20)  # 20 batches a second
        lags: list[int] = []
        sent = 0
        t0 = time.perf_counter()
        next_sample = t0
        i = 0
        while time.perf_counter() - t0 < seconds:
            due = t0 + i * batch / rate
            now = time.perf_counter()
            if now < due:
                time.sleep(due - now)
            lg.append([make_event(rng, sent + k) for k in range(batch)], TENANT)
            sent += batch
            i += 1
            if time.perf_counter() >= next_sample:
                lags.append(target.stats.lag)
                next_sample += 0.1
        ingest_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        while target.stats.lag > 0 or target.stats.sent < sent:
            time.sleep(0.01)
            if time.perf_counter() - t1 > 600:
                break
        catch_up = time.perf_counter() - t1
        target.stop()
        lags.sort()
        return {
            "offered": rate,
            "achieved": sent / ingest_s,
            "events": sent,
            "lag_p50": lags[len(lags) // 2] if lags else 0,
            "lag_p95": lags[int(len(lags) * 0.95)] if lags else 0,
            "lag_max": lags[-1] if lags else 0,
            "catch_up_s": catch_up,
        }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--forward-rate", type=int, default=20_000)
    ap.add_argument("--forward-seconds", type=float, default=15.0)
    ap.add_argument("--formats", default="baseline,jsonl,ocsf,cef,csv", help="export rows to measure")
    args = ap.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        folder = Path(tmp)
        t = time.perf_counter()
        build(folder / "data", args.events)
        console.print(f"built a log of {args.events:,} events in {time.perf_counter() - t:.0f} s")
        table = Table(title=f"Export of {args.events:,} events to a file (best of {args.runs})")
        for col in ("path", "events/s", "x baseline", "events/CPU s", "MB written"):
            table.add_column(col, justify="right" if col != "path" else "left")
        with LogReader.open(folder / "data") as reader:
            base_rate = 0.0
            rows: list[tuple[str, float, float, float]] = []
            for name in args.formats.split(","):
                out = folder / f"out.{name}"
                best = best_cpu = 0.0
                for _ in range(args.runs):
                    n, secs, cpu = baseline(reader, out) if name == "baseline" else export(reader, name, out)
                    assert n == args.events
                    best = max(best, n / secs)
                    best_cpu = max(best_cpu, n / max(cpu, 1e-9))
                if name == "baseline":
                    base_rate = best
                rows.append((name, best, best_cpu, out.stat().st_size / 1e6))
                out.unlink()
            for name, rate, cpu_rate, mb in rows:
                label = "baseline: stored JSON, one a line" if name == "baseline" else f"export --format {name}"
                table.add_row(label, f"{rate:,.0f}", f"{rate / base_rate:.2f}", f"{cpu_rate:,.0f}", f"{mb:,.0f}")
        console.print(table)
        t3 = Table(title=f"Forwarding a backlog of {args.events:,} events to a file target")
        t3.add_column("format")
        t3.add_column("events/s", justify="right")
        for fmt in ("native", "ocsf"):
            t3.add_row(fmt, f"{forward_drain(folder / 'data', folder, fmt):,.0f}")
        console.print(t3)
        fw = forward_under_ingest(folder, args.forward_rate, args.forward_seconds)
        t2 = Table(title="Forwarding (file target) while ingesting in the same process")
        for col in ("offered ingest/s", "achieved ingest/s", "events", "lag p50", "lag p95", "lag max", "caught up after last append"):
            t2.add_column(col, justify="right")
        t2.add_row(f"{fw['offered']:,.0f}", f"{fw['achieved']:,.0f}", f"{fw['events']:,.0f}", f"{fw['lag_p50']:,.0f}",
                   f"{fw['lag_p95']:,.0f}", f"{fw['lag_max']:,.0f}", f"{fw['catch_up_s']:.2f} s")
        console.print(t2)
        load = os.getloadavg()
        console.print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
