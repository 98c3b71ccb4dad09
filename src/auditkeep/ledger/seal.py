"""Taking personal fields out of an event before it becomes a leaf (see crypto/commit.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from auditkeep.crypto.commit import HmacKey, commitments
from auditkeep.model.event import Event

_STRUCT_GROUPS = ("actor", "resource", "source")
_replace = msgspec.structs.replace

# What :meth:`Sealer.split` finds in an event: its personal values by path, and the changes
# to the event (a struct group or the metadata without them) that take them out.
Split = tuple[dict[str, Any], dict[str, Any]]


class Sealer:
    """Compiled accessors for the configured personal paths (the append path calls these for
    every event, so dotted paths are resolved once here, not per event)."""

    def __init__(self, paths: Sequence[str], subject_field: str) -> None:
        self.paths = tuple(paths)
        self.groups: dict[str, list[str]] = {}
        self.meta: list[tuple[str, list[str]]] = []
        for path in self.paths:
            head, _, rest = path.partition(".")
            if head in _STRUCT_GROUPS and "." not in rest:
                self.groups.setdefault(head, []).append(rest)
            elif head == "metadata" and rest:
                self.meta.append((path, rest.split(".")))
            else:
                raise ValueError(f"personal field {path!r} is not a sealable path")
        # (group, [(field, path)]): the paths formatted once, not per event
        self._fields = [(g, [(f, f"{g}.{f}") for f in fs]) for g, fs in self.groups.items()]
        self.subject_field = subject_field
        head, _, rest = subject_field.partition(".")
        self._subject_path = (head, rest.split(".") if rest else [])
        # The default subject, actor.id, is a required string: read it without the walk.
        self._actor_id = subject_field == "actor.id"

    def split(self, ev: Event) -> Split | None:
        """The personal values present in ``ev`` by path, and the changes to ``ev`` that
        remove them (None when there are none). One pass does both: the append path needs
        both for every event."""
        values: dict[str, Any] | None = None
        changes: dict[str, Any] = {}
        for group, fields in self._fields:
            part = getattr(ev, group)
            if part is None:
                continue
            cleared: dict[str, None] | None = None
            for f, path in fields:
                v = getattr(part, f)
                if v is not None:
                    if values is None:
                        values = {}
                    values[path] = v
                    if cleared is None:
                        cleared = {}
                    cleared[f] = None
            if cleared is not None:
                changes[group] = _replace(part, **cleared)
        if self.meta and ev.metadata:
            meta = original = ev.metadata
            for path, keys in self.meta:
                node: Any = original
                for k in keys:
                    if not isinstance(node, dict) or k not in node:
                        node = None
                        break
                    node = node[k]
                if node is not None:
                    if values is None:
                        values = {}
                    values[path] = node
                    meta = _without(meta, keys)
            if meta is not original:
                changes["metadata"] = meta or None
        if values is None:
            return None
        return values, changes

    def extract(self, ev: Event) -> dict[str, Any] | None:
        """The personal values present in ``ev``, by path (None when there are none)."""
        found = self.split(ev)
        return None if found is None else found[0]

    def subject(self, ev: Event) -> str:
        if self._actor_id:
            return ev.actor.id
        head, rest = self._subject_path
        node: Any = getattr(ev, head, None)
        for k in rest:
            if node is None:
                break
            node = node.get(k) if isinstance(node, dict) else getattr(node, k, None)
        return str(node) if node is not None else "_"

    def seal(self, ev: Event, found: Split, salt: HmacKey, **changes: Any) -> Event:
        """A copy of ``ev`` without the values ``found`` by :meth:`split`, their commitments
        under ``sealed`` and ``changes`` applied (``ev`` itself, the caller's object, is
        left as it was)."""
        changes.update(self.sealing(ev, found, salt))
        return _replace(ev, **changes)

    @staticmethod
    def sealing(ev: Event, found: Split, salt: HmacKey) -> dict[str, Any]:
        """The fields that seal ``ev``: those ``found`` by :meth:`split` without their values,
        and the values' commitments under ``sealed`` (``found``'s dict, made for ``ev`` alone,
        is filled in and returned)."""
        values, removed = found
        removed["sealed"] = commitments(salt, ev.id or "", values)
        return removed


def _without(d: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    """``d`` without the value at ``keys``, copying only the dicts on the way."""
    head = keys[0]
    if head not in d:
        return d
    out = dict(d)
    if len(keys) == 1:
        del out[head]
    elif isinstance(out[head], dict):
        out[head] = _without(out[head], keys[1:])
    return out
