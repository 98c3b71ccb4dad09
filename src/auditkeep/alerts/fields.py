"""Dotted field paths into plain-dict events, and the value helpers every matcher shares.

A path walks dicts key by key. Two things real audit data needs beyond that:

* keys that themselves contain dots (Kubernetes annotations such as
  ``authorization.k8s.io/decision``): when a step is missing, longer dotted keys are tried;
* lists on the way (``requestObject.spec.containers.securityContext.privileged``): the rest
  of the path is applied to every element and the results are collected in a list, so a
  matcher sees "any of these values".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Final

MISSING: Final[Any] = type("Missing", (), {"__repr__": lambda self: "MISSING"})()

Getter = Callable[[Any], Any]


def _walk(node: Any, parts: tuple[str, ...], i: int) -> Any:
    n = len(parts)
    while i < n:
        if isinstance(node, dict):
            key = parts[i]
            if key in node:
                node = node[key]
                i += 1
                continue
            for j in range(i + 2, n + 1):
                joined = ".".join(parts[i:j])
                if joined in node:
                    node = node[joined]
                    i = j
                    break
            else:
                return MISSING
        elif isinstance(node, list):
            out: list[Any] = []
            for el in node:
                v = _walk(el, parts, i)
                if v is MISSING:
                    continue
                if isinstance(v, list):
                    out.extend(v)
                else:
                    out.append(v)
            return out if out else MISSING
        else:
            return MISSING
    return node


def compile_path(path: str) -> Getter:
    """A function returning the value at ``path`` in a dict, or :data:`MISSING`.

    The one- and two-step cases are specialised because they are most of what rules ask
    for and the engine calls them for every candidate rule.
    """
    parts = tuple(path.split("."))
    if not path or any(not p for p in parts):
        raise ValueError(f"invalid field path {path!r}")
    if len(parts) == 1:
        key = parts[0]

        def get1(obj: Any) -> Any:
            if isinstance(obj, dict):
                return obj.get(key, MISSING)
            return _walk(obj, parts, 0)

        return get1
    if len(parts) == 2:
        k1, k2 = parts

        def get2(obj: Any) -> Any:
            if isinstance(obj, dict):
                node = obj.get(k1, MISSING)
                if isinstance(node, dict) and k2 in node:
                    return node[k2]
            return _walk(obj, parts, 0)

        return get2

    def getn(obj: Any) -> Any:
        return _walk(obj, parts, 0)

    return getn


def get_path(obj: Any, path: str) -> Any:
    """The value at ``path`` or :data:`MISSING` (uncompiled; for one-off look-ups)."""
    return _walk(obj, tuple(path.split(".")), 0)


def scalars(value: Any) -> Iterator[Any]:
    """The scalar values of a field value: itself, or the elements of a list (nested lists
    flattened). Dicts are yielded whole; callers decide what a dict means to them."""
    if isinstance(value, list):
        for v in value:
            yield from scalars(v)
    elif value is not MISSING:
        yield value


def leaves(value: Any) -> Iterator[Any]:
    """Every scalar under ``value``, descending into dicts and lists."""
    if isinstance(value, dict):
        for v in value.values():
            yield from leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from leaves(v)
    elif value is not MISSING:
        yield value


def to_text(value: Any) -> str | None:
    """The text a string matcher compares against: strings as they are, numbers in decimal,
    booleans as ``true``/``false``; ``None`` for null and containers."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return None


def to_number(value: Any) -> float | int | None:
    """A number from a field value (numbers, or strings that spell one); else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                f = float(value)
            except ValueError:
                return None
            return f if f == f else None  # NaN compares false to everything; refuse it
    return None


def render_value(value: Any, limit: int = 120) -> str:
    """A short human rendering of a field value for explanations."""
    if value is MISSING or value is None:
        return "(none)"
    if isinstance(value, list):
        text = ", ".join(render_value(v, limit) for v in value[:5])
        if len(value) > 5:
            text += f", … ({len(value)} values)"
        return f"[{text}]"
    text = to_text(value) or str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
