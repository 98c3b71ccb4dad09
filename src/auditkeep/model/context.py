"""The audit context: who is acting and in which request, without passing it around.

``with auditkeep.context(actor="alice", request_id="r-1"):`` makes every ``record()`` in
that block (and in threads started with a copy of the context, and asyncio tasks created
in it) carry those fields. Explicit fields given to ``record()`` win; nested contexts merge,
the inner one winning field by field.

A scope is stored already merged with its parent, as a partial event
(``{"actor": {...}, "source": {...}, "metadata": {...}}``), so ``record()`` pays one dict
lookup per part and never walks a chain.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from types import TracebackType
from typing import Any

__all__ = ["Scope", "bind", "context", "current", "merge_into"]

# Parts of an event merged key by key; every other context key is a plain value.
_NESTED = ("actor", "source", "resource", "metadata")


class Scope:
    """One active context: its merged fields. Mutable only through :func:`bind`."""

    __slots__ = ("fields",)

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields


_current: contextvars.ContextVar[Scope | None] = contextvars.ContextVar("auditkeep_context", default=None)


def _as_part(name: str, value: Any) -> dict[str, Any]:
    if name == "actor" and isinstance(value, str):
        return {"id": value}
    if name == "source" and isinstance(value, str):
        return {"service": value}
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"context {name} must be a mapping{' or a string' if name in ('actor', 'source') else ''}")


def _normalise(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Context keyword arguments as a partial event.

    Shorthands: ``actor="alice"``, ``source="billing"`` (the service), and the request
    fields ``request_id``/``trace_id`` (into ``source``), ``ip``/``user_agent``/``session_id``
    (into ``actor``). ``None`` values are ignored, so a middleware can pass what it has.
    """
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if value is None:
            continue
        if name in _NESTED:
            part = _as_part(name, value)
            out[name] = {**out.get(name, {}), **part}
        elif name in ("request_id", "trace_id"):
            out.setdefault("source", {})[name] = value
        elif name in ("ip", "user_agent", "session_id"):
            out.setdefault("actor", {})[name] = value
        else:
            out[name] = value
    return out


def _merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``: nested parts merge key by key, other fields are replaced."""
    out = dict(base)
    for name, value in top.items():
        below = out.get(name)
        if name in _NESTED and isinstance(below, dict) and isinstance(value, dict):
            out[name] = {**below, **value}
        else:
            out[name] = value
    return out


class context:  # lower case: used like a function, ``with auditkeep.context(...)``
    """Fields merged into every event recorded inside the ``with`` block.

    Accepts any event field (``actor``, ``source``, ``resource``, ``metadata``, ``category``,
    ...) plus the shorthands ``request_id``, ``trace_id``, ``ip``, ``user_agent`` and
    ``session_id``. Works across threads that copy the context and across asyncio tasks.
    """

    __slots__ = ("_fields", "_token")

    def __init__(self, **fields: Any) -> None:
        self._fields = _normalise(fields)
        self._token: contextvars.Token[Scope | None] | None = None

    def __enter__(self) -> Scope:
        parent = _current.get()
        merged = _merge(parent.fields, self._fields) if parent is not None else self._fields
        scope = Scope(merged)
        self._token = _current.set(scope)
        return scope

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None


def current() -> dict[str, Any]:
    """The fields of the innermost active context (a copy), or ``{}``."""
    scope = _current.get()
    return {} if scope is None else _merge({}, scope.fields)


def bind(**fields: Any) -> bool:
    """Add fields to the innermost active context in place; False when there is none.

    For facts learnt after the scope was opened, such as the actor a request authenticates
    as: a middleware's per-request event then sees them, even when the handler ran in a
    thread pool with a copy of the context (the copy shares the scope).
    """
    scope = _current.get()
    if scope is None:
        return False
    scope.fields = _merge(scope.fields, _normalise(fields))
    return True


def active() -> bool:
    """Whether a context scope is active (else :func:`merge_into` changes nothing)."""
    return _current.get() is not None


def merge_into(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` (the explicit ones) completed from the active context; explicit ones win."""
    scope = _current.get()
    if scope is None:
        return fields
    for name, value in scope.fields.items():
        mine = fields.get(name)
        if mine is None:
            fields[name] = value
        elif name in _NESTED and isinstance(value, dict) and isinstance(mine, Mapping):
            fields[name] = {**value, **mine}
    return fields
