"""What ``verify`` finds: problems (tampering or warnings) per tenant, and the report."""

from __future__ import annotations

from dataclasses import dataclass, field

from auditkeep.ledger.trust import Trust
from auditkeep.log.checkpoint import Checkpoint

# Problem kinds. Tampering: event, order, missing, tile, head, checkpoint, rollback, trusted,
# sealed. "unsigned" (entries after the newest signed checkpoint) is a warning unless the
# trust requires every entry signed.
TAMPERING_KINDS = ("event", "order", "missing", "tile", "head", "checkpoint", "rollback", "trusted", "sealed")


@dataclass
class Problem:
    kind: str
    message: str
    index: int | None = None

    def render(self, tenant: str) -> str:
        at = f" at index {self.index}" if self.index is not None else ""
        return f"{tenant}{at}: {self.message}"


@dataclass
class TenantReport:
    tenant: str
    size: int
    entries_checked: int = 0
    checkpoints_checked: int = 0
    problems: list[Problem] = field(default_factory=list)  # each one fails verification
    warnings: list[Problem] = field(default_factory=list)
    sealed_checked: int = 0  # personal fields whose plaintext matched the leaf's commitment
    erased: int = 0  # personal fields erased since (no plaintext): not tampering
    expired: int = 0  # entries whose payload retention deleted, each covered by a retention record
    expired_ranges: list[tuple[int, int]] = field(default_factory=list)
    # entries whose payload is encrypted and was not opened (verify ran without the master
    # key): their leaf hashes come from the tiles, so the tree is checked, the payloads not
    payloads_unchecked: int = 0
    signed_size: int = 0  # size of the newest checkpoint that verified against the events
    # a directory restored from archive segments: the ranges it holds, each checked against
    # its segment's signed checkpoint (the rest of the tree is not there)
    restored: list[tuple[int, int]] = field(default_factory=list)
    latest: Checkpoint | None = None  # that checkpoint

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        with_index = [p for p in self.problems if p.index is not None]
        if with_index:
            return min(with_index, key=lambda p: p.index or 0)
        return self.problems[0] if self.problems else None


@dataclass
class VerifyReport:
    tenants: list[TenantReport]
    trust: Trust | None = None

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tenants)
