"""Sigma string values: wildcards, escaping and matching.

Per the Sigma specification: ``*`` is any run of characters, ``?`` exactly one; a
backslash escapes a wildcard or a backslash (``\\*`` is a literal star, ``\\\\`` one
backslash, ``\\\\*`` a backslash then a wildcard); any other backslash is literal.
Matching is case-insensitive unless ``cased``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass


class Wild:
    """A wildcard token."""

    __slots__ = ("symbol",)

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol

    def __repr__(self) -> str:
        return f"Wild({self.symbol!r})"


MULTI = Wild("*")
SINGLE = Wild("?")


@dataclass(frozen=True)
class CharClass:
    """One character out of a set (what ``windash`` turns a dash into)."""

    chars: frozenset[str]


Part = str | Wild | CharClass

DASHES = frozenset("-/\u2013\u2014\u2015")  # hyphen, slash, en dash, em dash, horizontal bar


def parse(value: str) -> list[Part]:
    """Split a Sigma value into literal text and wildcard tokens (escapes resolved)."""
    parts: list[Part] = []
    buf: list[str] = []
    i, n = 0, len(value)
    while i < n:
        c = value[i]
        if c == "\\":
            nxt = value[i + 1] if i + 1 < n else ""
            if nxt in ("*", "?", "\\"):
                buf.append(nxt)
                i += 2
                continue
            buf.append("\\")
        elif c == "*" or c == "?":
            if buf:
                parts.append("".join(buf))
                buf = []
            parts.append(MULTI if c == "*" else SINGLE)
        else:
            buf.append(c)
        i += 1
    if buf:
        parts.append("".join(buf))
    return normalise(parts)


def escape(text: str) -> str:
    """The Sigma spelling of a literal text (inverse of :func:`parse` for plain text)."""
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?")


def render(parts: Sequence[Part]) -> str:
    """A Sigma value that parses back to ``parts`` (character classes excluded)."""
    out: list[str] = []
    for p in parts:
        if isinstance(p, str):
            out.append(escape(p))
        elif isinstance(p, Wild):
            out.append(p.symbol)
        else:
            raise ValueError("character classes have no Sigma spelling")
    return "".join(out)


def normalise(parts: Sequence[Part]) -> list[Part]:
    """Merge adjacent literals and runs of ``*``."""
    out: list[Part] = []
    for p in parts:
        if isinstance(p, str):
            if not p:
                continue
            if out and isinstance(out[-1], str):
                out[-1] = out[-1] + p
                continue
        elif p is MULTI and out and out[-1] is MULTI:
            continue
        out.append(p)
    return out


def is_plain(parts: Sequence[Part]) -> bool:
    return all(isinstance(p, str) for p in parts)


def literal(parts: Sequence[Part]) -> str:
    return "".join(p for p in parts if isinstance(p, str))


def to_regex(parts: Sequence[Part]) -> str:
    out: list[str] = []
    for p in parts:
        if isinstance(p, str):
            out.append(re.escape(p))
        elif p is MULTI:
            out.append(".*")
        elif p is SINGLE:
            out.append(".")
        else:
            assert isinstance(p, CharClass)
            out.append("[" + "".join(re.escape(c) for c in sorted(p.chars)) + "]")
    return "".join(out)


TextTest = Callable[[str], bool]


def compile_pattern(parts: Sequence[Part], cased: bool = False) -> TextTest:
    """A test of one text against the parsed value: plain equality, prefix, suffix and
    substring use string methods; anything else a regular expression (full match)."""
    parts = normalise(parts)
    if not parts:
        return lambda t: t == ""
    if len(parts) == 1 and parts[0] is MULTI:
        return lambda t: True
    lits = [p for p in parts if isinstance(p, str)]
    shape = tuple("L" if isinstance(p, str) else ("*" if p is MULTI else "x") for p in parts)
    if "x" not in shape and len(lits) == 1:
        lit = lits[0] if cased else lits[0].lower()
        if shape == ("L",):
            return (lambda t: t == lit) if cased else (lambda t: t.lower() == lit)
        if shape == ("L", "*"):
            return (lambda t: t.startswith(lit)) if cased else (lambda t: t.lower().startswith(lit))
        if shape == ("*", "L"):
            return (lambda t: t.endswith(lit)) if cased else (lambda t: t.lower().endswith(lit))
        if shape == ("*", "L", "*"):
            return (lambda t: lit in t) if cased else (lambda t: lit in t.lower())
    rx = re.compile(to_regex(parts), re.DOTALL if cased else re.DOTALL | re.IGNORECASE)
    return lambda t: rx.fullmatch(t) is not None
