"""CPU of projecting N entries into the SQLite search projection (issue 12), against the raw
``sqlite3`` insert of the same rows into the same index set, in the same run.

    python benchmarks/bench_projection.py [--events 100000] [--rounds 3] [--chunk 5000] [--profile]

A log of ``--events`` events of ``bench_headline``'s kind (~540 bytes, personal fields
sealed) is built once with ``Ledger.open(dir, background=False)``. Each round then times,
with ``time.process_time`` (this process only; the projection is single-threaded):

- ``projector``: ``Projector.sync`` from an empty projection to the head, in the projector's
  chunks (read entries, decode, build rows and words, ``Store.project``);
- ``store.project``: the same rows, built beforehand, handed to ``Store.project`` alone;
- ``baseline``: raw ``sqlite3`` into a fresh file with the same index set as main had when
  this benchmark was written (``ev`` with its four indexes, a contentless FTS5 index of the
  public words and sixteen of the personal ones, default options), the rows and their split
  words prepared beforehand, ``executemany`` per table, one transaction per chunk, WAL,
  ``synchronous=OFF`` as index.db has it. It is the floor for the SQL of this index set.

``--chunk`` sets how many entries go in one transaction (the projector's CHUNK by default;
the follower commits what accumulated between two polls, at least ``MIN_BATCH`` when busy).
``--profile`` prints cProfile's top functions of one more ``Projector.sync``.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import shutil
import sqlite3
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_headline import make_batches
from machine import cpu_model

from auditkeep.ledger import Ledger
from auditkeep.ledger import projector as projector_module
from auditkeep.ledger.projector import Projector, project_entry
from auditkeep.store.base import PERSONAL_TEXT, ProjectedRow
from auditkeep.store.sqlite import SQLiteStore

TENANT = "acme"
SHARDS = 16
BASE_SCHEMA = """
CREATE TABLE ev(k INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, time_ns INTEGER NOT NULL,
    received_ns INTEGER NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, rtype TEXT, rid TEXT,
    outcome TEXT NOT NULL, category TEXT);
CREATE INDEX ev_when ON ev(tenant_id, time_ns, k, outcome);
CREATE INDEX ev_who ON ev(tenant_id, actor, time_ns, k, outcome);
CREATE INDEX ev_act ON ev(tenant_id, action, time_ns, k, outcome);
CREATE INDEX ev_resource ON ev(tenant_id, rtype, rid, time_ns);
""" + "".join(
    f"CREATE VIRTUAL TABLE {t} USING fts5(body, content='', tokenize='unicode61 remove_diacritics 2');\n"
    for t in ("ev_fts", *(f"ev_pfts{i}" for i in range(SHARDS)))
)
EV_SQL = "INSERT INTO ev VALUES(?,?,?,?,?,?,?,?,?,?)"
Prepared = tuple[list[tuple[object, ...]], list[tuple[int, str]], dict[str, list[tuple[int, str]]]]


def build(path: Path, n: int) -> None:
    batches, _ = make_batches(n)
    lg = Ledger.open(path, background=False)
    try:
        for b in batches:
            lg.record_many(b, tenant=TENANT)
    finally:
        lg.close()


def projector_cpu(store: SQLiteStore, tid: int, size: int) -> float:
    store.reset_projection()
    p = Projector(store, lambda: [(tid, size)])
    c = time.process_time()
    p.sync(tid, size)
    return time.process_time() - c


def store_cpu(store: SQLiteStore, tid: int, rows: list[ProjectedRow], chunk: int) -> float:
    store.reset_projection()
    c = time.process_time()
    for i in range(0, len(rows), chunk):
        part = rows[i : i + chunk]
        store.project(tid, part, part[-1].position + 1)
    return time.process_time() - c


def prepare(rows: list[ProjectedRow], chunk: int) -> list[Prepared]:
    """Per chunk: the ev rows, the public words, the personal words by shard."""
    out: list[Prepared] = []
    for i in range(0, len(rows), chunk):
        ev, public, personal = [], [], {}  # type: ignore[var-annotated]
        for r in rows[i : i + chunk]:
            ev.append(tuple(r[:10]))
            pub, _, per = r.text.partition(PERSONAL_TEXT)
            public.append((r.key, pub))
            if per:
                t = f"ev_pfts{zlib.crc32(r.actor.encode()) % SHARDS}"
                personal.setdefault(t, []).append((r.key, per))
        out.append((ev, public, personal))
    return out


def baseline_cpu(directory: Path, chunks: list[Prepared]) -> float:
    path = directory / "baseline.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=OFF", "cache_size=-32768", "temp_store=MEMORY"):
        conn.execute(f"PRAGMA {pragma}")
    conn.executescript(BASE_SCHEMA)
    c = time.process_time()
    for ev, public, personal in chunks:
        conn.execute("BEGIN")
        conn.executemany(EV_SQL, ev)
        conn.executemany("INSERT INTO ev_fts(rowid, body) VALUES(?,?)", public)
        for table, part in personal.items():
            conn.executemany(f"INSERT INTO {table}(rowid, body) VALUES(?,?)", part)
        conn.execute("COMMIT")
    cpu = time.process_time() - c
    conn.close()
    return cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=projector_module.CHUNK)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--data", type=Path, default=None, help="reuse (or build) the log here")
    args = ap.parse_args()
    projector_module.CHUNK = args.chunk
    tmp = Path(tempfile.mkdtemp(prefix="bench-projection-"))
    data = args.data or tmp / "data"
    try:
        if not (data / "log.db").exists():
            build(data, args.events)
        load0 = os.getloadavg()
        print(f"nproc {os.cpu_count()}, {cpu_model()}, python {platform.python_version()}, "
              f"sqlite {sqlite3.sqlite_version}, load average {load0[0]:.2f} {load0[1]:.2f} at start")
        store = SQLiteStore(data)
        head = next(h for h in store.heads() if h.tenant == TENANT)
        tid, n = head.tenant_id, head.size
        rows = [project_entry(tid, e) for e in store.entries(tid, 0, n)]
        chunks = prepare(rows, args.chunk)
        print(f"{n:,} entries, chunks of {args.chunk:,}; CPU µs an event (process_time)")
        print(f"{'round':>5} {'projector':>10} {'store.project':>14} {'baseline':>9} {'projector/baseline':>19} {'load':>5}")
        for r in range(args.rounds):
            # alternate the order so a loaded machine's noise falls on all three
            order = ("projector", "store", "baseline") if r % 2 == 0 else ("baseline", "store", "projector")
            cpu: dict[str, float] = {}
            for kind in order:
                if kind == "projector":
                    cpu[kind] = projector_cpu(store, tid, n)
                elif kind == "store":
                    cpu[kind] = store_cpu(store, tid, rows, args.chunk)
                else:
                    cpu[kind] = baseline_cpu(tmp, chunks)
            us = {k: v / n * 1e6 for k, v in cpu.items()}
            print(f"{r + 1:>5} {us['projector']:>10.2f} {us['store']:>14.2f} {us['baseline']:>9.2f} "
                  f"{us['projector'] / us['baseline']:>19.2f} {os.getloadavg()[0]:>5.1f}", flush=True)
        if args.profile:
            store.reset_projection()
            p = Projector(store, lambda: [(tid, n)])
            prof = cProfile.Profile()
            prof.runcall(p.sync, tid, n)
            pstats.Stats(prof).sort_stats("tottime").print_stats(20)
        store.close()
        load = os.getloadavg()
        print(f"load average {load[0]:.2f} {load[1]:.2f} at end")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
