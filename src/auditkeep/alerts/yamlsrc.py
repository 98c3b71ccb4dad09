"""YAML that remembers where things were written, so errors can name the line.

Mappings load as :class:`LDict` and sequences as :class:`LList`: ordinary ``dict`` and
``list`` subclasses carrying the 1-based line of the node and of each key or item. Duplicate
keys are an error (PyYAML would silently keep the last one).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

from auditkeep.alerts.errors import RuleError


class LDict(dict[Any, Any]):
    """A mapping from YAML with the line of the mapping and of each key."""

    line: int = 0
    key_lines: dict[Any, int]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key_lines = {}

    def line_of(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)


class LList(list[Any]):
    """A sequence from YAML with the line of the sequence and of each item."""

    line: int = 0
    item_lines: list[int]

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.item_lines = []

    def line_of(self, i: int) -> int:
        return self.item_lines[i] if 0 <= i < len(self.item_lines) else self.line


class _Loader(yaml.SafeLoader):
    pass


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> Iterator[LDict]:
    out = LDict()
    out.line = node.start_mark.line + 1
    yield out
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise RuleError("a mapping key must be a scalar", line=key_node.start_mark.line + 1) from None
        if key in out:
            raise RuleError(f"duplicate key {key!r}", line=key_node.start_mark.line + 1)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> Iterator[LList]:
    out = LList()
    out.line = node.start_mark.line + 1
    yield out
    for item in node.value:
        out.append(loader.construct_object(item, deep=True))
        out.item_lines.append(item.start_mark.line + 1)


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def load_documents(text: str) -> list[tuple[Any, int]]:
    """Every document of ``text`` with its first line; ``RuleError`` (with a line) if the
    YAML itself is malformed."""
    out: list[tuple[Any, int]] = []
    try:
        loader = _Loader(text)
        try:
            while loader.check_node():
                node = loader.get_node()
                if node is None:
                    continue
                out.append((loader.construct_document(node), node.start_mark.line + 1))
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = exc.problem or str(exc)
        raise RuleError(f"invalid YAML: {reason}", line=line) from None
    except yaml.YAMLError as exc:
        raise RuleError(f"invalid YAML: {exc}") from None
    return out


def line_of(container: Any, key: Any = None, default: int | None = None) -> int | None:
    """Best-known line of ``container[key]`` (or of the container itself)."""
    if isinstance(container, LDict):
        return container.line_of(key) if key is not None else container.line
    if isinstance(container, LList):
        return container.line_of(key) if isinstance(key, int) else container.line
    return default


def plain(value: Any) -> Any:
    """The value with LDict/LList turned into plain dict/list (and dates into strings), for
    fingerprints and storage."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
