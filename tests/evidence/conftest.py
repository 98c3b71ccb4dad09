"""A log with batches received at known times, on each store, for the evidence tests."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from auditkeep.ledger import Ledger, LedgerConfig
from auditkeep.ledger.datadir import establish
from auditkeep.model.timefmt import format_rfc3339

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))  # the HTTP test's server

T0 = 1_790_000_000 * 10**9  # 2026-09-21, whole seconds
SECOND = 10**9


@dataclass
class Clock:
    now: int = T0

    def __call__(self) -> int:
        return self.now


@dataclass
class EvidenceLog:
    ledger: Ledger
    clock: Clock
    batches: list[list[int]] = field(default_factory=list)  # log indices of each batch
    times: list[int] = field(default_factory=list)  # received_at (ns) of each batch

    def add_batch(self, n: int, tenant: str = "default", at: int | None = None, **extra: object) -> list[int]:
        """``n`` events received at ``at`` (default: one second after the last batch)."""
        self.clock.now = at if at is not None else (self.times[-1] + SECOND if self.times else T0)
        k = len(self.batches)
        events = [
            {
                "action": "user.login" if i % 3 else "doc.read",
                "actor": {"id": f"u-{(k + i) % 4}", "ip": f"10.0.{k}.{i % 250}", "name": f"Person {i}"},
                "outcome": "success" if i % 4 else "denied",
                "resource": {"type": "doc", "id": f"d-{i}"},
                "metadata": {"batch": k, "i": i, "email": f"p{i}@example.org"},
                **extra,
            }
            for i in range(n)
        ]
        receipts = self.ledger.record_many(events, tenant)
        self.batches.append([r.index for r in receipts])
        self.times.append(self.clock.now)
        return self.batches[-1]

    def iso(self, batch: int, offset: int = 0) -> str:
        return format_rfc3339(self.times[batch] + offset)


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
