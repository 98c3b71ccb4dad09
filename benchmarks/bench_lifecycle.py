"""Retention and erasure throughput on both stores, each against a same-run baseline.

    python benchmarks/bench_lifecycle.py [--events 1000000] [--subject-events 10000]
        [--pg postgresql://postgres@127.0.0.1:5432/test] [--out DIR]
        [--parts all|archive|retention] [--copy-of DATA_DIR]

Builds one log of realistic events (actor name and IP sealed, as by default) in which one
data subject has ``--subject-events`` events spread through the log, projects it (search
index and full text), then times, on SQLite (a copy of the data directory per operation):

- ``plan_retention`` and ``run_retention`` with one policy that makes every event due
  (``delete_after = "1d"``, run as of two days later): every payload deleted, a record per
  chunk appended, the search rows removed; the baseline is bare SQL on a copy doing the
  same deletion with the least work: ``UPDATE entries SET leaf=X'', subject=NULL,
  sealed=NULL`` (``secure_delete`` on, as the run has it), ``DELETE FROM ev`` and the
  full-text index's ``delete-all``;
- ``erase_subject`` of the subject with its events (salt, plaintext, search rows rewritten,
  FTS merge, WAL truncation); the baseline is ``UPDATE entries SET sealed=NULL WHERE
  subject=?`` on the copy.

With ``--pg``, the same events go into a PostgreSQL schema of their own (dropped after) and
the same operations are timed there: erasure first, then retention, then the compaction of
the month (``compact_expired_months`` as of the month's end); the baseline is bare SQL on
an unpartitioned copy of ``entries`` (with its primary key) and ``ev``, and for the
compaction ``VACUUM FULL`` of that copy once emptied.

Each is then checked: ``verify`` passes and reports the expired entries / erased fields.

- ``run_archive`` of the whole log to a directory target (segments of 65,536 entries: leaf
  hashes checked against the tiles, range proofs, signed segment notes, fsync); the
  baseline reads the same entries and writes the same JSON Lines through the same zstd
  level to one file (fsync), without any hash, proof or manifest. Every segment is then
  checked with ``check_segment``.

First, ``--ingest-events`` events are appended to two stores in turn, one with an index of
the entries by subject (which erasure could use instead of its scans), for what that index
would cost the append.
"""

from __future__ import annotations

import argparse
import copy as copy_module
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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

console = Console(width=200)
DAY = 86_400 * 1_000_000_000
SUBJECT = "user-subject-x"
POLICIES = load_policies([{"name": "all", "delete_after": "1d"}])


def _fill(lg: Ledger, n: int, subject_events: int) -> None:
    every = max(1, n // max(1, subject_events))
    mine = 0
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


def build(data: Path, n: int, subject_events: int) -> None:
    with Ledger.open(data, LedgerConfig(), background=False) as lg:
        _fill(lg, n, subject_events)


Row = tuple[str, str, str, str, str]


def _sqlite_base(path: Path, statements: list[tuple[str, tuple[object, ...]]], db: str = "log.db") -> float:
    conn = sqlite3.connect(path / db, isolation_level=None)
    conn.execute("PRAGMA secure_delete=ON")
    t = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    for sql, params in statements:
        conn.execute(sql, params)
    conn.execute("COMMIT")
    dt = time.perf_counter() - t
    conn.close()
    return dt


def _fts_tables(path: Path) -> list[str]:
    """The full-text indexes of index.db (ev_fts, and the personal words' shards when the
    layout has them), all emptied by the baseline as a run empties them."""
    conn = sqlite3.connect(path / "index.db")
    try:
        return [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE sql LIKE 'CREATE VIRTUAL TABLE%fts5%'")]
    finally:
        conn.close()


def sqlite_rows(data: Path, tmp: Path) -> list[Row]:
    base = tmp / "baseline"
    shutil.copytree(data, base)
    erase_copy = tmp / "erase"
    shutil.copytree(data, erase_copy)
    rows: list[Row] = []

    # erasure first, on its own copy (retention would take the subject's payloads too)
    with Ledger.open(erase_copy, create=False, background=False) as lg:
        tid = lg.tenant_id("default")
        t = time.perf_counter()
        c = time.process_time()
        done = erase_subject(lg, "default", SUBJECT, "benchmark", {"id": "bench", "type": "user"})
        dt_erase = time.perf_counter() - t
        cpu_erase = time.process_time() - c
        rep = lg.verify("default").tenants[0]
        assert rep.ok and rep.erased >= done.events, rep.problems[:3]
    shutil.rmtree(erase_copy)
    dt_erase_base = _sqlite_base(base, [(
        "UPDATE entries SET sealed=NULL WHERE tenant_id=? AND subject=? AND sealed IS NOT NULL", (tid, SUBJECT))])
    rows.append(("sqlite", f"erase a subject with {done.events:,} events", f"{dt_erase:.3f} s (CPU {cpu_erase:.2f} s)",
                 f"{dt_erase_base:.3f} s", "target < 1 s: " + ("met" if dt_erase < 1 else "not met")))

    with Ledger.open(data, create=False, background=False) as lg:
        at = lg.head("default").received_ns + 2 * DAY
        t = time.perf_counter()
        plan = plan_retention(lg, POLICIES, at, "default")[0]
        dt_plan = time.perf_counter() - t
        t = time.perf_counter()
        c = time.process_time()
        ran = run_retention(lg, POLICIES, at, "default")[0]
        dt_run = time.perf_counter() - t
        cpu_run = time.process_time() - c
        rep = lg.verify("default").tenants[0]
        assert rep.ok and rep.expired == ran.due, rep.problems[:3]
    dt_entries = _sqlite_base(base, [("UPDATE entries SET leaf=X'', subject=NULL, sealed=NULL WHERE length(leaf) > 0", ())])
    dt_base = dt_entries + _sqlite_base(
        base, [("DELETE FROM ev", ()), *[(f"INSERT INTO {t}({t}) VALUES('delete-all')", ()) for t in _fts_tables(base)]],
        "index.db")
    rows.insert(0, ("sqlite", f"retention plan over {plan.scanned:,} events", f"{plan.scanned / dt_plan:,.0f} events/s",
                    "-", ""))
    rows.insert(1, ("sqlite", f"retention run: {ran.due:,} expired, {ran.records} records",
                    f"{ran.due / dt_run:,.0f} events/s ({dt_run:.1f} s; CPU {cpu_run * 1e6 / ran.due:.1f} µs/event)",
                    f"{ran.due / dt_base:,.0f} events/s (the entries' UPDATE alone: {ran.due / dt_entries:,.0f})",
                    "target ≥ 100,000/s: " + ("met" if ran.due / dt_run >= 100_000 else "not met")))
    return rows


def pg_rows(url: str, tmp: Path, n: int, subject_events: int) -> list[Row]:
    import psycopg

    from auditkeep.ledger.datadir import establish
    from auditkeep.store.postgres import PostgresStore
    from auditkeep.store.postgres_schema import Month

    schema = f"bench_lifecycle_{os.getpid()}"
    db = url + ("&" if "?" in url else "?") + "schema=" + schema
    admin = psycopg.connect(url, autocommit=True)
    rows: list[Row] = []
    try:
        store = PostgresStore(db)
        identity, _ = establish(store, tmp / "pg-key")
        t = time.perf_counter()
        with Ledger(store, identity, LedgerConfig(), background=False) as lg:
            _fill(lg, n, subject_events)
            console.print(f"postgres: built {n:,} events in {time.perf_counter() - t:.1f} s")
            tid = lg.tenant_id("default")
            admin.execute(f'CREATE TABLE "{schema}".base_entries AS SELECT * FROM "{schema}".entries')
            admin.execute(f'ALTER TABLE "{schema}".base_entries ADD PRIMARY KEY (k, received_ns)')
            admin.execute(f'CREATE TABLE "{schema}".base_ev AS SELECT k FROM "{schema}".ev')
            admin.execute(f'ALTER TABLE "{schema}".base_ev ADD PRIMARY KEY (k)')
            admin.execute(f'VACUUM ANALYZE "{schema}".base_entries')

            t = time.perf_counter()
            done = erase_subject(lg, "default", SUBJECT, "benchmark", {"id": "bench", "type": "user"})
            dt_erase = time.perf_counter() - t
            rep = lg.verify("default").tenants[0]
            assert rep.ok and rep.erased >= done.events, rep.problems[:3]
            t = time.perf_counter()
            admin.execute(f'UPDATE "{schema}".base_entries SET sealed = NULL WHERE tenant_id = %s AND subject = %s '
                          "AND sealed IS NOT NULL", (tid, SUBJECT.encode()))
            admin.execute(f'VACUUM "{schema}".base_entries')
            dt_erase_base = time.perf_counter() - t
            rows.append(("postgres", f"erase a subject with {done.events:,} events", f"{dt_erase:.3f} s",
                         f"{dt_erase_base:.3f} s (UPDATE + VACUUM)", "target < 1 s: " + ("met" if dt_erase < 1 else "not met")))

            head = lg.head("default")
            at = head.received_ns + 2 * DAY
            t = time.perf_counter()
            ran = run_retention(lg, POLICIES, at, "default")[0]
            dt_run = time.perf_counter() - t
            month = Month.of(head.received_ns)
            t = time.perf_counter()
            compacted = store.compact_expired_months(month.end_ns + DAY)
            dt_compact = time.perf_counter() - t
            rep = lg.verify("default").tenants[0]
            assert rep.ok and rep.expired == ran.due, rep.problems[:3]
            t = time.perf_counter()
            admin.execute(f'UPDATE "{schema}".base_entries SET leaf = \'\'::bytea, subject = NULL, sealed = NULL '
                          "WHERE length(leaf) > 0")
            dt_entries = time.perf_counter() - t
            admin.execute(f'DELETE FROM "{schema}".base_ev')
            dt_base = time.perf_counter() - t
            t = time.perf_counter()
            admin.execute(f'VACUUM FULL "{schema}".base_entries')  # what gives the space back otherwise
            dt_full = time.perf_counter() - t
        store.close()
        rows.insert(0, ("postgres", f"retention run: {ran.due:,} expired, {ran.records} records",
                        f"{ran.due / dt_run:,.0f} events/s ({dt_run:.1f} s)",
                        f"{ran.due / dt_base:,.0f} events/s (the entries' UPDATE alone: {ran.due / dt_entries:,.0f})",
                        "target ≥ 100,000/s: " + ("met" if ran.due / dt_run >= 100_000 else "not met")))
        sizes = ", ".join(f"{c.table} {c.bytes_before / 1e6:,.0f} -> {c.bytes_after / 1e6:,.0f} MB" for c in compacted)
        rows.insert(1, ("postgres", "compact the expired month (detach, drop, compact copy)", f"{dt_compact:.2f} s",
                        f"{dt_full:.2f} s (VACUUM FULL of the copy)", sizes or "nothing compacted"))
    finally:
        admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.close()
    return rows


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


def bench_archive(data: Path, tmp: Path) -> Row:
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
    return ("sqlite", f"archive run: {n:,} events, {len(done.segments)} segments, {done.bytes / 2**20:.1f} MiB",
            f"{n / dt_arch:,.0f} events/s",
            f"{n / dt_base:,.0f} events/s (JSONL + zstd, no proofs; {n / before:,.0f} before, {n / after:,.0f} after)",
            f"auditkeep / baseline {dt_base / dt_arch:.2f}")


def ingest_rows(tmp: Path, n: int) -> list[Row]:
    """What an index of the entries by subject (which would spare erasure its scans of the
    log) would cost the append: two stores, the index added to one, given the same batches
    in turn (which goes first alternates)."""
    with_ix = Ledger.open(tmp / "ingest-with", LedgerConfig(), background=False)
    without = Ledger.open(tmp / "ingest-without", LedgerConfig(), background=False)
    conn = sqlite3.connect(tmp / "ingest-with" / "log.db")
    conn.execute("CREATE INDEX entries_subject ON entries(tenant_id, subject) WHERE sealed IS NOT NULL")
    conn.commit()
    conn.close()
    spent = {True: 0.0, False: 0.0}
    batch: list[dict[str, Any]] = []
    try:
        for i, e in enumerate(events(n)):
            batch.append(e)
            if len(batch) < 1000 and i < n - 1:
                continue
            order = ((with_ix, True), (without, False)) if (i // 1000) % 2 else ((without, False), (with_ix, True))
            for lg, indexed in order:
                copy = copy_module.deepcopy(batch)
                t = time.perf_counter()
                lg.append(copy)
                spent[indexed] += time.perf_counter() - t
            batch = []
    finally:
        with_ix.close()
        without.close()
    return [("sqlite", f"append {n:,} events (batches of 1,000) with an index by subject",
             f"{n / spent[True]:,.0f} events/s", f"{n / spent[False]:,.0f} events/s (without it)",
             f"ratio {spent[False] / spent[True]:.3f}")]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--subject-events", type=int, default=10_000)
    ap.add_argument("--ingest-events", type=int, default=100_000, help="what an index by subject would cost the append; 0 skips")
    ap.add_argument("--pg", default=None, help="PostgreSQL URL: run there too (in a schema of its own)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--copy-of", type=Path, default=None,
                    help="start from a copy of this SQLite data directory (built as this benchmark builds) instead of building")
    ap.add_argument("--parts", choices=["all", "archive", "retention"], default="all")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="auditkeep-bench-lifecycle-", dir=args.out))
    load = os.getloadavg()
    console.print(
        f"machine: {os.cpu_count()} cpus, {platform.processor() or platform.machine()}, python "
        f"{platform.python_version()}, sqlite {sqlite3.sqlite_version}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    try:
        rows = ingest_rows(tmp, args.ingest_events) if args.ingest_events and args.parts != "archive" else []
        data = tmp / "data"
        t = time.perf_counter()
        if args.copy_of is not None:
            shutil.copytree(args.copy_of, data)  # built by an earlier run with the same options
            console.print(f"sqlite: copied {args.copy_of} in {time.perf_counter() - t:.1f} s")
        else:
            build(data, args.events, args.subject_events)
            console.print(f"sqlite: built {args.events:,} events in {time.perf_counter() - t:.1f} s")
        if args.parts in ("all", "archive"):
            arch_row = bench_archive(data, tmp)  # first: it deletes nothing
        if args.parts != "archive":
            rows += sqlite_rows(data, tmp)
            if args.pg:
                rows += pg_rows(args.pg, tmp, args.events, args.subject_events)
        if args.parts in ("all", "archive"):
            rows.append(arch_row)
        table = Table("store", "operation", "auditkeep", "baseline (bare SQL on a copy; for the archive: no proofs)", "")
        for r in rows:
            table.add_row(*r)
        console.print(table)
        load = os.getloadavg()
        console.print(f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
