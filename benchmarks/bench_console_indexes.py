"""The console histogram's aggregate on the projection's covering indexes against the indexes
they replaced, on the same data in the same run (issue 15).

Takes a data directory kept by ``bench_console.py --keep DIR`` (1M events), copies its
``index.db`` and gives the copy the old indexes (``ev_time``, ``ev_actor``, ``ev_action``:
tenant, column, time), then runs each search's ``count_by_time`` SQL (as ``histogram_of``
builds it) and its page of 50 on both files alternately, read-only.

    python benchmarks/bench_console_indexes.py /tmp/bench/data --runs 15
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from auditkeep.console.histogram import layout
from auditkeep.store.base import Query
from auditkeep.store.sqlite_search import build_count_by_time, build_search

OLD = """
DROP INDEX IF EXISTS ev_when; DROP INDEX IF EXISTS ev_who; DROP INDEX IF EXISTS ev_act;
CREATE INDEX IF NOT EXISTS ev_time ON ev(tenant_id, time_ns);
CREATE INDEX IF NOT EXISTS ev_actor ON ev(tenant_id, actor, time_ns);
CREATE INDEX IF NOT EXISTS ev_action ON ev(tenant_id, action, time_ns);
"""
DAY = 86400 * 10**9
CASES = [("last 24 h, no filter", {}, DAY), ("last 7 days, action db.*", {"action": "db.*"}, 7 * DAY),
         ("last 30 days, one actor", {"actor": "user-42"}, 30 * DAY)]  # fmt: skip


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path)
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-console-idx-"))
    try:
        old_path = tmp / "index-old.db"
        src = sqlite3.connect(f"file:{args.data / 'index.db'}?mode=ro", uri=True)
        dst = sqlite3.connect(old_path)
        src.backup(dst)
        src.close()
        dst.executescript(OLD)
        dst.close()
        dbs = {"old indexes": sqlite3.connect(f"file:{old_path}?mode=ro", uri=True),
               "covering indexes": sqlite3.connect(f"file:{args.data / 'index.db'}?mode=ro", uri=True)}  # fmt: skip
        for name, db in dbs.items():
            names = sorted(r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='ev'"))
            print(name, names)
        tid = dbs["old indexes"].execute("SELECT tenant_id FROM ev GROUP BY tenant_id ORDER BY count(*) DESC LIMIT 1").fetchone()[0]
        now = dbs["old indexes"].execute("SELECT max(time_ns) FROM ev").fetchone()[0] + 60 * 10**9
        load0 = os.getloadavg()
        res: dict[tuple[str, str, str], list[float]] = {}
        for label, f, span in CASES:
            first, step, _ = layout(now - span, now)
            sql, params = build_count_by_time(Query(tenant_id=tid, since_ns=now - span, until_ns=now, **f), first, step)
            psql, pparams = build_search(Query(tenant_id=tid, since_ns=now - span, until_ns=now, limit=50, **f))
            sql, psql = sql.replace("ix.ev", "main.ev"), psql.replace("ix.ev", "main.ev")
            for db in dbs.values():
                db.execute(sql, params).fetchall()  # warm up
            for _ in range(args.runs):
                for name, db in dbs.items():  # alternately, so load hits both alike
                    t = time.perf_counter()
                    rows = db.execute(sql, params).fetchall()
                    res.setdefault((label, name, "hist"), []).append((time.perf_counter() - t) * 1000)
                    t = time.perf_counter()
                    db.execute(psql, pparams).fetchall()
                    res.setdefault((label, name, "page"), []).append((time.perf_counter() - t) * 1000)
                    res[(label, name, "count")] = [float(sum(c for _, _, c in rows))]
        print("| search | indexes | histogram p50 ms | histogram p95 ms | page of 50 p50 ms | events counted |")
        print("|---|---|---:|---:|---:|---:|")
        for label, _, _ in CASES:
            for name in dbs:
                h, pg = res[(label, name, "hist")], res[(label, name, "page")]
                print(f"| {label} | {name} | {pct(h, 50):.1f} | {pct(h, 95):.1f} | {pct(pg, 50):.2f} | {int(res[(label, name, 'count')][0]):,} |")
        print(f"runs {args.runs}; nproc {os.cpu_count()}; load {load0[0]:.2f} at start, {os.getloadavg()[0]:.2f} at end; "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
