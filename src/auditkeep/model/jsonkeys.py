"""Refusing JSON objects that repeat a key.

``{"action": "x.y", "action": "z.w"}`` means different things to different parsers (most keep
the last value, some the first, some refuse it); a leaf's RFC 8785 canonical bytes must stand
for one reading only, so such input is refused, naming the key.

The check costs little on the path every event takes: msgspec (which keeps the last value)
decodes the input, re-encodes what it kept, and the two texts must hold as many ``:``. A colon
is either in a string — and decoding changes no string's colons unless the input spells one as
``\\u003a``, which sends it to the exact check — or ends an object key, so a repeated key shows
as a missing colon. Only then (or when an explicit ``null`` was dropped in decoding) does the
exact check parse the input again, keeping every pair, to name the repeated key.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from auditkeep.model.errors import MalformedJSON

_encode = msgspec.json.Encoder()


class _Pairs(list[tuple[str, Any]]):
    """An object as every (key, value) pair it was written with."""


_pairs_decoder = json.JSONDecoder(object_pairs_hook=_Pairs)


def keys_unique(data: bytes, decoded: Any) -> bool:
    """True when no object of ``data`` can repeat a key (the cheap test); False means maybe."""
    # one scan for ``\u003a`` / ``\u003A`` (and, harmlessly, the other \u003X escapes)
    return b"\\u003" not in data and data.count(b":") == _encode.encode(decoded).count(b":")


def duplicate_key_reason(data: bytes, decoded: Any) -> str | None:
    """Why ``data`` (decoded as ``decoded``) is refused for a repeated key, or None."""
    if keys_unique(data, decoded):
        return None
    found = find_duplicate_key(data)
    return None if found is None else f"malformed JSON: duplicate key {found[1]!r} (a key may appear once in an object)"


def check_unique_keys(raw: bytes | str, decoded: Any, array: bool = False) -> None:
    """ValidationError naming a key that an object of ``raw`` repeats; ``decoded`` is what
    msgspec made of ``raw``. With ``array``, ``raw`` is a JSON array of events and the error
    carries the position of the event."""
    data = raw.encode() if isinstance(raw, str) else raw
    if keys_unique(data, decoded):
        return
    found = find_duplicate_key(data, array)
    if found is not None:
        position, path = found
        key = path.rpartition(".")[2]
        raise MalformedJSON(f"malformed JSON: duplicate key {key!r} (a key may appear once in an object)", path, position)


def find_duplicate_key(data: bytes, array: bool = False) -> tuple[int | None, str] | None:
    """(event position or None, dotted path) of the first repeated key of ``data``, or None."""
    try:
        value = _pairs_decoder.decode(data.decode("utf-8"))
    except (ValueError, RecursionError):  # msgspec read it; leave its verdict standing
        return None
    if array and isinstance(value, list):
        for i, item in enumerate(value):
            path = _walk(item, "")
            if path is not None:
                return i, path
        return None
    path = _walk(value, "")
    return None if path is None else (None, path)


def _walk(value: Any, prefix: str) -> str | None:
    if isinstance(value, _Pairs):
        seen: set[str] = set()
        for key, item in value:
            path = f"{prefix}{key}"
            if key in seen:
                return path
            seen.add(key)
            inner = _walk(item, path + ".")
            if inner is not None:
                return inner
    elif isinstance(value, list):
        for item in value:
            inner = _walk(item, prefix)
            if inner is not None:
                return inner
    return None
