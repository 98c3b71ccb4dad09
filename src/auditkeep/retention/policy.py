"""Retention policies: ``[[retention.policy]]`` tables, first match wins.

A policy matches an event by tenant, category and action (shell-style globs); its
``delete_after`` (a duration measured from ``received_at``) says when the payload goes. A
matching policy without ``delete_after`` keeps its events: that is how an exception is
written before a broader rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from auditkeep.errors import ConfigError

_DURATION = re.compile(r"^([0-9]{1,6})\s*(s|m|h|d|w|y)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_NS = 1_000_000_000
MAX_POLICIES = 1000
_KEYS = {"name", "tenant", "category", "action", "archive_after", "delete_after"}

# The log's own records of retention, holds and erasure are never expired: verify needs the
# retention records to tell an expired entry from a deleted one.
PROTECTED_PREFIXES = ("auditkeep.retention.", "auditkeep.hold.", "auditkeep.subject.")


class PolicyError(ConfigError):
    """A retention policy is invalid (the message names it and the field)."""


def parse_duration(text: str, where: str) -> int:
    """``90d``, ``12h``, ``2w``, ``1y`` (365 days) ... as nanoseconds."""
    m = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if m is None or int(m.group(1)) == 0:
        raise PolicyError(f"{where}: expected a duration such as 30d, 12h, 2w or 1y, got {text!r}")
    return int(m.group(1)) * _UNITS[m.group(2)] * _NS


@dataclass(frozen=True)
class Policy:
    name: str
    tenant: str = "*"
    category: str = "*"
    action: str = "*"
    archive_after_ns: int | None = None
    delete_after_ns: int | None = None

    def matches(self, tenant: str, category: str | None, action: str) -> bool:
        return (
            fnmatchcase(tenant, self.tenant)
            and fnmatchcase(category or "", self.category)
            and fnmatchcase(action, self.action)
        )


def load_policies(tables: list[dict[str, Any]]) -> list[Policy]:
    """Policies from the ``[[retention.policy]]`` tables, in order."""
    if len(tables) > MAX_POLICIES:
        raise PolicyError(f"at most {MAX_POLICIES} retention policies")
    out: list[Policy] = []
    names: set[str] = set()
    for n, table in enumerate(tables, start=1):
        where = f"retention.policy #{n}"
        if not isinstance(table, dict):
            raise PolicyError(f"{where}: expected a table")
        unknown = sorted(set(table) - _KEYS)
        if unknown:
            raise PolicyError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})")
        for key in _KEYS - {"archive_after", "delete_after"}:
            value = table.get(key)
            if value is not None and (not isinstance(value, str) or not value or len(value) > 200):
                raise PolicyError(f"{where}: {key} must be a non-empty string of at most 200 characters")
        name = table.get("name") or f"policy-{n}"
        if name in names:
            raise PolicyError(f"{where}: the name {name!r} is used twice")
        names.add(name)
        where = f"retention.policy {name!r}"
        archive = table.get("archive_after")
        delete = table.get("delete_after")
        out.append(
            Policy(
                name=name,
                tenant=table.get("tenant", "*"),
                category=table.get("category", "*"),
                action=table.get("action", "*"),
                archive_after_ns=parse_duration(archive, f"{where} archive_after") if archive is not None else None,
                delete_after_ns=parse_duration(delete, f"{where} delete_after") if delete is not None else None,
            )
        )
    return out


def first_match(policies: list[Policy], tenant: str, category: str | None, action: str) -> Policy | None:
    for p in policies:
        if p.matches(tenant, category, action):
            return p
    return None


def protected(action: str) -> bool:
    return action.startswith(PROTECTED_PREFIXES)
