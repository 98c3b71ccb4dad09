"""What only the PostgreSQL store has: migrations, partitions, sessions, failures, NUL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from auditkeep.ledger import LedgerConfig
from auditkeep.store.base import (
    Entry,
    Head,
    ProjectedRow,
    Query,
    StoreError,
    StoreUnavailable,
    entry_key,
)

pg_support = pytest.importorskip("pg_support")


@pytest.fixture
def open_pg(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    made: list[Any] = []

    def factory(**kw: Any) -> Any:
        config = LedgerConfig(durability=kw.pop("durability", "full"))
        store = pg_support.store_for_test(request, tmp_path, config, **kw)
        made.append(store)
        return store

    yield factory
    for s in made:
        s.close()


def _write(store: Any, tenant: str, received: list[int]) -> Head:
    h = store.tenant(tenant, create=True)
    with store.append_txn([h.tenant_id]) as txn:
        cur = txn.head(h.tenant_id)
        entries = [
            Entry(cur.size + i, bytes([i]) * 16, r, b'{"actor":{"id":"a"},"action":"x.y"}')
            for i, r in enumerate(received)
        ]
        new = Head(h.tenant_id, tenant, cur.size + len(entries), b"r" * 32, max(received), 0, 0)
        txn.write(h.tenant_id, entries, {}, new)
    return new


def _settings(store: Any, *names: str) -> list[str]:
    with store._conn() as conn:
        return [str(conn.execute(f"SHOW {n}").fetchone()[0]) for n in names]


def test_migrations_run_once_and_record_the_version(open_pg: Callable[..., Any]) -> None:
    from auditkeep.store.postgres_schema import SCHEMA_VERSION

    store = open_pg()
    assert store.schema_version() == SCHEMA_VERSION
    assert [m[0] for m in store.migrations()] == list(range(1, SCHEMA_VERSION + 1))
    assert store.migrate() == SCHEMA_VERSION
    again = open_pg()
    assert again.migrations() == store.migrations()


def test_nodes_starting_together_migrate_once(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = pg_support.require_postgres()
    schema = pg_support.new_schema_name("together")
    from auditkeep.store.postgres import PostgresStore

    stores: list[Any] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            stores.append(PostgresStore(url, schema=schema, max_size=2))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == [] and len(stores) == 4
        assert len(stores[0].migrations()) == stores[0].schema_version()
    finally:
        for s in stores:
            s.close()
        pg_support.drop_schema(schema)


def test_a_newer_schema_is_refused(open_pg: Callable[..., Any]) -> None:
    store = open_pg()
    with store._conn() as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (999, 'from the future', 0)")
    with pytest.raises(StoreError, match="newer"):
        open_pg()


def test_partitions_are_made_ahead_and_for_old_times(open_pg: Callable[..., Any]) -> None:
    from auditkeep.store.postgres_schema import months_ahead

    store = open_pg()
    names = [p[0] for p in store.partitions()]
    assert [m.table for m in months_ahead(time.time_ns())] == names
    may_2024 = 1_714_564_800_000_000_000
    now = time.time_ns()
    _write(store, "acme", [may_2024, may_2024 + 1, now])  # a copy of older data, say
    with store._conn() as conn:
        placed = conn.execute(
            "SELECT tableoid::regclass::text, k FROM entries ORDER BY k"
        ).fetchall()
    assert [p[0].split(".")[-1] for p in placed] == ["entries_2024_05", "entries_2024_05", names[0]]
    assert "entries_2024_05" in [p[0] for p in store.partitions()]
    _write(store, "acme", [now + 1])  # the month cache was reloaded, appends go on
    assert store.tenant("acme").size == 4


def test_session_settings(open_pg: Callable[..., Any]) -> None:
    full = open_pg()
    assert _settings(full, "synchronous_commit", "plan_cache_mode") == ["on", "force_custom_plan"]
    normal = open_pg(durability="normal")
    assert _settings(normal, "synchronous_commit") == ["off"]


def test_searches_never_prepare_server_side_statements(open_pg: Callable[..., Any]) -> None:
    store = open_pg(max_size=1)
    h = store.tenant("acme", create=True)
    for _ in range(10):
        store.search(Query(tenant_id=h.tenant_id, actor="someone"))
    with store._conn() as conn:
        count = conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0]
    assert count == 0


def test_unreachable_server_is_store_unavailable() -> None:
    from auditkeep.store.postgres import PostgresStore

    t0 = time.monotonic()
    with pytest.raises(StoreUnavailable, match="cannot connect"):
        PostgresStore("postgresql://postgres@127.0.0.1:9/test", timeout=1)
    assert time.monotonic() - t0 < 30


def test_the_pool_recovers_from_killed_connections(open_pg: Callable[..., Any]) -> None:
    store = open_pg(application_name="auditkeep-killme")
    h = store.tenant("acme", create=True)
    store.heads()
    pg_support.admin_execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'auditkeep-killme'"
    )
    outcomes: list[str] = []
    for _ in range(5):
        try:
            store.tenant("acme")
            outcomes.append("ok")
        except StoreUnavailable:
            outcomes.append("unavailable")
    assert outcomes[-1] == "ok" and "ok" in outcomes[:2]
    assert _write(store, "acme", [time.time_ns()]).size == 1
    assert store.tenant("acme").tenant_id == h.tenant_id


def test_a_closed_store_says_so(open_pg: Callable[..., Any]) -> None:
    store = open_pg()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.heads()


def test_nul_in_projected_strings_and_metadata(open_pg: Callable[..., Any]) -> None:
    store = open_pg()
    h = _write(store, "acme", [time.time_ns()] * 2)
    meta = {"k\x00": "v\x00", "n": [1, "a\x00"]}
    rows = [
        ProjectedRow(
            key=entry_key(h.tenant_id, 0), tenant_id=h.tenant_id, time_ns=5, received_ns=5, actor="a\x00b",
            action="x.y", resource_type="t\x00", resource_id=None, outcome="success", category=None,
            text="some\x00text", position=0, metadata=meta,
        ),
        ProjectedRow(
            key=entry_key(h.tenant_id, 1), tenant_id=h.tenant_id, time_ns=6, received_ns=6, actor="ab",
            action="x.y", resource_type=None, resource_id=None, outcome="success", category=None,
            text="other", position=1, metadata=None,
        ),
    ]
    store.project(h.tenant_id, rows, 2)

    def find(**kw: Any) -> list[int]:
        return [k for _, k in store.search(Query(tenant_id=h.tenant_id, **kw))]

    assert find(actor="a\x00b") == [rows[0].key]
    assert find(resource_type="t\x00") == [rows[0].key]
    assert find(metadata=[("k\x00", "v\x00")]) == [rows[0].key]
    assert find(text="text") == [rows[0].key]
    assert find(actor="ab") == [rows[1].key]


def test_a_write_that_bypassed_the_lock_cannot_fork(open_pg: Callable[..., Any]) -> None:
    store = open_pg()
    h = _write(store, "acme", [time.time_ns()])
    with pytest.raises(StoreError, match="moved"), store.append_txn([h.tenant_id]) as txn:
        with store._conn() as other:  # another session changes the head without the lock
            other.execute("SET lock_timeout = '1s'")
            with pytest.raises(Exception, match="lock"):
                other.execute("UPDATE logs SET size = 99 WHERE tenant_id = %s", (h.tenant_id,))
        txn._sizes[h.tenant_id] = 42  # as if the head read were stale
        txn.write(h.tenant_id, [], {}, Head(h.tenant_id, "acme", 1, h.root, h.received_ns, 1, 1))
    assert store.tenant("acme").size == 1
