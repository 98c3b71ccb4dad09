"""PostgreSQL for the tests: one schema per test in the database ``test`` on this machine.

``store_for_test`` gives a test a new :class:`PostgresStore` bound to a schema of its own
(the same schema when called again in the same test, as after a restart) and drops the
schema when the test is over and its stores are closed. Without a reachable PostgreSQL the
test is skipped with the reason, except under ``CI=true``, where it fails.

The server is ``AUDITKEEP_TEST_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``).
"""

from __future__ import annotations

import atexit
import itertools
import os
import re
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SCHEMA_PREFIX = "akt_"
_counter = itertools.count(1)
_lock = threading.Lock()
_reachable: str | None = None  # "" when reachable, else why not
_swept = False


def base_url() -> str:
    return os.environ.get("AUDITKEEP_TEST_PG_URL", DEFAULT_URL)


def require_postgres() -> str:
    """The server URL, or skip (fail in CI) when PostgreSQL cannot be used here."""
    global _reachable
    if _reachable is None:
        _reachable = _probe()
    if _reachable:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI: {_reachable}")
        pytest.skip(f"PostgreSQL not available: {_reachable}")
    return base_url()


def _probe() -> str:
    try:
        import psycopg
        import psycopg_pool  # noqa: F401
    except ModuleNotFoundError as exc:
        return f"{exc.name} is not installed (pip install 'psycopg[binary]' psycopg-pool)"
    try:
        with psycopg.connect(base_url(), connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"cannot connect to {base_url()} ({first}); start it with " + (
            "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
        )
    _sweep_stale()
    return ""


def admin_execute(statement: str) -> None:
    import psycopg

    with psycopg.connect(base_url(), connect_timeout=5, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '20s'")
        conn.execute(statement)  # type: ignore[arg-type]


def _sweep_stale() -> None:
    """Drop test schemas left by runs that were killed before they could clean up."""
    global _swept
    if _swept:
        return
    _swept = True
    import psycopg

    with psycopg.connect(base_url(), connect_timeout=5, autocommit=True) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (SCHEMA_PREFIX + "%",)
            ).fetchall()
        ]
    for name in names:
        m = re.match(rf"{SCHEMA_PREFIX}(\d+)_", name)
        if m and not _alive(int(m.group(1))):
            drop_schema(name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def new_schema_name(label: str = "") -> str:
    tag = re.sub(r"[^a-z0-9]+", "_", label.lower())[-24:].strip("_")
    return f"{SCHEMA_PREFIX}{os.getpid()}_{next(_counter)}_{tag}"


def drop_schema(name: str) -> None:
    try:
        admin_execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    except Exception as exc:  # cleanup must never fail a test; a later run sweeps it
        print(f"pg_support: could not drop schema {name}: {exc}", file=sys.stderr)


@dataclass
class _TestSchema:
    name: str
    stores: list[Any] = field(default_factory=list)
    test_over: bool = False
    dropped: bool = False

    def maybe_drop(self) -> None:
        with _lock:
            if self.dropped or not self.test_over or any(not s._closed for s in self.stores):
                return
            self.dropped = True
        drop_schema(self.name)


_schemas: dict[str, _TestSchema] = {}  # by test id, while the test runs
_every: list[_TestSchema] = []


def _drop_leftovers() -> None:
    for ts in _every:
        for s in ts.stores:
            s.close()
        ts.test_over = True
        ts.maybe_drop()


atexit.register(_drop_leftovers)


def url_for_schema(schema: str) -> str:
    url = base_url()
    return url + ("&" if "?" in url else "?") + "schema=" + schema


def store_for_test(
    request: pytest.FixtureRequest, tmp_path: Path, config: Any, **kwargs: Any
) -> Any:
    """A new PostgresStore on this test's own schema."""
    require_postgres()
    from auditkeep.store.postgres import PostgresStore

    key = request.node.nodeid
    ts = _schemas.get(key)
    if ts is None or ts.dropped:
        ts = _schemas[key] = _TestSchema(new_schema_name(request.node.name))
        _every.append(ts)

        def finish() -> None:
            # Runs when the test's fixtures are torn down, possibly before the ledgers that
            # use these stores close; the last store to close then drops the schema.
            ts.test_over = True
            ts.maybe_drop()
            _schemas.pop(key, None)

        request.addfinalizer(finish)
    kwargs.setdefault("max_size", 4)
    store = PostgresStore(
        url_for_schema(ts.name), durability=getattr(config, "durability", "full"), **kwargs
    )
    ts.stores.append(store)
    store.on_close(ts.maybe_drop)
    return store
