"""The PostgreSQL gateway's guardrail conditions and its ``masking`` section.

Conditions (besides ``users``, ``roles``, ``except_users``, ``except_roles``):

| condition | holds when |
|---|---|
| ``kinds`` | the statement's kind matches (select, insert, update, delete, merge, truncate, copy, ddl, dcl, transaction, set, call, do, explain, utility, unknown) |
| ``tables`` | a table it names matches (``public.*``, ``payroll``; unqualified names match both ways) |
| ``pattern`` | the regular expression (case-insensitive) is found in the statement text |
| ``missing_where`` | ``true``: an UPDATE or DELETE in it has no WHERE clause |
| ``writes`` | ``true``: it changes rows (``false``: it does not) |
| ``databases`` | the database matches |
| ``applications`` | the client's ``application_name`` matches |
| ``clients`` | the client address is in one of the networks (``10.0.0.0/8``) |
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from auditkeep.gateway.guardrails import ConditionKind, glob, strings
from auditkeep.gateway.postgres.sql import KINDS, Statement
from auditkeep.policy.capture import Glob
from auditkeep.policy.detectors import PII, Detector


@dataclass(frozen=True)
class QuerySubject:
    """One statement as the guardrails see it."""

    user: str
    roles: frozenset[str]
    database: str
    application: str
    client: str
    statement: Statement


Pred = Callable[[QuerySubject], bool]


def _kinds(value: Any) -> Pred:
    g = glob(value)
    bad = [k for k in strings(value) if "*" not in k and k not in KINDS]
    if bad:
        raise ValueError(f"unknown kind {bad[0]!r}; known: {', '.join(KINDS)}")
    return lambda s: g(s.statement.kind)


def _tables(value: Any) -> Pred:
    g = glob(value)

    def match(s: QuerySubject) -> bool:
        for t in s.statement.tables:
            if g(t) or ("." not in t and g(f"public.{t}")) or ("." in t and g(t.rsplit(".", 1)[1])):
                return True
        return False

    return match


def _pattern(value: Any) -> Pred:
    if not isinstance(value, str) or not value or len(value) > 1000:
        raise ValueError("expected a regular expression (at most 1000 characters)")
    try:
        rx = re.compile(value, re.I | re.S)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from None
    return lambda s: rx.search(s.statement.text) is not None


def _flag(attr: str) -> ConditionKind[QuerySubject]:
    def kind(value: Any) -> Pred:
        if not isinstance(value, bool):
            raise ValueError("expected true or false")
        return lambda s: bool(getattr(s.statement, attr)) is value

    return kind


def _field(attr: str) -> ConditionKind[QuerySubject]:
    def kind(value: Any) -> Pred:
        g = glob(value)
        return lambda s: g(getattr(s, attr))

    return kind


def _clients(value: Any) -> Pred:
    try:
        nets = [ipaddress.ip_network(v, strict=False) for v in strings(value)]
    except ValueError as exc:
        raise ValueError(f"expected networks such as 10.0.0.0/8: {exc}") from None

    def match(s: QuerySubject) -> bool:
        try:
            ip = ipaddress.ip_address(s.client)
        except ValueError:
            return False
        return any(ip in n for n in nets)

    return match


CONDITIONS: dict[str, ConditionKind[QuerySubject]] = {
    "kinds": _kinds,
    "tables": _tables,
    "pattern": _pattern,
    "missing_where": _flag("missing_where"),
    "writes": _flag("writes"),
    "databases": _field("database"),
    "applications": _field("application"),
    "clients": _clients,
}


@dataclass(frozen=True)
class Masking:
    """``masking:`` — result columns masked for users not exempt from it."""

    detectors: tuple[Detector, ...] = PII
    columns: Glob | None = None  # column names (lower case) masked whatever their values
    exempt_users: Glob | None = None
    exempt_roles: Glob | None = None
    names: tuple[str, ...] = field(default=tuple(d.name for d in PII))

    def applies_to(self, user: str, roles: frozenset[str]) -> bool:
        if self.exempt_users is not None and self.exempt_users(user):
            return False
        return not (self.exempt_roles is not None and self.exempt_roles.any(roles))


_MASKING_KEYS = {"detectors", "columns", "exempt_users", "exempt_roles"}


def parse_masking(value: Any) -> Masking:
    if value is None or value is True:
        return Masking()
    if not isinstance(value, dict):
        raise ValueError("expected a mapping with detectors, columns, exempt_users, exempt_roles")
    unknown = set(value) - _MASKING_KEYS
    if unknown:
        raise ValueError(f"unknown key {sorted(map(str, unknown))[0]!r}; expected {', '.join(sorted(_MASKING_KEYS))}")
    known = {d.name: d for d in PII}
    detectors: tuple[Detector, ...] = PII
    if "detectors" in value:
        names = list(value["detectors"] or [])
        bad = [n for n in names if n not in known]
        if bad:
            raise ValueError(f"unknown detector {bad[0]!r}; known: {', '.join(known)}")
        detectors = tuple(known[n] for n in names)
    columns = Glob([c.lower() for c in strings(value["columns"])]) if value.get("columns") else None
    eu = glob(value["exempt_users"]) if value.get("exempt_users") else None
    er = glob(value["exempt_roles"]) if value.get("exempt_roles") else None
    return Masking(detectors, columns, eu, er, tuple(d.name for d in detectors))


SECTIONS = {"masking": parse_masking}
