"""Conditions of native rules: field tests combined with ``all`` / ``any`` / ``not``.

A condition is written as YAML::

    all:
      - action: user.login                  # equals
      - outcome: [failure, denied]          # in
      - actor.ip: {cidr: [10.0.0.0/8]}      # operator map
      - not: {actor.type: service}
      - metadata.k8s.verb: {in: [create, patch], ignore_case: true}

A mapping with several fields is the AND of them. Compiling produces a predicate over the
plain-dict event plus an :class:`IndexHint` when the condition *requires* one field to have
one of a few exact values, so the engine can skip the rule for other events.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from auditkeep.alerts.errors import RuleError
from auditkeep.alerts.fields import MISSING, compile_path, render_value, scalars, to_number, to_text
from auditkeep.alerts.yamlsrc import line_of

Predicate = Callable[[Any], bool]

OPERATORS = (
    "equals",
    "in",
    "prefix",
    "suffix",
    "contains",
    "regex",
    "cidr",
    "gt",
    "gte",
    "lt",
    "lte",
    "exists",
    "ignore_case",
)
COMBINATORS = ("all", "any", "not")


@dataclass(frozen=True)
class IndexHint:
    """The event's ``path`` must equal one of ``values`` (lower-cased when ``lower``) or
    start with one of ``prefixes`` for the rule to possibly match."""

    path: str
    lower: bool
    values: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()

    def admits(self, text: str) -> bool:
        key = text.lower() if self.lower else text
        return key in self.values or (bool(self.prefixes) and key.startswith(self.prefixes))


@dataclass
class Condition:
    """A compiled condition: ``test(event)``, a readable ``text``, the ``fields`` it reads
    (shown in alerts) and an optional index hint."""

    test: Predicate
    text: str
    fields: tuple[str, ...] = ()
    hint: IndexHint | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def always() -> Condition:
    return Condition(lambda ev: True, "any event")


@lru_cache(maxsize=65536)
def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def _err(msg: str, where: Any, key: Any = None) -> RuleError:
    return RuleError(msg, line=line_of(where, key))


def _eq_factory(expected: Any, ignore_case: bool) -> Callable[[Any], bool]:
    if expected is None:
        return lambda v: v is None
    if isinstance(expected, bool):
        return lambda v: v is expected
    if isinstance(expected, (int, float)):
        num = expected
        return lambda v: to_number(v) == num
    text = str(expected)
    if ignore_case:
        low = text.lower()
        return lambda v: (t := to_text(v)) is not None and t.lower() == low
    return lambda v: v == text if isinstance(v, str) else to_text(v) == text


def _any_of(eqs: list[Callable[[Any], bool]]) -> Callable[[Any], bool]:
    def test(v: Any) -> bool:
        return any(e(v) for e in eqs)

    return test


def _string_op(op: str, strs: tuple[str, ...], ignore_case: bool) -> Callable[[Any], bool]:
    def test(v: Any) -> bool:
        t = to_text(v)
        if t is None:
            return False
        if ignore_case:
            t = t.lower()
        if op == "prefix":
            return t.startswith(strs)
        if op == "suffix":
            return t.endswith(strs)
        return any(x in t for x in strs)

    return test


def _regex_op(pats: list[re.Pattern[str]]) -> Callable[[Any], bool]:
    def test(v: Any) -> bool:
        t = to_text(v)
        return t is not None and any(p.search(t) for p in pats)

    return test


def _num_op(cmp: Callable[[float, float], bool], num: float) -> Callable[[Any], bool]:
    def test(v: Any) -> bool:
        n = to_number(v)
        return n is not None and cmp(n, num)

    return test


def _as_list(value: Any, op: str, where: Any, key: Any) -> list[Any]:
    items = list(value) if isinstance(value, list) else [value]
    if not items:
        raise _err(f"'{op}' needs at least one value", where, key)
    return items


@dataclass(frozen=True)
class _OpArgs:
    """What every operator's builder needs to know of the field test it is part of."""

    path: str
    spec: Any
    where: Any
    key: Any
    ignore_case: bool

    def at(self, op: str) -> tuple[Any, Any]:
        """Where an error about ``op`` points: the operator map's key, or the field itself
        (a bare scalar or list has no operator key of its own)."""
        return (self.spec, op) if isinstance(self.spec, dict) else (self.where, self.key)


_Built = tuple[Callable[[Any], bool], str, "IndexHint | None"]


def _build_equals(a: _OpArgs, op: str, arg: Any) -> _Built:
    values = _as_list(arg, op, *a.at(op))
    if op == "equals" and isinstance(arg, list):
        raise _err("'equals' takes one value; use 'in' for a list", a.spec, op)
    for v in values:
        if isinstance(v, (dict, list)):
            raise _err(f"'{op}' values must be scalars", a.at(op)[0], op)
    eqs = [_eq_factory(v, a.ignore_case) for v in values]
    hint = None
    if all(isinstance(v, str) for v in values):
        hint = IndexHint(a.path, a.ignore_case, frozenset(v.lower() if a.ignore_case else v for v in values))
    shown = render_value(values[0]) if len(values) == 1 else "[" + ", ".join(render_value(v) for v in values) + "]"
    text = f"{a.path} {'=' if len(values) == 1 else 'in'} {shown}"
    return (eqs[0] if len(eqs) == 1 else _any_of(eqs)), text, hint


def _build_string(a: _OpArgs, op: str, arg: Any) -> _Built:
    values = _as_list(arg, op, a.spec, op)
    if not all(isinstance(v, str) for v in values):
        raise _err(f"'{op}' values must be strings", a.spec, op)
    strs = tuple(v.lower() for v in values) if a.ignore_case else tuple(values)
    hint = IndexHint(a.path, a.ignore_case, frozenset(), strs) if op == "prefix" else None
    return _string_op(op, strs, a.ignore_case), f"{a.path} {op} {', '.join(repr(v) for v in values)}", hint


def _build_regex(a: _OpArgs, op: str, arg: Any) -> _Built:
    values = _as_list(arg, op, a.spec, op)
    pats = []
    for v in values:
        if not isinstance(v, str):
            raise _err("'regex' values must be strings", a.spec, op)
        try:
            pats.append(re.compile(v, re.IGNORECASE if a.ignore_case else 0))
        except re.error as exc:
            raise _err(f"invalid regular expression {v!r}: {exc}", a.spec, op) from None
    return _regex_op(pats), f"{a.path} matches {', '.join('/' + v + '/' for v in values)}", None


def _build_cidr(a: _OpArgs, op: str, arg: Any) -> _Built:
    nets = []
    for v in _as_list(arg, op, a.spec, op):
        try:
            nets.append(ipaddress.ip_network(str(v), strict=False))
        except ValueError as exc:
            raise _err(f"invalid CIDR {v!r}: {exc}", a.spec, op) from None

    def in_nets(v: Any, nets: list[Any] = nets) -> bool:
        t = to_text(v)
        ip = _ip(t) if t is not None else None
        return ip is not None and any(ip.version == n.version and ip in n for n in nets)

    return in_nets, f"{a.path} in {', '.join(str(n) for n in nets)}", None


_COMPARISONS: dict[str, tuple[str, Callable[[float, float], bool]]] = {
    "gt": (">", lambda x, y: x > y),
    "gte": (">=", lambda x, y: x >= y),
    "lt": ("<", lambda x, y: x < y),
    "lte": ("<=", lambda x, y: x <= y),
}


def _build_number(a: _OpArgs, op: str, arg: Any) -> _Built:
    if isinstance(arg, bool) or not isinstance(arg, (int, float)):
        raise _err(f"'{op}' needs a number", a.spec, op)
    sign, cmp = _COMPARISONS[op]
    return _num_op(cmp, arg), f"{a.path} {sign} {arg}", None


# One builder per operator ("exists" and "ignore_case" are handled by the field test itself).
_BUILDERS: dict[str, Callable[[_OpArgs, str, Any], _Built]] = {
    "equals": _build_equals,
    "in": _build_equals,
    "prefix": _build_string,
    "suffix": _build_string,
    "contains": _build_string,
    "regex": _build_regex,
    "cidr": _build_cidr,
    **{op: _build_number for op in _COMPARISONS},
}
assert set(_BUILDERS) | {"exists", "ignore_case"} == set(OPERATORS)


def _field_test(path: str, spec: Any, where: Any, key: Any) -> Condition:
    """One field's test: a scalar (equals), a list (in) or an operator map."""
    try:
        getter = compile_path(path)
    except ValueError as exc:
        raise _err(str(exc), where, key) from None
    if isinstance(spec, dict):
        ops = dict(spec)
    elif isinstance(spec, list):
        ops = {"in": spec}
    else:
        ops = {"equals": spec}
    unknown = [k for k in ops if k not in OPERATORS]
    if unknown:
        raise _err(
            f"unknown operator {unknown[0]!r} for field {path!r} (known: {', '.join(OPERATORS)})",
            spec if isinstance(spec, dict) else where,
            unknown[0] if isinstance(spec, dict) else key,
        )
    ignore_case = ops.pop("ignore_case", False)
    if not isinstance(ignore_case, bool):
        raise _err("'ignore_case' must be true or false", spec, "ignore_case")
    if not ops:
        raise _err(f"no operator for field {path!r}", where, key)

    tests: list[Callable[[Any], bool]] = []  # each takes one scalar
    texts: list[str] = []
    exists: bool | None = None
    hint: IndexHint | None = None
    args = _OpArgs(path, spec, where, key, ignore_case)
    for op, arg in ops.items():
        if op == "exists":
            if not isinstance(arg, bool):
                raise _err("'exists' must be true or false", spec, op)
            exists = arg
            texts.append(f"{path} {'exists' if arg else 'is absent'}")
            continue
        op_test, text, op_hint = _BUILDERS[op](args, op, arg)
        tests.append(op_test)
        texts.append(text)
        # equality narrows the candidates most: it wins over a prefix seen before it
        if op_hint is not None and (op in ("equals", "in") or hint is None):
            hint = op_hint

    def test(ev: Any, getter: Callable[[Any], Any] = getter, tests: list[Callable[[Any], bool]] = tests, exists: bool | None = exists) -> bool:
        value = getter(ev)
        if exists is not None and (value is not MISSING and value is not None) is not exists:
            return False
        if not tests:
            return True
        if value is MISSING:
            # only "equals null" accepts a missing field
            return all(t(None) for t in tests)
        if isinstance(value, list):
            return all(any(t(s) for s in scalars(value)) for t in tests)
        return all(t(value) for t in tests)

    only_op = next(iter(ops)) if len(ops) == 1 else None
    if exists is None and only_op in ("equals", "in") and all(isinstance(v, str) for v in _as_list(ops[only_op], "in", where, key)):
        # the commonest tests, kept to one call: a string among a few, by set membership
        wanted = frozenset(v.lower() if ignore_case else v for v in _as_list(ops[only_op], "in", where, key))
        fallback = tests[0]

        def test_in(ev: Any, getter: Callable[[Any], Any] = getter, wanted: frozenset[str] = wanted) -> bool:
            value = getter(ev)
            if value.__class__ is str:
                return (value.lower() if ignore_case else value) in wanted
            if value is MISSING:
                return False
            if isinstance(value, list):
                return any(fallback(s) for s in scalars(value))
            return fallback(value)

        return Condition(test_in, " and ".join(texts), (path,), hint)
    if len(tests) == 1 and exists is None:
        only = tests[0]

        def test1(ev: Any, getter: Callable[[Any], Any] = getter, only: Callable[[Any], bool] = only) -> bool:
            value = getter(ev)
            if value is MISSING:
                return only(None)
            if isinstance(value, list):
                return any(only(s) for s in scalars(value))
            return only(value)

        return Condition(test1, " and ".join(texts), (path,), hint)
    return Condition(test, " and ".join(texts), (path,), hint)


def compile_condition(node: Any, where: Any = None, key: Any = None) -> Condition:
    """Compile a condition node; ``RuleError`` (with the line) when it is malformed."""
    if isinstance(node, list):
        if not node:
            raise _err("an empty list is not a condition", where, key)
        return _all([compile_condition(n, node, i) for i, n in enumerate(node)])
    if not isinstance(node, dict):
        raise _err(f"a condition must be a mapping, got {type(node).__name__}", where, key)
    if not node:
        raise _err("an empty mapping is not a condition", where, key)
    parts: list[Condition] = []
    for k, v in node.items():
        if not isinstance(k, str):
            raise _err(f"field names must be strings, got {k!r}", node, k)
        if k == "all":
            if not isinstance(v, list) or not v:
                raise _err("'all' takes a non-empty list of conditions", node, k)
            parts.append(_all([compile_condition(n, v, i) for i, n in enumerate(v)]))
        elif k == "any":
            if not isinstance(v, list) or not v:
                raise _err("'any' takes a non-empty list of conditions", node, k)
            parts.append(_any([compile_condition(n, v, i) for i, n in enumerate(v)]))
        elif k == "not":
            parts.append(_not(compile_condition(v, node, k)))
        else:
            parts.append(_field_test(k, v, node, k))
    return _all(parts)


def _conj(tests: tuple[Predicate, ...]) -> Predicate:
    """AND of predicates without a generator per call (this is the hot path)."""
    if len(tests) == 2:
        a, b = tests
        return lambda ev: a(ev) and b(ev)
    if len(tests) == 3:
        a, b, c = tests
        return lambda ev: a(ev) and b(ev) and c(ev)

    def conj(ev: Any) -> bool:
        for t in tests:  # noqa: SIM110 - a loop is faster than all() over a generator
            if not t(ev):
                return False
        return True

    return conj


def _all(parts: list[Condition]) -> Condition:
    if len(parts) == 1:
        return parts[0]
    # test the indexed (most selective) part first
    parts = sorted(parts, key=lambda p: 0 if p.hint is not None and p.hint.values else 1)
    tests = tuple(p.test for p in parts)
    hint = next((p.hint for p in parts if p.hint is not None and p.hint.values), None)
    hint = hint or next((p.hint for p in parts if p.hint is not None), None)
    return Condition(
        _conj(tests),
        " and ".join(f"({p.text})" if " or " in p.text else p.text for p in parts),
        tuple(dict.fromkeys(f for p in parts for f in p.fields)),
        hint,
    )


def _any(parts: list[Condition]) -> Condition:
    if len(parts) == 1:
        return parts[0]
    tests = tuple(p.test for p in parts)
    hint: IndexHint | None = None
    hints = [p.hint for p in parts]
    first = hints[0]
    if first is not None and all(
        h is not None and h.path == first.path and h.lower == first.lower for h in hints
    ):
        hint = IndexHint(
            first.path,
            first.lower,
            frozenset().union(*(h.values for h in hints if h is not None)),
            tuple(p for h in hints if h is not None for p in h.prefixes),
        )
    return Condition(
        lambda ev: any(t(ev) for t in tests),
        " or ".join(p.text for p in parts),
        tuple(dict.fromkeys(f for p in parts for f in p.fields)),
        hint,
    )


def _not(inner: Condition) -> Condition:
    t = inner.test
    return Condition(lambda ev: not t(ev), f"not ({inner.text})", inner.fields, None)
