"""Fixtures shared by the whole suite: ledgers on each store (SQLite, PostgreSQL)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from auditkeep.ledger import Ledger, LedgerConfig
from auditkeep.ledger.datadir import establish

# Tests never assert on time, and hypothesis's per-example deadline (200 ms) is one: on a
# loaded machine, or with the suite running in parallel, it failed examples that were only slow.
hypothesis_settings.register_profile("auditkeep", deadline=None)
hypothesis_settings.load_profile("auditkeep")

# pytest-xdist's workers inherit COLUMNS=80 and LINES=24 from their terminal set-up; the CLI
# (and every subprocess) would then wrap tables at 80 columns where a plain run does not.
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)

STORES = ["sqlite", "postgres"]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _postgres_store(request: pytest.FixtureRequest, tmp_path: Path, config: LedgerConfig) -> object:
    """A PostgreSQL store in a schema of its own, dropped after the test (tests/pg_support.py)."""
    try:
        import pg_support  # type: ignore[import-not-found]
    except ModuleNotFoundError:
        if IN_CI:
            pytest.fail("PostgreSQL test support (tests/pg_support.py) is missing")
        pytest.skip("PostgreSQL store not available in this build")
    return pg_support.store_for_test(request, tmp_path, config)


@pytest.fixture(params=STORES)
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_ledger(
    request: pytest.FixtureRequest, tmp_path: Path, store_kind: str
) -> Iterator[Callable[..., Ledger]]:
    """A factory of ledgers on the parametrised store; every ledger made is closed after the test.

    Calling it twice gives a second ledger on the same store (as after a restart)."""
    made: list[Ledger] = []
    data = tmp_path / "data"

    def factory(config: LedgerConfig | None = None, background: bool = True) -> Ledger:
        cfg = config or LedgerConfig()
        if store_kind == "sqlite":
            ledger = Ledger.open(data, cfg, background=background)
        else:
            store = _postgres_store(request, tmp_path, cfg)
            identity, _ = establish(store, data)  # type: ignore[arg-type]
            ledger = Ledger(store, identity, cfg, background=background)  # type: ignore[arg-type]
        made.append(ledger)
        return ledger

    yield factory
    for ledger in made:
        ledger.close()


@pytest.fixture
def ledger(make_ledger: Callable[..., Ledger]) -> Ledger:
    return make_ledger()
