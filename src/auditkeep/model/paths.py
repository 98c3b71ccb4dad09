"""Dotted field paths into an event (``actor.ip``, ``metadata.request.user.email``)."""

from __future__ import annotations

from typing import Any

import msgspec

from auditkeep.model.event import Event

_MISSING: Any = object()


def get_path(ev: Event, path: str, default: Any = None) -> Any:
    """The value at ``path``, or ``default`` when any step is absent."""
    head, _, rest = path.partition(".")
    node: Any = getattr(ev, head, _MISSING) if head in Event.__struct_fields__ else _MISSING
    while rest and node is not _MISSING and node is not None:
        key, _, rest = rest.partition(".")
        if isinstance(node, dict):
            node = node.get(key, _MISSING)
        elif isinstance(node, msgspec.Struct) and key in node.__struct_fields__:
            node = getattr(node, key)
        else:
            node = _MISSING
    if node is _MISSING or node is None:
        return default
    return node


def pop_path(ev: Event, path: str) -> Any:
    """Remove and return the value at ``path`` (None when absent). Top-level fields may not
    be popped; struct fields are set to None, dict keys deleted."""
    parent_path, _, last = path.rpartition(".")
    if not parent_path:
        raise ValueError(f"cannot remove top-level field {path!r}")
    parent = get_path(ev, parent_path)
    if isinstance(parent, dict):
        return parent.pop(last, None)
    if isinstance(parent, msgspec.Struct) and last in parent.__struct_fields__:
        value = getattr(parent, last)
        if path == "actor.id":
            raise ValueError("actor.id is required and cannot be removed")
        setattr(parent, last, None)
        return value
    return None


def set_path(ev: Event, path: str, value: Any) -> None:
    """Set ``path`` (creating metadata objects on the way)."""
    parent_path, _, last = path.rpartition(".")
    if not parent_path:
        setattr(ev, last, value)
        return
    head, _, rest = parent_path.partition(".")
    node: Any = getattr(ev, head)
    if node is None and head == "metadata":
        node = ev.metadata = {}
    for key in rest.split(".") if rest else []:
        node = node.setdefault(key, {}) if isinstance(node, dict) else getattr(node, key)
    if isinstance(node, dict):
        node[last] = value
    else:
        setattr(node, last, value)
