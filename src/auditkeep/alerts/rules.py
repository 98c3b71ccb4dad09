"""The rule model and the parser of native rule definitions (YAML documents or dicts).

Every kind shares the common keys; each kind adds its own. Unknown keys are errors, so a
misspelt ``treshold:`` is reported instead of silently producing a rule that never fires.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from auditkeep.alerts.conditions import Condition, always, compile_condition
from auditkeep.alerts.errors import RuleError
from auditkeep.alerts.model import SEVERITIES
from auditkeep.alerts.timeutil import parse_duration
from auditkeep.alerts.yamlsrc import line_of, plain

if TYPE_CHECKING:
    from auditkeep.alerts.evaluators import Evaluator

KINDS = ("match", "threshold", "sequence", "absence", "anomaly")
COMMON_KEYS = (
    "id",
    "name",
    "description",
    "severity",
    "enabled",
    "tags",
    "kind",
    "group_by",
    "throttle",
    "notify",
)
KIND_KEYS: dict[str, tuple[str, ...]] = {
    "match": ("match",),
    "threshold": ("match", "threshold"),
    "sequence": ("steps", "window"),
    "absence": ("match", "after"),
    "anomaly": ("match", "detector", "params"),
}
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_SEVERITY_ALIASES = {"informational": "info", "information": "info"}


class RuleSpec(Protocol):
    """The kind-specific part of a rule; it knows how to build its evaluator."""

    def make_evaluator(self, rule: Rule) -> Evaluator: ...


@dataclass(eq=False)
class Rule:
    """A loaded rule. ``fingerprint`` changes whenever the definition does; the engine keeps
    a rule's state across reloads and restores only while the fingerprint is unchanged."""

    id: str
    name: str
    kind: str
    spec: RuleSpec
    description: str = ""
    severity: str = "medium"
    enabled: bool = True
    tags: tuple[str, ...] = ()
    group_by: tuple[str, ...] = ()
    throttle_ns: int = 0
    notify: tuple[str, ...] = ()
    file: str | None = None
    line: int | None = None
    definition: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""

    def __post_init__(self) -> None:
        if not self.fingerprint:
            self.fingerprint = fingerprint_of(self.definition)


def fingerprint_of(definition: Any) -> str:
    data = msgspec.json.encode(plain(definition), order="sorted")
    return hashlib.sha256(data).hexdigest()[:32]


@dataclass
class MatchSpec:
    condition: Condition

    def make_evaluator(self, rule: Rule) -> Evaluator:
        from auditkeep.alerts.match import MatchEvaluator

        return MatchEvaluator(rule, self.condition)


@dataclass
class ThresholdSpec:
    condition: Condition
    count: int
    window_ns: int
    distinct: str | None = None

    def make_evaluator(self, rule: Rule) -> Evaluator:
        from auditkeep.alerts.windows import ThresholdEvaluator

        return ThresholdEvaluator(rule, self)


@dataclass
class Step:
    condition: Condition
    count: int = 1
    name: str = ""


@dataclass
class SequenceSpec:
    steps: list[Step]
    window_ns: int

    def make_evaluator(self, rule: Rule) -> Evaluator:
        from auditkeep.alerts.sequence import SequenceEvaluator

        return SequenceEvaluator(rule, self)


@dataclass
class AbsenceSpec:
    condition: Condition
    after_ns: int

    def make_evaluator(self, rule: Rule) -> Evaluator:
        from auditkeep.alerts.absence import AbsenceEvaluator

        return AbsenceEvaluator(rule, self)


def _need(cond: bool, msg: str, where: Any, key: Any = None) -> None:
    if not cond:
        raise RuleError(msg, line=line_of(where, key))


def _str_list(value: Any, what: str, where: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    _need(isinstance(value, list), f"'{what}' must be a list of strings", where, key)
    for v in value:
        _need(isinstance(v, str) and v != "", f"'{what}' must be a list of non-empty strings", where, key)
    return tuple(value)


def _duration(value: Any, where: Any, key: str) -> int:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise RuleError(f"'{key}': {exc}", line=line_of(where, key)) from None


def _positive_int(value: Any, where: Any, key: str) -> int:
    _need(
        isinstance(value, int) and not isinstance(value, bool) and value >= 1,
        f"'{key}' must be a positive integer",
        where,
        key,
    )
    return int(value)


def parse_severity(value: Any, where: Any = None, key: str = "severity") -> str:
    if isinstance(value, str):
        v = _SEVERITY_ALIASES.get(value.lower(), value.lower())
        if v in SEVERITIES:
            return v
    raise RuleError(f"'{key}' must be one of {', '.join(SEVERITIES)}, got {value!r}", line=line_of(where, key))


def parse_rule(data: Mapping[str, Any], *, file: str | None = None) -> Rule:
    """A native rule from its definition; ``RuleError`` with the line of the problem."""
    rid = data.get("id") if isinstance(data, Mapping) else None
    try:
        return _parse_rule(data, file)
    except RuleError as exc:
        raise exc.located(file, rid if isinstance(rid, str) else None) from None


def _parse_rule(data: Mapping[str, Any], file: str | None) -> Rule:
    _need(isinstance(data, Mapping), f"a rule must be a mapping, got {type(data).__name__}", data)
    kind = data.get("kind", "match")
    _need(kind in KINDS, f"'kind' must be one of {', '.join(KINDS)}, got {kind!r}", data, "kind")
    allowed = COMMON_KEYS + KIND_KEYS[kind]
    for k in data:
        _need(
            k in allowed,
            f"unknown key {k!r} for a {kind} rule (allowed: {', '.join(allowed)})",
            data,
            k,
        )
    rid = data.get("id")
    _need(isinstance(rid, str) and bool(_ID.match(rid)), "'id' is required: letters, digits and _ . : - (max 128)", data, "id" if "id" in data else None)
    name = data.get("name", rid)
    _need(isinstance(name, str) and name != "", "'name' must be a non-empty string", data, "name")
    description = data.get("description", "")
    _need(isinstance(description, str), "'description' must be a string", data, "description")
    severity = parse_severity(data.get("severity", "medium"), data)
    enabled = data.get("enabled", True)
    _need(isinstance(enabled, bool), "'enabled' must be true or false", data, "enabled")
    tags = _str_list(data.get("tags", []), "tags", data, "tags")
    group_by = _str_list(data.get("group_by", []), "group_by", data, "group_by")
    notify = _str_list(data.get("notify", []), "notify", data, "notify")
    throttle_ns = 0
    if data.get("throttle") not in (None, 0, "0"):
        throttle_ns = _duration(data["throttle"], data, "throttle")

    spec: RuleSpec
    if kind == "match":
        _need("match" in data, "a match rule needs 'match'", data)
        spec = MatchSpec(compile_condition(data["match"], data, "match"))
    elif kind == "threshold":
        cond = compile_condition(data["match"], data, "match") if "match" in data else always()
        th = data.get("threshold")
        _need(isinstance(th, Mapping), "a threshold rule needs 'threshold: {count, window}'", data, "threshold")
        assert isinstance(th, Mapping)
        for k in th:
            _need(k in ("count", "window", "distinct"), f"unknown key {k!r} in 'threshold' (allowed: count, window, distinct)", th, k)
        _need("count" in th and "window" in th, "'threshold' needs 'count' and 'window'", th)
        distinct = th.get("distinct")
        _need(distinct is None or (isinstance(distinct, str) and distinct != ""), "'distinct' must be a field path", th, "distinct")
        spec = ThresholdSpec(cond, _positive_int(th["count"], th, "count"), _duration(th["window"], th, "window"), distinct)
    elif kind == "sequence":
        steps_raw = data.get("steps")
        _need(isinstance(steps_raw, list) and len(steps_raw) >= 2, "a sequence rule needs 'steps': a list of at least two steps", data, "steps")
        _need("window" in data, "a sequence rule needs 'window'", data)
        assert isinstance(steps_raw, list)
        steps: list[Step] = []
        for i, st in enumerate(steps_raw):
            _need(isinstance(st, Mapping), "each step must be a mapping with 'match' (and 'count', 'name')", steps_raw, i)
            for k in st:
                _need(k in ("match", "count", "name"), f"unknown key {k!r} in a step (allowed: match, count, name)", st, k)
            _need("match" in st, "each step needs 'match'", steps_raw, i)
            sname = st.get("name", f"step {i + 1}")
            _need(isinstance(sname, str), "a step 'name' must be a string", st, "name")
            steps.append(
                Step(
                    compile_condition(st["match"], st, "match"),
                    _positive_int(st.get("count", 1), st, "count"),
                    sname,
                )
            )
        spec = SequenceSpec(steps, _duration(data["window"], data, "window"))
    elif kind == "absence":
        _need("after" in data, "an absence rule needs 'after' (the silence that raises the alert)", data)
        cond = compile_condition(data["match"], data, "match") if "match" in data else always()
        spec = AbsenceSpec(cond, _duration(data["after"], data, "after"))
    else:
        from auditkeep.alerts.anomaly import parse_anomaly

        cond = compile_condition(data["match"], data, "match") if "match" in data else always()
        spec = parse_anomaly(data.get("detector"), data.get("params", {}), cond, data, group_by)

    return Rule(
        id=str(rid),
        name=name,
        kind=kind,
        spec=spec,
        description=description,
        severity=severity,
        enabled=enabled,
        tags=tags,
        group_by=group_by,
        throttle_ns=throttle_ns,
        notify=notify,
        file=file,
        line=line_of(data),
        definition=plain(data),
    )
