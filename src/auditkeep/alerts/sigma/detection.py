"""A Sigma ``detection`` compiled into a test of one subject (a Kubernetes audit event, a
CloudTrail record, one auditd record…).

Search identifiers: a mapping is the AND of its fields, a list of mappings the OR of them,
a list of plain values a keyword search (any of them, or all with ``'|all'``) over every
text value of the subject. Keywords match as substrings, the way full-text search treats
them; explicit wildcards inside a keyword still apply.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from auditkeep.alerts.errors import RuleError
from auditkeep.alerts.sigma import condition as cond
from auditkeep.alerts.sigma import strings as ss
from auditkeep.alerts.sigma.logsource import Mapping
from auditkeep.alerts.sigma.modifiers import FieldTest, compile_field, texts
from auditkeep.alerts.sigma.strings import MULTI
from auditkeep.alerts.yamlsrc import line_of

Test = Callable[[Any], bool]


def conj(tests: tuple[Test, ...]) -> Test:
    """AND without a generator per call (the hot path of every rule)."""
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        a, b = tests
        return lambda s: a(s) and b(s)
    if len(tests) == 3:
        a, b, c = tests
        return lambda s: a(s) and b(s) and c(s)

    def all_of(s: Any) -> bool:
        for t in tests:  # noqa: SIM110 - faster than all() over a generator
            if not t(s):
                return False
        return True

    return all_of


def disj(tests: tuple[Test, ...]) -> Test:
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        a, b = tests
        return lambda s: a(s) or b(s)

    def any_of(s: Any) -> bool:
        for t in tests:  # noqa: SIM110 - faster than any() over a generator
            if t(s):
                return True
        return False

    return any_of
Hint = tuple[str, frozenset[str]]  # (field, lower-cased exact values)


@dataclass
class Selection:
    test: Test
    hint: Hint | None = None
    fields: list[str] = field(default_factory=list)


@dataclass
class Detection:
    """``test(subject)``; ``hint`` a field every match needs to equal one of some values;
    ``fields`` the fields the rule reads (shown in alerts)."""

    test: Test
    hint: Hint | None
    fields: list[str]
    condition_text: str


def _keyword(values: list[Any], mods: list[str], where: str) -> Selection:
    for m in mods:
        if m not in ("all", "cased", "contains", "startswith", "endswith"):
            raise RuleError(f"{where}: modifier {m!r} is not supported on keywords")
    cased = "cased" in mods
    tests: list[ss.TextTest] = []
    for v in values:
        if isinstance(v, (dict, list)) or v is None:
            raise RuleError(f"{where}: keywords must be strings or numbers")
        parts: list[ss.Part] = ss.parse(v) if isinstance(v, str) else [str(v)]
        if not parts or parts[0] is not MULTI:
            parts.insert(0, MULTI)
        if parts[-1] is not MULTI:
            parts.append(MULTI)
        tests.append(ss.compile_pattern(parts, cased))
    if not tests:
        raise RuleError(f"{where}: an empty keyword list")
    match_all = "all" in mods

    def test(subject: Any) -> bool:
        found = list(texts(subject))
        if match_all:
            return all(any(t(x) for x in found) for t in tests)
        return any(t(x) for x in found for t in tests)

    return Selection(test)


def _map(body: dict[Any, Any], mapping: Mapping, where: str) -> Selection:
    if not body:
        raise RuleError(f"{where}: an empty mapping")
    tests: list[FieldTest] = []
    for key, raw in body.items():
        if not isinstance(key, str):
            raise RuleError(f"{where}: field names must be strings, got {key!r}")
        name, *mods = key.split("|")
        if isinstance(raw, dict):
            raise RuleError(f"{where}: field {name!r}: nested mappings are not Sigma values")
        if name == "":
            values = raw if isinstance(raw, list) else [raw]
            kw = _keyword(values, mods, where)
            tests.append(FieldTest("", kw.test))
            continue
        try:
            tests.append(compile_field(name, mods, raw, mapping.getter(name), mapping.getter))
        except RuleError as exc:
            raise RuleError(f"{where}: {exc.reason}") from None
    hint = _best([(t.field, t.exact) for t in tests if t.exact], mapping)
    # exact-value tests first: they are the cheapest and the most selective
    ordered = sorted(tests, key=lambda t: 0 if t.exact else 1)
    return Selection(conj(tuple(t.test for t in ordered)), hint, [t.field for t in tests if t.field])


def _best(candidates: list[tuple[str, frozenset[str] | None]], mapping: Mapping) -> Hint | None:
    usable = [(f, v) for f, v in candidates if v]
    if not usable:
        return None

    def rank(c: tuple[str, frozenset[str] | None]) -> tuple[int, int]:
        f, v = c
        pr = mapping.priority.index(f) if f in mapping.priority else len(mapping.priority)
        return (pr, len(v or ()))

    f, v = min(usable, key=rank)
    assert v is not None
    return f, v


def compile_selection(name: str, body: Any, mapping: Mapping) -> Selection:
    where = f"selection {name!r}"
    if isinstance(body, dict):
        return _map(body, mapping, where)
    if isinstance(body, list):
        if not body:
            raise RuleError(f"{where}: an empty list")
        if all(isinstance(b, dict) for b in body):
            subs = [_map(b, mapping, where) for b in body]
            fns = tuple(s.test for s in subs)
            hints = [s.hint for s in subs]
            hint: Hint | None = None
            h0 = hints[0]
            if h0 is not None and all(h is not None and h[0] == h0[0] for h in hints):
                hint = (h0[0], frozenset().union(*(h[1] for h in hints if h is not None)))
            return Selection(
                disj(fns),
                hint,
                list(dict.fromkeys(f for s in subs for f in s.fields)),
            )
        if any(isinstance(b, dict) for b in body):
            raise RuleError(f"{where}: a list mixes mappings and keywords")
        return _keyword(body, [], where)
    if isinstance(body, (str, int)) and not isinstance(body, bool):
        return _keyword([body], [], where)
    raise RuleError(f"{where}: expected a mapping, a list of mappings or a list of keywords")


def _compile_node(node: cond.Node, sels: dict[str, Selection]) -> tuple[Test, Hint | None]:
    if isinstance(node, cond.Ref):
        s = sels[node.name]
        return s.test, s.hint
    if isinstance(node, cond.Not):
        inner, _ = _compile_node(node.inner, sels)
        return (lambda x: not inner(x)), None
    if isinstance(node, (cond.And, cond.AllOf)):
        parts = [_compile_node(n, sels) for n in node.items] if isinstance(node, cond.And) else [
            (sels[n].test, sels[n].hint) for n in node.names
        ]
        fns = tuple(p[0] for p in parts)
        hint = next((p[1] for p in parts if p[1] is not None), None)
        return conj(fns), hint
    parts = [_compile_node(n, sels) for n in node.items] if isinstance(node, cond.Or) else [
        (sels[n].test, sels[n].hint) for n in node.names
    ]
    fns = tuple(p[0] for p in parts)
    hints = [p[1] for p in parts]
    h0 = hints[0]
    hint = None
    if h0 is not None and all(h is not None and h[0] == h0[0] for h in hints):
        hint = (h0[0], frozenset().union(*(h[1] for h in hints if h is not None)))
    return disj(fns), hint


def compile_detection(detection: Any, mapping: Mapping) -> Detection:
    """Compile a ``detection`` section; ``RuleError`` (with the line when known)."""
    if not isinstance(detection, dict):
        raise RuleError("'detection' must be a mapping")
    if "timeframe" in detection:
        raise RuleError(
            "'timeframe' in detection (old Sigma aggregations) is not supported; use a correlation rule",
            line=line_of(detection, "timeframe"),
        )
    if "condition" not in detection:
        raise RuleError("'detection' needs a 'condition'", line=line_of(detection))
    sels: dict[str, Selection] = {}
    for name, body in detection.items():
        if name == "condition":
            continue
        try:
            sels[str(name)] = compile_selection(str(name), body, mapping)
        except RuleError as exc:
            raise RuleError(exc.reason, line=line_of(detection, name)) from None
    raw = detection["condition"]
    conditions = raw if isinstance(raw, list) else [raw]
    names = list(sels)
    compiled: list[tuple[Test, Hint | None]] = []
    for c in conditions:
        try:
            node = cond.parse_condition(c, names)
        except RuleError as exc:
            raise RuleError(exc.reason, line=line_of(detection, "condition")) from None
        compiled.append(_compile_node(node, sels))
    fields = list(dict.fromkeys(f for s in sels.values() for f in s.fields))
    text = " or ".join(f"({c})" for c in conditions) if len(conditions) > 1 else str(conditions[0])
    if len(compiled) == 1:
        return Detection(compiled[0][0], compiled[0][1], fields, text)
    fns = tuple(c[0] for c in compiled)
    h0 = compiled[0][1]
    hint = h0 if h0 is not None and all(c[1] is not None and c[1][0] == h0[0] for c in compiled) else None
    if hint is not None:
        hint = (hint[0], frozenset().union(*(c[1][1] for c in compiled if c[1] is not None)))
    return Detection(disj(fns), hint, fields, text)
