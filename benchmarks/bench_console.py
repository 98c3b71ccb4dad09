"""The review console's search page on a large tenant (issue 15).

1. Ingest synthetic events (benchmarks/events.py) into tenant ``bench`` for ``--seconds``
   (or up to ``--events``), spread over the last 30 days ending now, through ``Ledger.append``
   with the projection followed by a child process (as ``auditkeep serve`` does).
2. Start ``auditkeep serve`` on that data directory, sign a console viewer in over HTTP and
   time the first search page rendered server-side (``GET /ui/search``: page of 50, histogram,
   the audit event of the search) against a same-run baseline, the JSON API
   ``GET /v1/events?limit=50`` of the same tenant.
3. Time the histogram's query alone (``histogram_of``: one aggregate count per bucket and
   outcome in the store), in process on the same data, beside the scan it replaced (pages of
   5,000 matches decoded one by one, stopping at 20,000) in the same run.

Targets (issue 15, at 1M events): first page < 300 ms p95, histogram < 200 ms p95.

    python benchmarks/bench_console.py --seconds 300 --runs 40
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from bench_http import start_server
from events import make_event
from machine import cpu_model
from starlette.datastructures import QueryParams

from auditkeep.config import Settings, open_ledger
from auditkeep.console import histogram
from auditkeep.console.search import SearchForm, histogram_of
from auditkeep.console.users import UserStore
from auditkeep.ledger import Ledger
from auditkeep.model.timefmt import format_rfc3339, now_ns, parse_rfc3339
from auditkeep.query.filters import Filters
from auditkeep.server.projection import ProjectionProcess

TENANT = "bench"
BATCH = 1000
SPAN_NS = 30 * 86400 * 1_000_000_000
PASSWORD = "bench console password"
# (label, query string of /ui/search)
SEARCHES = [
    ("default: last 24 h, no filter", ""),
    ("last 7 days, action db.*", "range=7d&action=db.*"),
    ("last 30 days, one actor", "range=30d&actor=user-42"),
]


def ingest(data: Path, seconds: float, limit: int) -> tuple[int, float]:
    """Append events until ``seconds`` have passed or ``limit`` were appended; (count, rate)."""
    settings = Settings(data=str(data))
    lg = open_ledger(settings, create=True, background=False)
    projection = ProjectionProcess(settings)
    rng = random.Random(7)
    end = now_ns() - 60 * 1_000_000_000
    start = end - SPAN_NS
    # times are spread evenly over the span for the planned count, so the tail of an ingest
    # cut short by time is older: the newest events are written first, going back in time
    planned = limit
    step = SPAN_NS // planned
    n = 0
    gc.collect()
    gc.freeze()
    t = time.perf_counter()
    while n < limit and time.perf_counter() - t < seconds:
        evs = []
        for i in range(n, min(limit, n + BATCH)):
            e = make_event(rng, i)
            e["time"] = format_rfc3339(end - i * step - rng.randrange(step))
            evs.append(e)
        n += len(lg.append(evs, TENANT))
        if n % 50_000 < BATCH:
            print(f"  {n:,} events, {n / (time.perf_counter() - t):,.0f}/s", file=sys.stderr)
    rate = n / (time.perf_counter() - t)
    while lg.projection_lag(TENANT) > 0:
        time.sleep(0.1)
    projection.stop()
    UserStore(lg.store).add(TENANT, "viewer1", "viewer", PASSWORD)
    lg.close()
    gc.unfreeze()
    assert start < end
    return n, rate


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


PHASES: dict[str, dict[str, list[float]]] = {}  # url -> Server-Timing phase -> ms per run


def timed(c: httpx.Client, url: str, runs: int, check: str) -> tuple[list[float], int]:
    c.get(url)  # warm up
    out = []
    size = 0
    phases = PHASES.setdefault(url, {})
    for _ in range(runs):
        t = time.perf_counter()
        r = c.get(url)
        out.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200, r.text[:300]
        assert check in r.text
        size = len(r.content)
        for part in filter(None, r.headers.get("server-timing", "").split(",")):
            name, _, dur = part.strip().partition(";dur=")
            phases.setdefault(name, []).append(float(dur))
    return out, size


def sign_in(url: str) -> httpx.Client:
    c = httpx.Client(base_url=url, follow_redirects=False, timeout=120)
    r = c.get("/ui/login")
    r = c.post("/ui/login", data={"csrf": r.cookies["ak_login"], "tenant": TENANT, "username": "viewer1", "password": PASSWORD})
    assert r.status_code == 303, r.text
    return c


def scan_histogram(lg: Ledger, tenant: str, filters: Filters, since: int | None, until: int | None) -> histogram.Histogram | None:
    """The histogram as the console drew it before the aggregate (the same-run baseline):
    the newest matches, 5,000 a page, decoded one by one, at most 20,000."""
    points: list[tuple[int, str]] = []
    cursor: str | None = None
    complete = True
    while True:
        page = lg.search(tenant, order="newest", cursor=cursor, limit=5000, filters=filters)
        points += [(parse_rfc3339(r.event.time), r.event.outcome or "unknown") for r in page.items if r.event.time]
        cursor = page.next_cursor
        if cursor is None:
            break
        if len(points) >= 20_000:
            complete = False
            break
    if not points:
        return None
    lo = since if since is not None else min(t for t, _ in points)
    hi = until if until is not None else max(t for t, _ in points) + 1
    if not complete:
        lo = max(lo, min(t for t, _ in points))
    return histogram.build(points, lo, hi, complete)


def histogram_times(data: Path, runs: int) -> list[tuple[str, list[float], int]]:
    lg = open_ledger(Settings(data=str(data)), background=False)
    out = []
    try:
        for how, fn in (("aggregate", histogram_of), ("old scan", scan_histogram)):
            for label, qs in SEARCHES:
                form = SearchForm.from_query(QueryParams(qs))
                times = []
                total = 0
                for i in range(runs + 1):
                    now = now_ns()
                    t = time.perf_counter()
                    h = fn(lg, TENANT, form.filters(now), *form.bounds(now))
                    if i:  # the first is a warm-up
                        times.append((time.perf_counter() - t) * 1000)
                    total = h.counted if h else 0
                out.append((f"{how}: {label}", times, total))
    finally:
        lg.close()
    return out




def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=300, help="ingest for at most this long")
    ap.add_argument("--events", type=int, default=1_000_000, help="ingest at most this many")
    ap.add_argument("--runs", type=int, default=40, help="timed requests per row")
    ap.add_argument("--keep", help="keep the data directory here (default: a temporary one)")
    ap.add_argument("--reuse", action="store_true",
                    help="with --keep: time the data directory kept by an earlier run instead of ingesting again")
    args = ap.parse_args()
    con = Console(width=150)
    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-console-"))
    load_start = os.getloadavg()
    try:
        if args.reuse and (tmp / "data").exists():
            lg = open_ledger(Settings(data=str(tmp / "data")), background=False)  # also migrates its indexes
            n, rate = lg.head(TENANT).size, 0.0
            # the server prints an admin key only when the store has none: forget the earlier run's
            keys = [d.id for d in lg.store.doc_list("apikeys", limit=10_000)]
            lg.store.doc_delete_many("apikeys", keys)
            lg.close()
        else:
            print(f"ingesting for up to {args.seconds:.0f} s or {args.events:,} events...", file=sys.stderr)
            n, rate = ingest(tmp / "data", args.seconds, args.events)
        hist = histogram_times(tmp / "data", args.runs)
        proc, url, key, _ = start_server(tmp / "data")
        try:
            rows: list[tuple[str, list[float], int]] = []
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as api:
                t, size = timed(api, f"/v1/events?tenant={TENANT}&limit=50", args.runs, '"events"')
                rows.append(("baseline: GET /v1/events?limit=50 (JSON API)", t, size))
                ui = sign_in(url)
                try:
                    for label, qs in SEARCHES:
                        t, size = timed(ui, "/ui/search" + ("?" + qs if qs else ""), args.runs, "<svg")
                        rows.append((f"console GET /ui/search, {label}", t, size))
                finally:
                    ui.close()
                t, size = timed(api, f"/v1/events?tenant={TENANT}&limit=50", args.runs, '"events"')
                rows.append(("baseline again, after the console rows", t, size))
        finally:
            proc.terminate()
            proc.wait(30)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    base = statistics.median(rows[0][1])
    table = Table(title=f"console search page, tenant of {n:,} events (ingested at {rate:,.0f}/s)")
    for col in ("request", "p50 ms", "p95 ms", "x baseline median", "bytes"):
        table.add_column(col, justify="left" if col == "request" else "right")
    for label, t, size in rows:
        table.add_row(label, f"{pct(t, 50):.1f}", f"{pct(t, 95):.1f}", f"{pct(t, 50) / base:.2f}", f"{size:,}")
    con.print(table)
    st = Table(title="where the console's time went, from its Server-Timing header: p50 / p95 ms per phase")
    st.add_column("request")
    names = sorted({n for ph in PHASES.values() for n in ph})
    for n in names:
        st.add_column(n, justify="right")
    for url, ph in PHASES.items():
        if ph:
            st.add_row(url, *(f"{pct(ph[n], 50):.1f} / {pct(ph[n], 95):.1f}" if n in ph else "-" for n in names))
    con.print(st)
    ht = Table(title="histogram query alone, in process: histogram_of (aggregate) and the old scan (at most 20,000)")
    for col in ("search", "p50 ms", "p95 ms", "events counted"):
        ht.add_column(col, justify="left" if col == "search" else "right")
    for label, t, total in hist:
        ht.add_row(label, f"{pct(t, 50):.1f}", f"{pct(t, 95):.1f}", f"{total:,}")
    con.print(ht)
    print(f"runs per row: {args.runs}; nproc {os.cpu_count()}; CPU {cpu_model()}; "
          f"load average at start {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}, "
          f"at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


if __name__ == "__main__":
    main()
