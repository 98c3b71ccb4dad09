"""What reading a statement costs: pglast (PostgreSQL's own parser, libpg_query) against
sqlglot, and the gateway's analyzer on top of pglast (uncached and cached).

    python benchmarks/bench_sql_parsers.py        # sqlglot is measured when installed
"""

from __future__ import annotations

import time

from pglast import parser as pg

from auditkeep.gateway.postgres.sql import Analyzer

QUERIES = [
    "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
    "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2",
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP)",
    "SELECT u.name, o.total FROM users u JOIN orders o ON o.user_id = u.id WHERE o.total > 10 ORDER BY 2 DESC LIMIT 5",
]


def per_call(fn: object, arg: str, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        fn(arg)  # type: ignore[operator]
    return (time.perf_counter() - t) / n * 1e6


def main() -> None:
    try:
        import sqlglot
    except ImportError:
        sqlglot = None
    print("| statement | pglast parse µs | analyzer, uncached µs | analyzer, cached µs | sqlglot parse µs |")
    print("|---|---:|---:|---:|---:|")
    for q in QUERIES:
        raw = per_call(pg.parse_sql_json, q, 5000)
        uncached = per_call(lambda s: Analyzer().analyze(s), q, 2000)
        cached_analyzer = Analyzer()
        cached = per_call(cached_analyzer.analyze, q, 20000)
        glot = per_call(lambda s: sqlglot.parse(s, read="postgres"), q, 300) if sqlglot is not None else float("nan")
        print(f"| `{q[:60]}{'…' if len(q) > 60 else ''}` | {raw:.1f} | {uncached:.1f} | {cached:.2f} | {glot:.0f} |")


if __name__ == "__main__":
    main()
