"""Guardrail rules: the small core both gateways share.

A rules file is YAML::

    default: allow            # when no rule matches: allow (default), deny or review
    review_timeout: 5m        # how long a held action waits for a decision
    rules:
      - name: no-unbounded-delete
        action: deny          # deny | review | allow
        message: DELETE and UPDATE need a WHERE clause
        kinds: [delete, update]          # a condition kind of the PostgreSQL gateway
        missing_where: true              # another one
        except_roles: [dba]              # shared: users, roles, except_users, except_roles
    masking: {...}            # a section a gateway declares (``sections=``)

Rules are tried in order and the **first rule whose conditions all hold decides**; an
``allow`` rule therefore carves an exception out of the rules below it. A rule without
conditions matches everything.

Each gateway brings its own condition kinds: a mapping from the key written in a rule to a
function that compiles the written value into a predicate over the gateway's subject (the
statement, the tool call), raising ``ValueError`` with a reason for a bad value. The core
adds the identity kinds every gateway has, over the subject's ``user`` and ``roles``:
``users``, ``roles``, ``except_users``, ``except_roles`` (lists of patterns where ``*``
matches any run of characters).

Errors name the file and line (:class:`~auditkeep.alerts.errors.RuleError`). A
:class:`RulesFile` reloads the file when it changes; a change that does not load is logged
and the previous rules stay in force.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, Protocol, TypeVar

from auditkeep.alerts.errors import RuleError
from auditkeep.alerts.timeutil import parse_duration
from auditkeep.alerts.yamlsrc import line_of, load_documents, plain
from auditkeep.policy.capture import Glob

log = logging.getLogger("auditkeep.gateway")

Action = Literal["allow", "deny", "review"]
ACTIONS: tuple[str, ...] = ("allow", "deny", "review")
DEFAULT_REVIEW_TIMEOUT = 300.0
MAX_RULES = 10_000
MAX_FILE_BYTES = 4 * 1024 * 1024


class Subject(Protocol):
    """What every gateway's subject has: who is acting."""

    @property
    def user(self) -> str: ...

    @property
    def roles(self) -> frozenset[str]: ...


S = TypeVar("S", bound=Subject)
S_contra = TypeVar("S_contra", bound=Subject, contravariant=True)
Predicate = Callable[[S], bool]
ConditionKind = Callable[[Any], Callable[[S], bool]]
"""Compiles the value written in a rule into a predicate; ``ValueError`` for a bad value."""
SectionParser = Callable[[Any], Any]
"""Parses a top-level section of the file a gateway declares; ``ValueError`` (or a
:class:`RuleError` with a line) for a bad one."""


def strings(value: Any) -> list[str]:
    """A string or a list of strings (for condition kinds); ``ValueError`` otherwise."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) and v for v in items):
        raise ValueError("expected a string or a non-empty list of strings")
    return list(items)


def glob(value: Any) -> Glob:
    """Patterns (``*`` = any run of characters) from a string or a list of strings."""
    return Glob(strings(value))


def _users(value: Any) -> Callable[[Subject], bool]:
    g = glob(value)
    return lambda s: g(s.user)


def _roles(value: Any) -> Callable[[Subject], bool]:
    g = glob(value)
    return lambda s: g.any(s.roles)


def _except_users(value: Any) -> Callable[[Subject], bool]:
    g = glob(value)
    return lambda s: not g(s.user)


def _except_roles(value: Any) -> Callable[[Subject], bool]:
    g = glob(value)
    return lambda s: not g.any(s.roles)


IDENTITY_KINDS: dict[str, ConditionKind[Any]] = {
    "users": _users,
    "roles": _roles,
    "except_users": _except_users,
    "except_roles": _except_roles,
}
_RULE_KEYS = frozenset({"name", "action", "message"})
_TOP_KEYS = frozenset({"default", "review_timeout", "rules"})


@dataclass(frozen=True)
class Rule(Generic[S]):
    name: str
    action: Action
    message: str | None
    conditions: tuple[Callable[[S], bool], ...]
    file: str | None = None
    line: int | None = None

    def matches(self, subject: S) -> bool:
        return all(c(subject) for c in self.conditions)

    @property
    def where(self) -> str:
        return f"{self.file or 'line'}:{self.line}" if self.line else (self.file or "")


@dataclass(frozen=True)
class Verdict(Generic[S]):
    """What the rules say about one subject: the action, the rule that decided (None: the
    default), and the message for the person refused."""

    action: Action
    rule: Rule[S] | None
    message: str

    @property
    def rule_name(self) -> str | None:
        return self.rule.name if self.rule is not None else None


@dataclass(frozen=True)
class RuleSet(Generic[S]):
    rules: tuple[Rule[S], ...] = ()
    default: Action = "allow"
    review_timeout: float = DEFAULT_REVIEW_TIMEOUT
    sections: Mapping[str, Any] = field(default_factory=dict)

    def decide(self, subject: S) -> Verdict[S]:
        for rule in self.rules:
            if rule.matches(subject):
                return Verdict(rule.action, rule, rule.message or _message(rule.action, rule.name))
        return Verdict(self.default, None, _message(self.default, None))


def _message(action: str, rule: str | None) -> str:
    by = f"guardrail rule {rule!r}" if rule else "the default guardrail policy"
    if action == "deny":
        return f"refused by {by}"
    if action == "review":
        return f"held for approval by {by}"
    return f"allowed by {by}"


def parse_rules(
    text: str,
    kinds: Mapping[str, ConditionKind[S]],
    *,
    file: str | None = None,
    sections: Mapping[str, SectionParser] | None = None,
) -> RuleSet[S]:
    """Parse a rules file's text; :class:`RuleError` (with file and line) for the first
    problem found. ``kinds`` are the gateway's condition kinds (the identity kinds are
    added); ``sections`` the top-level sections it accepts besides ``rules``."""
    sections = sections or {}
    all_kinds: dict[str, ConditionKind[Any]] = {**IDENTITY_KINDS, **kinds}
    docs = [d for d, _ in _load(text, file) if d is not None]
    if not docs:
        return RuleSet()
    if len(docs) > 1:
        raise RuleError("a rules file holds one YAML document", file=file)
    top = docs[0]
    if isinstance(top, list):  # a bare list of rules
        top_map: dict[Any, Any] = {"rules": top}
        container: Any = None
    elif isinstance(top, dict):
        top_map, container = top, top
    else:
        raise RuleError("expected a mapping with 'rules:' (or a list of rules)", file=file, line=1)
    for key in top_map:
        if key not in _TOP_KEYS and key not in sections:
            known = ", ".join(sorted({*_TOP_KEYS, *sections}))
            raise RuleError(f"unknown key {key!r}; expected one of {known}", file=file, line=line_of(container, key))

    def where(key: str) -> int | None:
        return line_of(container, key) if container is not None else None

    default = top_map.get("default", "allow")
    if default not in ACTIONS:
        raise RuleError(f"default: expected one of {', '.join(ACTIONS)}", file=file, line=where("default"))
    timeout = DEFAULT_REVIEW_TIMEOUT
    if "review_timeout" in top_map:
        try:
            timeout = parse_duration(top_map["review_timeout"]) / 1e9
        except ValueError as exc:
            raise RuleError(f"review_timeout: {exc}", file=file, line=where("review_timeout")) from None
    items = top_map.get("rules") or []
    if not isinstance(items, list):
        raise RuleError("'rules' must be a list of rules", file=file, line=where("rules"))
    if len(items) > MAX_RULES:
        raise RuleError(f"more than {MAX_RULES} rules", file=file, line=where("rules"))
    rules: list[Rule[S]] = []
    names: set[str] = set()
    for i, item in enumerate(items):
        rule = _parse_rule(item, all_kinds, file, line_of(items, i))
        if rule.name in names:
            raise RuleError(f"rule name {rule.name!r} is used twice", file=file, line=rule.line)
        names.add(rule.name)
        rules.append(rule)
    parsed: dict[str, Any] = {}
    for key, parse in sections.items():
        if key in top_map:
            try:
                parsed[key] = parse(top_map[key])
            except RuleError as exc:
                raise exc.located(file) from None
            except ValueError as exc:
                raise RuleError(f"{key}: {exc}", file=file, line=where(key)) from None
    return RuleSet(tuple(rules), default, timeout, parsed)


def _load(text: str, file: str | None) -> list[tuple[Any, int]]:
    try:
        return load_documents(text)
    except RuleError as exc:
        raise exc.located(file) from None


def _parse_rule(item: Any, kinds: Mapping[str, ConditionKind[Any]], file: str | None, line: int | None) -> Rule[Any]:
    if not isinstance(item, dict):
        raise RuleError("a rule is a mapping with name, action and conditions", file=file, line=line)
    line = line_of(item, None, line)
    name = item.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise RuleError("name: expected a non-empty string (at most 200 characters)", file=file, line=line_of(item, "name", line))
    action = item.get("action")
    if action not in ACTIONS:
        raise RuleError(f"action: expected one of {', '.join(ACTIONS)}", file=file, line=line_of(item, "action", line), rule_id=name)
    message = item.get("message")
    if message is not None and (not isinstance(message, str) or len(message) > 1000):
        raise RuleError("message: expected a string (at most 1000 characters)", file=file, line=line_of(item, "message", line), rule_id=name)
    conditions = []
    for key, value in item.items():
        if key in _RULE_KEYS:
            continue
        kind = kinds.get(key)
        if kind is None:
            known = ", ".join(sorted(kinds))
            raise RuleError(f"unknown condition {key!r}; known: {known}", file=file, line=line_of(item, key, line), rule_id=name)
        try:
            conditions.append(kind(plain(value)))
        except ValueError as exc:
            raise RuleError(f"{key}: {exc}", file=file, line=line_of(item, key, line), rule_id=name) from None
    return Rule(name, action, message, tuple(conditions), file, line)


class RulesFile(Generic[S]):
    """A rules file kept current: :meth:`current` re-reads it when its modification time or
    size changed (checked at most every ``check_interval`` seconds). The first load raises
    :class:`RuleError`; a later change that does not load is logged, kept in
    :attr:`error`, and the rules in force stay."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        kinds: Mapping[str, ConditionKind[S]],
        *,
        sections: Mapping[str, SectionParser] | None = None,
        check_interval: float = 1.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        import time

        self.path = Path(path)
        self.kinds = kinds
        self.sections = sections
        self.check_interval = check_interval
        self._clock = clock or time.monotonic
        self.error: RuleError | None = None
        self.reloads = 0
        self._stamp = self._stat()
        self.rules: RuleSet[S] = self._read()
        self._checked = self._clock()

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def _read(self) -> RuleSet[S]:
        try:
            with self.path.open("rb") as f:
                raw = f.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise RuleError(f"cannot read: {exc.strerror or exc}", file=str(self.path)) from None
        if len(raw) > MAX_FILE_BYTES:
            raise RuleError(f"larger than {MAX_FILE_BYTES} bytes", file=str(self.path))
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise RuleError("not UTF-8 text", file=str(self.path)) from None
        return parse_rules(text, self.kinds, file=str(self.path), sections=self.sections)

    def current(self) -> RuleSet[S]:
        now = self._clock()
        if now - self._checked < self.check_interval:
            return self.rules
        self._checked = now
        stamp = self._stat()
        if stamp == self._stamp:
            return self.rules
        self._stamp = stamp
        try:
            self.rules = self._read()
        except RuleError as exc:
            if self.error is None or exc.render() != self.error.render():
                log.error("guardrails not reloaded, the previous rules stay in force: %s", exc.render())
            self.error = exc
            return self.rules
        self.error = None
        self.reloads += 1
        log.info("guardrails reloaded from %s: %d rule(s)", self.path, len(self.rules.rules))
        return self.rules


__all__ = [
    "ACTIONS",
    "IDENTITY_KINDS",
    "ConditionKind",
    "Rule",
    "RuleError",
    "RuleSet",
    "RulesFile",
    "Subject",
    "Verdict",
    "glob",
    "parse_rules",
    "strings",
]
