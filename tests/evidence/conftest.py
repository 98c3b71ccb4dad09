"""A log with batches received at known times, on each store, for the evidence tests."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from evidence_support import Clock, EvidenceLog  # type: ignore[import-not-found]

from auditkeep.ledger import Ledger, LedgerConfig
from auditkeep.ledger.datadir import establish

sys.path.append(str(Path(__file__).resolve().parents[1] / "server"))  # the HTTP test's server


@pytest.fixture
def make_evidence_log(
    request: pytest.FixtureRequest, tmp_path: Path, store_kind: str
) -> Iterator[Callable[[], EvidenceLog]]:
    made: list[Ledger] = []

    def factory() -> EvidenceLog:
        cfg = LedgerConfig()
        clock = Clock()
        if store_kind == "sqlite":
            from auditkeep.store.sqlite import SQLiteStore

            store = SQLiteStore(tmp_path / "data")
        else:
            import pg_support  # type: ignore[import-not-found]

            store = pg_support.store_for_test(request, tmp_path, cfg)
        identity, _ = establish(store, tmp_path / "data")
        lg = Ledger(store, identity, cfg, background=False, now_ns=clock)
        made.append(lg)
        return EvidenceLog(lg, clock)

    yield factory
    for lg in made:
        lg.close()


@pytest.fixture
def five_batches(make_evidence_log: Callable[[], EvidenceLog]) -> EvidenceLog:
    """Five batches of 10 events one second apart, signed after the third and at the end."""
    log = make_evidence_log()
    for b in range(5):
        log.add_batch(10)
        if b == 2:
            log.ledger.checkpoint("default", new=True)
    log.ledger.checkpoint("default", new=True)
    return log
