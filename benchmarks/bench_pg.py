"""PostgreSQL store benchmark, baselines measured in the same run.

    python benchmarks/bench_pg.py [--url postgresql://postgres@127.0.0.1/test]
        [--only ingest,nodes,search] [--ingest 200000] [--seconds 15]
        [--search-events 5000000] [--reuse]

1. ingest: ``Ledger.append`` of realistic events (benchmarks/events.py, personal fields
   sealed) in batches of 1,000 on PostgreSQL, durable (synchronous_commit=on): one caller,
   and two batches in flight (how the server's concurrent requests arrive). Beside it, in
   the same run: the same ledger on SQLite; the store's own part (the same entries and tiles
   written again through ``append_txn``, with the hashing done beforehand); and the
   baseline, a plain binary ``COPY`` of the same rows into a table with the same indexes,
   one commit per 1,000 rows.
2. nodes: one ``auditkeep serve --db`` node, then two on the same database and key, two
   tenants, four client processes posting pre-encoded 1,000-event batches for ``--seconds``.
3. search: a store of ``--search-events`` events (entries and projection generated and
   loaded with COPY, not through the ledger, so that it takes minutes; the projection rows
   come from the real projector) and the core query set, first page of 100: p50/p95 of the
   SQL alone and of the whole ``Ledger.search`` page. Then each query 30 times in a row on
   one connection (a generic plan would show as later runs slower than the first ones), and
   one query under a forced generic plan to show what that check catches.
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing
import os
import platform
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import psycopg

sys.path.insert(0, str(Path(__file__).parent))
from events import events, make_event

from auditkeep.ledger import Ledger, LedgerConfig
from auditkeep.ledger.datadir import establish
from auditkeep.ledger.projector import project_entry
from auditkeep.log.hashing import leaf_hash
from auditkeep.log.tiles import Frontier
from auditkeep.store.base import Entry, Head, Query
from auditkeep.store.postgres import PostgresStore
from auditkeep.store.postgres_search import build_search

KEY_RE = re.compile(r"ak_[a-z2-7]{12}_[A-Za-z0-9_-]{43}")
ROWS: list[tuple[str, str]] = []


def row(name: str, value: str) -> None:
    ROWS.append((name, value))
    print(f"  {name:<58} {value}", flush=True)


def schema_url(url: str, schema: str) -> str:
    return url + ("&" if "?" in url else "?") + "schema=" + schema


def drop(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# This benchmark's own PostgreSQL sessions, to read their server processes' CPU time.
APP = f"bench-pg-{os.getpid()}"


def _backend_cpu(url: str) -> dict[int, float]:
    """CPU seconds (user + system) of each server process serving a session named APP."""
    with psycopg.connect(url, autocommit=True) as conn:
        pids = [r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", (APP,))]
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / tick
    return out


class Meter:
    """Wall time, this process's CPU time and its PostgreSQL sessions' CPU time of a phase
    (on a loaded machine the CPU times are the figures to compare, the rates are not)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.wall = self.py = self.pg = 0.0

    def __enter__(self) -> Meter:
        self._pg0 = _backend_cpu(self.url)
        self._c0, self._w0 = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._w0
        self.py = time.process_time() - self._c0
        self.pg = sum(c - self._pg0.get(pid, 0.0) for pid, c in _backend_cpu(self.url).items())

    def per_event(self, n: int) -> str:
        return f"{n / self.wall:,.0f}/s  (CPU per event: Python {self.py / n * 1e6:.1f} us, PostgreSQL {self.pg / n * 1e6:.1f} us)"


def pg_ledger(url: str, schema: str, cfg: LedgerConfig) -> Ledger:
    drop(url, schema)
    store = PostgresStore(schema_url(url, schema), durability=cfg.durability, application_name=APP)
    identity, _ = establish(store, Path(tempfile.mkdtemp(prefix="bench-pg-key-")))
    return Ledger(store, identity, cfg, background=False)


def timed_append(lg: Ledger, evs: list[dict[str, Any]], in_flight: int) -> float:
    t0 = time.perf_counter()
    if in_flight == 1:  # what Ledger.append does: the caller commits when the writer is idle
        for i in range(0, len(evs), 1000):
            lg.append(evs[i : i + 1000], "bench")
        return len(evs) / (time.perf_counter() - t0)
    pending = []
    for i in range(0, len(evs), 1000):
        pending.append(lg.submit(evs[i : i + 1000], "bench"))
        if len(pending) >= in_flight:
            pending.pop(0).result()
    for p in pending:
        p.result()
    return len(evs) / (time.perf_counter() - t0)


# 1. ingest -------------------------------------------------------------------------------------


def bench_ingest(url: str, n: int) -> None:
    print(f"\ningest: {n:,} realistic events, batches of 1,000, durable")
    evs = list(events(n + 2000, seed=11))
    warm, evs = evs[:2000], evs[2000:]
    cfg = LedgerConfig()
    lg = pg_ledger(url, "bench_ingest", cfg)
    lg.append(warm[:1000], "bench")
    with Meter(url) as m1:
        one = timed_append(lg, evs[: n // 2], 1)
    with Meter(url) as m2:
        two = timed_append(lg, evs[n // 2 :], 2)
    row("PostgreSQL Ledger.append, one caller", m1.per_event(n // 2))
    row("PostgreSQL Ledger.submit, two batches in flight", m2.per_event(n - n // 2))
    store = lg.store
    head = store.tenant("bench")
    assert head is not None
    entries = list(store.entries(head.tenant_id, 0, head.size))
    lg.close()

    with (
        tempfile.TemporaryDirectory(prefix="bench-pg-sqlite-") as d,
        Ledger.open(Path(d), cfg, background=False) as sl,
    ):
        sl.append(warm[:1000], "bench")
        lite = timed_append(sl, evs[: n // 2], 1)
    row("SQLite Ledger.append, one caller (reference)", f"{lite:,.0f} events/s")

    # The store's share: the same entries and tiles written again, hashing done beforehand.
    batches: list[tuple[list[Entry], dict[tuple[int, int], bytes], bytes, int]] = []
    f = Frontier()
    for i in range(0, len(entries), 1000):
        part = entries[i : i + 1000]
        tiles = f.append([leaf_hash(e.leaf) for e in part])
        batches.append((part, tiles, f.root(), f.size))
    drop(url, "bench_store")
    st = PostgresStore(schema_url(url, "bench_store"), application_name=APP)
    h = st.tenant("bench", create=True)
    assert h is not None
    ms = Meter(url).__enter__()
    for part, tiles, root, size in batches:
        with st.append_txn([h.tenant_id]) as txn:
            cur = txn.head(h.tenant_id)
            txn.write(
                h.tenant_id,
                part,
                tiles,
                Head(
                    h.tenant_id,
                    "bench",
                    size,
                    root,
                    part[-1].received_ns,
                    cur.checkpoint_size,
                    cur.checkpoint_ns,
                ),
            )
    ms.__exit__()
    store_rate = len(entries) / ms.wall
    st.close()
    drop(url, "bench_store")
    row("PostgreSQL store write path alone (append_txn + write)", ms.per_event(len(entries)))

    # Baseline: plain binary COPY of the same rows, same indexes, a commit per 1,000.
    with psycopg.connect(url, autocommit=True, application_name=APP) as conn:
        conn.execute("DROP SCHEMA IF EXISTS bench_copy CASCADE")
        conn.execute("CREATE SCHEMA bench_copy")
        conn.execute(
            "CREATE TABLE bench_copy.entries(k bigint NOT NULL, tenant_id integer NOT NULL, id bytea NOT NULL, "
            "received_ns bigint NOT NULL, leaf bytea NOT NULL, subject bytea, sealed bytea, PRIMARY KEY (k, received_ns))"
        )
        conn.execute("CREATE INDEX ON bench_copy.entries(tenant_id, id)")
        rows = [
            (
                (1 << 40) | e.index,
                1,
                e.id,
                e.received_ns,
                e.leaf,
                e.subject.encode() if e.subject else None,
                e.sealed,
            )
            for e in entries
        ]
        with Meter(url) as mc:
            for i in range(0, len(rows), 1000):
                with (
                    conn.transaction(),
                    conn.cursor().copy("COPY bench_copy.entries FROM STDIN (FORMAT BINARY)") as cp,
                ):
                    cp.set_types(["int8", "int4", "bytea", "int8", "bytea", "bytea", "bytea"])
                    for r in rows[i : i + 1000]:
                        cp.write_row(r)
        copy_rate = len(rows) / mc.wall
        conn.execute("DROP SCHEMA bench_copy CASCADE")
    row("baseline: binary COPY of the same rows, same indexes", mc.per_event(len(rows)).replace("/s", " rows/s", 1))
    row("ledger (two in flight) / COPY baseline", f"{two / copy_rate:.2f}")
    row("ledger (one caller) / COPY baseline", f"{one / copy_rate:.2f}")
    row("store write path / COPY baseline", f"{store_rate / copy_rate:.2f}")
    row("load average at the end (1, 5, 15 min)", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    drop(url, "bench_ingest")


# 2. nodes --------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _client(
    nodes: list[str],
    token: str,
    tenants: list[str],
    seconds: float,
    seed: int,
    out: Any,
    mixed: bool,
) -> None:
    """Posts 1,000-event batches for ``seconds``. ``mixed``: every node gets every tenant (a
    load balancer that knows nothing); otherwise each tenant goes to one node."""
    import httpx

    rng = random.Random(seed)
    bodies = [
        msgspec.json.encode([make_event(rng, i) for i in range(k * 1000, (k + 1) * 1000)])
        for k in range(4)
    ]
    done = 0
    k = seed
    with httpx.Client(
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=120,
    ) as c:
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            tenant = (
                tenants[(k // len(nodes)) % len(tenants)] if mixed else tenants[k % len(tenants)]
            )
            node = nodes[k % len(nodes)] if mixed else nodes[tenants.index(tenant) % len(nodes)]
            r = c.post(f"{node}/v1/events", params={"tenant": tenant}, content=bodies[k % 4])
            if r.status_code == 200:
                done += 1000
            k += 1
        out.put((done, time.perf_counter() - start))


def _cluster_rate(url: str, nodes: int, seconds: float, mixed: bool, clients: int = 4) -> float:
    schema = f"bench_nodes_{nodes}"
    drop(url, schema)
    db = schema_url(url, schema)
    root = Path(tempfile.mkdtemp(prefix="bench-pg-nodes-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITKEEP_")}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "auditkeep.cli.main",
            "--db",
            db,
            "--data",
            str(root / "init"),
            "init",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    env.update(
        AUDITKEEP_SIGNING_KEY=(root / "init" / "signing.key").read_text(), AUDITKEEP_RATE_LIMIT="0"
    )
    procs: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    token = ""
    try:
        for i in range(nodes):
            port = _free_port()
            log = (root / f"node{i}.log").open("wb")
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "auditkeep.cli.main",
                        "serve",
                        "--db",
                        db,
                        "--data",
                        str(root / f"n{i}"),
                        "--port",
                        str(port),
                        "--log-level",
                        "warning",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
            _wait_ready(urls[-1])
            if not token:
                token = KEY_RE.findall((root / "node0.log").read_text())[0]
        ctx = multiprocessing.get_context("spawn")
        q = ctx.Queue()
        cps = [
            ctx.Process(target=_client, args=(urls, token, ["alpha", "beta"], seconds, i, q, mixed))
            for i in range(clients)
        ]
        for p in cps:
            p.start()
        results = [q.get() for _ in cps]
        for p in cps:
            p.join()
        return sum(n for n, _ in results) / max(t for _, t in results)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(60)
        drop(url, schema)


def _wait_ready(url: str) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


def bench_nodes(url: str, seconds: float) -> None:
    print(f"\nnodes: auditkeep serve --db, 2 tenants, 4 client processes, {seconds:g} s each")
    one = _cluster_rate(url, 1, seconds, mixed=True)
    row("one node", f"{one:,.0f} events/s")
    two = _cluster_rate(url, 2, seconds, mixed=True)
    row("two nodes, every node gets both tenants", f"{two:,.0f} events/s  ({two / one:.2f}x)")
    aff = _cluster_rate(url, 2, seconds, mixed=False)
    row("two nodes, each tenant sent to one node", f"{aff:,.0f} events/s  ({aff / one:.2f}x)")


# 3. search -------------------------------------------------------------------------------------


SEARCH_SCHEMA = "bench_search"
BASE_NS = 1_767_225_600_000_000_000  # events.py's first event time


def build_search_store(url: str, n: int, reuse: bool) -> PostgresStore:
    db = schema_url(url, SEARCH_SCHEMA)
    if reuse:
        try:
            store = PostgresStore(db)
            head = store.tenant("bench")
            if (
                head is not None
                and head.size == n
                and store.projection_position(head.tenant_id) == n
            ):
                print(f"  (reusing the {n:,}-event store in schema {SEARCH_SCHEMA})")
                return store
            store.close()
        except Exception:
            pass
    drop(url, SEARCH_SCHEMA)
    store = PostgresStore(db)
    head = store.tenant("bench", create=True)
    assert head is not None
    tid = head.tenant_id
    t0 = time.perf_counter()
    with store._conn() as conn:
        # Bulk load: indexes dropped and rebuilt afterwards (same definitions), as a restore would.
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = 'ev' "
            "AND indexname <> 'ev_pkey'",
            (SEARCH_SCHEMA,),
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{SEARCH_SCHEMA}"."{name}"')
    rng = random.Random(5)
    chunk = 50_000
    received0 = time.time_ns() - n * 1000
    for start in range(0, n, chunk):
        entries = []
        for i in range(start, min(n, start + chunk)):
            ev = make_event(rng, i)
            received = received0 + i * 1000
            ev["id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            ev["tenant"] = "bench"
            secs, ns = divmod(received, 1_000_000_000)
            ev["received_at"] = (
                time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{ns:09d}Z"
            )
            entries.append(Entry(i, uuid.UUID(ev["id"]).bytes, received, msgspec.json.encode(ev)))
        with store._conn() as conn, conn.transaction():
            store._ensure_months(conn, entries[0].received_ns, entries[-1].received_ns)
            with conn.cursor().copy(
                "COPY entries (k, tenant_id, id, received_ns, leaf) FROM STDIN (FORMAT BINARY)"
            ) as cp:
                cp.set_types(["int8", "int4", "bytea", "int8", "bytea"])
                for e in entries:
                    cp.write_row(((tid << 40) | e.index, tid, e.id, e.received_ns, e.leaf))
        store.project(tid, [project_entry(tid, e) for e in entries], entries[-1].index + 1)
        done = min(n, start + chunk)
        if done % 500_000 == 0 or done == n:
            rate = done / (time.perf_counter() - t0)
            print(f"  loaded {done:,} ({rate:,.0f}/s)", flush=True)
    with store._conn() as conn:
        conn.execute("SET maintenance_work_mem = '256MB'")
        for _, definition in indexes:
            conn.execute(definition)
        conn.execute("UPDATE logs SET size = %s WHERE tenant_id = %s", (n, tid))
        conn.execute("VACUUM ANALYZE ev")
        conn.execute("ANALYZE entries")
    print(f"  built in {time.perf_counter() - t0:,.0f} s", flush=True)
    return store


def _pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, round(p * (len(s) - 1)))]


def bench_search(url: str, n: int, reuse: bool) -> None:
    print(f"\nsearch: {n:,} events, first page of 100, newest first")
    store = build_search_store(url, n, reuse)
    head = store.tenant("bench")
    assert head is not None
    tid = head.tenant_id
    span = n * 1_000_000  # events.py: one event per millisecond of event time
    words = [
        "alpha",
        "bravo",
        "charlie",
        "delta",
        "echo",
        "foxtrot",
        "golf",
        "hotel",
        "india",
        "juliet",
        "kilo",
        "lima",
        "mike",
    ]
    rng = random.Random(9)

    def window() -> tuple[int, int]:
        start = BASE_NS + rng.randrange(span)
        return start, start + 600 * 1_000_000_000

    queries: dict[str, Callable[[], Query]] = {
        "actor + time range (10 min)": lambda: Query(
            tid, *window(), actor=f"user-{rng.randrange(2000)}"
        ),
        "actor, no time range": lambda: Query(tid, actor=f"user-{rng.randrange(2000)}"),
        "action prefix (k8s.*)": lambda: Query(tid, action=rng.choice(["k8s.*", "user.*", "db.*"])),
        "rare action prefix + time range": lambda: Query(tid, *window(), action="role.*"),
        "full text, one common word": lambda: Query(tid, text=rng.choice(words)),
        "full text, two words": lambda: Query(tid, text=" ".join(rng.sample(words, 2))),
        "full text, rare (actor name)": lambda: Query(tid, text=f"number {rng.randrange(2000)}"),
        "full text prefix": lambda: Query(tid, text=rng.choice(words)[:3] + "*"),
        "metadata equality, common (http.status)": lambda: Query(
            tid, metadata=[("http.status", rng.choice(["500", "403"]))]
        ),
        "metadata equality, rare (http.path)": lambda: Query(
            tid, metadata=[("http.path", f"/api/v1/{rng.choice(words)}/{rng.randrange(1000)}")]
        ),
        "actor + action prefix + outcome": lambda: Query(
            tid, actor=f"user-{rng.randrange(2000)}", action="db.*", outcome="success"
        ),
    }
    identity, _ = establish(store, Path(tempfile.mkdtemp(prefix="bench-pg-key-")))
    lg = Ledger(store, identity, LedgerConfig(), background=False)
    reps = 40
    worst = 0.0
    for name, make in queries.items():
        sql_t: list[float] = []
        page_t: list[float] = []
        hits = 0
        for _ in range(reps):
            q = make()
            t0 = time.perf_counter()
            found = store.search(q)
            sql_t.append(time.perf_counter() - t0)
            hits += len(found)
            kw: dict[str, Any] = {
                "actor": q.actor,
                "action": q.action,
                "text": q.text,
                "outcome": q.outcome,
                "since": q.since_ns,
                "until": q.until_ns,
                "metadata": list(q.metadata),
            }
            t0 = time.perf_counter()
            lg.search("bench", **{k: v for k, v in kw.items() if v}, limit=100)
            page_t.append(time.perf_counter() - t0)
        worst = max(worst, _pct(page_t, 0.95))
        row(
            f"{name}",
            f"sql p50 {statistics.median(sql_t) * 1e3:6.1f} ms  p95 {_pct(sql_t, 0.95) * 1e3:6.1f} ms  "
            f"page p95 {_pct(page_t, 0.95) * 1e3:6.1f} ms  ({hits / reps:.0f} hits)",
        )
    row("worst page p95 over the query set", f"{worst * 1e3:.1f} ms")

    print("\nrepeated execution on one connection (a generic plan would make later runs slower)")
    fixed = {
        "actor + time range": Query(
            tid, BASE_NS + span // 2, BASE_NS + span // 2 + 600 * 10**9, actor="user-7"
        ),
        "rare action prefix": Query(tid, action="role.*"),
        "metadata, rare": Query(tid, metadata=[("http.path", "/api/v1/alpha/7")]),
    }
    for name, q in fixed.items():
        ts = []
        for _ in range(30):
            t0 = time.perf_counter()
            store.search(q)
            ts.append(time.perf_counter() - t0)
        first, last = statistics.median(ts[:5]), statistics.median(ts[-10:])
        flag = "  REGRESSION" if last > 3 * first + 0.002 else ""
        row(
            f"{name}: runs 1-5 vs 21-30 (median)",
            f"{first * 1e3:.2f} ms -> {last * 1e3:.2f} ms{flag}",
        )
    # What the check guards against: the same statement prepared and run with a generic plan.
    q = Query(tid, action="role.*", newest_first=True)
    built = build_search(q)
    assert built is not None
    sql, params = built
    with psycopg.connect(url, autocommit=True, prepare_threshold=0) as conn:
        conn.execute(f'SET search_path TO "{SEARCH_SCHEMA}"')
        for mode in ("force_custom_plan", "force_generic_plan"):
            conn.execute(f"SET plan_cache_mode TO {mode}")
            ts = []
            for _ in range(10):
                t0 = time.perf_counter()
                conn.execute(sql, params, prepare=True).fetchall()
                ts.append(time.perf_counter() - t0)
            row(
                f"prepared 'rare action prefix', {mode}",
                f"median {statistics.median(ts) * 1e3:.2f} ms",
            )
    lg.close()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--url",
        default=os.environ.get(
            "AUDITKEEP_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    ap.add_argument("--only", default="ingest,nodes,search")
    ap.add_argument("--ingest", type=int, default=200_000)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--search-events", type=int, default=5_000_000)
    ap.add_argument(
        "--reuse", action="store_true", help="reuse a search store of the same size left by --keep"
    )
    ap.add_argument("--keep", action="store_true", help="keep the search store for --reuse")
    a = ap.parse_args()
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    with psycopg.connect(a.url) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
    print(
        f"bench_pg  {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC  nproc={os.cpu_count()}  {cpu}  "
        f"PostgreSQL {version}  Python {platform.python_version()}  load {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print("command: python benchmarks/bench_pg.py " + " ".join(sys.argv[1:]))
    only = set(a.only.split(","))
    if "ingest" in only:
        bench_ingest(a.url, a.ingest)
    if "nodes" in only:
        bench_nodes(a.url, a.seconds)
    if "search" in only:
        bench_search(a.url, a.search_events, a.reuse)
        if not a.keep:
            drop(a.url, SEARCH_SCHEMA)


if __name__ == "__main__":
    main()
