"""The Sigma condition language: ``and``, ``or``, ``not``, parentheses, ``1 of X*``,
``all of X*``, ``1 of them`` and ``all of them``.

Precedence, loosest first: ``or``, ``and``, ``not``, ``x of``, parentheses. Anything else
(the old ``| count() by x`` aggregations, ``near``, numbers other than 1) is refused with
the reason; a condition is never half-understood.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from auditkeep.alerts.errors import RuleError


@dataclass(frozen=True)
class Ref:
    name: str


@dataclass(frozen=True)
class Not:
    inner: Node


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class OneOf:
    names: tuple[str, ...]


@dataclass(frozen=True)
class AllOf:
    names: tuple[str, ...]


Node = Ref | Not | And | Or | OneOf | AllOf

_TOKEN = re.compile(r"\s*(?:(\()|(\))|(\|)|([A-Za-z0-9_*.\-]+))")
_IDENT = re.compile(r"^[A-Za-z0-9_.\-]*\*?[A-Za-z0-9_.\-*]*$")


def tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise RuleError(f"condition: unexpected character {text[pos:].lstrip()[:1]!r} in {text!r}")
        if m.group(3):
            raise RuleError(
                "condition: the aggregation syntax ('| count() ...') of old Sigma is not "
                "supported; write a Sigma correlation rule instead"
            )
        tokens.append(m.group(1) or m.group(2) or m.group(4))
        pos = m.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[str], names: list[str]) -> None:
        self.tokens = tokens
        self.i = 0
        self.names = names

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> str:
        tok = self.peek()
        if tok is None:
            raise RuleError("condition: unexpected end of condition")
        self.i += 1
        return tok

    def parse(self) -> Node:
        node = self.expr()
        if self.peek() is not None:
            raise RuleError(f"condition: unexpected {self.peek()!r}")
        return node

    def expr(self) -> Node:
        items = [self.conj()]
        while (tok := self.peek()) is not None and tok.lower() == "or":
            self.take()
            items.append(self.conj())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def conj(self) -> Node:
        items = [self.neg()]
        while (tok := self.peek()) is not None and tok.lower() == "and":
            self.take()
            items.append(self.neg())
        return items[0] if len(items) == 1 else And(tuple(items))

    def neg(self) -> Node:
        tok = self.peek()
        if tok is not None and tok.lower() == "not":
            self.take()
            return Not(self.neg())
        return self.atom()

    def atom(self) -> Node:
        tok = self.take()
        low = tok.lower()
        if tok == "(":
            node = self.expr()
            if self.peek() != ")":
                raise RuleError("condition: missing ')'")
            self.take()
            return node
        if tok == ")":
            raise RuleError("condition: unexpected ')'")
        nxt = self.peek()
        if nxt is not None and nxt.lower() == "of":
            self.take()
            if low not in ("1", "all", "any"):
                raise RuleError(f"condition: '{tok} of' is not supported (only '1 of', 'any of' and 'all of')")
            target = self.take()
            if target.lower() == "them":
                names = [n for n in self.names if not n.startswith("_")]
            else:
                if target in ("(", ")") or target.lower() in ("and", "or", "not", "of"):
                    raise RuleError(f"condition: expected a search identifier pattern after 'of', got {target!r}")
                names = [n for n in self.names if fnmatch.fnmatchcase(n, target)]
                if not names:
                    raise RuleError(f"condition: the pattern {target!r} matches no search identifier")
            if not names:
                raise RuleError("condition: 'them' refers to no search identifier")
            return AllOf(tuple(names)) if low == "all" else OneOf(tuple(names))
        if low in ("and", "or", "of", "them"):
            raise RuleError(f"condition: unexpected {tok!r}")
        if low == "near":
            raise RuleError("condition: 'near' (old Sigma) is not supported; write a temporal correlation rule")
        if "*" in tok:
            raise RuleError(f"condition: a pattern ({tok!r}) needs '1 of' or 'all of'")
        if tok not in self.names:
            raise RuleError(f"condition: unknown search identifier {tok!r}")
        return Ref(tok)


def parse_condition(text: str, names: list[str]) -> Node:
    """Parse ``text`` over the search identifiers ``names``; ``RuleError`` with the reason."""
    if not isinstance(text, str) or not text.strip():
        raise RuleError("condition: empty condition")
    return _Parser(tokenize(text), names).parse()


def evaluate(node: Node, truth: dict[str, bool]) -> bool:
    """Evaluate over known truth values (used by tests; compiled rules use closures)."""
    if isinstance(node, Ref):
        return truth[node.name]
    if isinstance(node, Not):
        return not evaluate(node.inner, truth)
    if isinstance(node, And):
        return all(evaluate(n, truth) for n in node.items)
    if isinstance(node, Or):
        return any(evaluate(n, truth) for n in node.items)
    if isinstance(node, OneOf):
        return any(truth[n] for n in node.names)
    return all(truth[n] for n in node.names)


def referenced(node: Node) -> set[str]:
    if isinstance(node, Ref):
        return {node.name}
    if isinstance(node, Not):
        return referenced(node.inner)
    if isinstance(node, (And, Or)):
        return set().union(*(referenced(n) for n in node.items))
    return set(node.names)
