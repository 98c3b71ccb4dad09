"""Settings of the append path."""

from __future__ import annotations

from dataclasses import dataclass, field

from auditkeep.model.validate import DEFAULT_LIMITS, Limits

DEFAULT_PERSONAL_FIELDS: tuple[str, ...] = ("actor.name", "actor.ip", "actor.user_agent", "metadata.email")


@dataclass(frozen=True)
class LedgerConfig:
    limits: Limits = DEFAULT_LIMITS
    # Fields committed in the leaf only as salted HMACs, their plaintext kept beside the leaf
    # so that it can later be erased without breaking any proof.
    personal_fields: tuple[str, ...] = DEFAULT_PERSONAL_FIELDS
    # Whose personal data it is: one salt per value of this field per tenant.
    subject_field: str = "actor.id"
    checkpoint_interval: float = 1.0  # seconds between signed checkpoints of a growing log
    durability: str = "full"  # "full": fsync every commit; "normal": survive crashes, not power loss
    max_group_events: int = 20_000  # events committed together in one transaction at most
    extra: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.durability not in ("full", "normal"):
            raise ValueError("durability must be 'full' or 'normal'")
        for path in self.personal_fields:
            if path == "actor.id" or "." not in path:
                raise ValueError(f"personal field {path!r} cannot be sealed (top-level or actor.id)")
        if self.checkpoint_interval <= 0:
            raise ValueError("checkpoint_interval must be positive")
