"""A log with batches received at known times (the evidence tests' clock and helpers)."""

from __future__ import annotations

from dataclasses import dataclass, field

from auditkeep.ledger import Ledger
from auditkeep.model.timefmt import format_rfc3339

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


