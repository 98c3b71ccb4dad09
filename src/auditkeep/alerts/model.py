"""The alert an engine raises, and the id that makes replays idempotent."""

from __future__ import annotations

import hashlib
from typing import Any, Literal

import msgspec

AlertStatus = Literal["open", "acknowledged", "resolved"]

#: Alert severities, the same words as an event's severity (``debug`` excluded).
SEVERITIES: tuple[str, ...] = ("info", "low", "medium", "high", "critical")


class Alert(msgspec.Struct, kw_only=True):
    """One alert.

    ``id`` is derived from the rule, the tenant, the group and the log index of the event
    that triggered it (see :func:`alert_id`), so processing the same events again after a
    crash yields the same ids and the caller's store drops the duplicates.
    ``suppressed`` counts alerts of the same rule and group that the throttle swallowed
    since the previous one was raised.
    """

    id: str
    rule_id: str
    rule_name: str
    tenant: str
    severity: str
    title: str
    explanation: str
    group_key: str
    first_index: int
    last_index: int
    event_ids: list[str]
    count: int
    time: int
    fields: dict[str, Any] = msgspec.field(default_factory=dict)
    status: AlertStatus = "open"
    suppressed: int = 0
    notify: list[str] = msgspec.field(default_factory=list)
    tags: list[str] = msgspec.field(default_factory=list)


def alert_id(rule_id: str, tenant: str, group_key: str, trigger_index: int) -> str:
    """A 128-bit hex id: SHA-256 over (rule, tenant, group, index of the triggering event)."""
    data = f"{rule_id}\x00{tenant}\x00{group_key}\x00{trigger_index}\x00".encode()
    return hashlib.sha256(data).hexdigest()[:32]
