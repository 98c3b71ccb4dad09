"""An entry as readers see it: the leaf's event with its sealed personal fields opened from
the plaintext kept beside the leaf, or ``[erased]`` where erasure destroyed it.

The one view of an entry, in two shapes: :func:`open_event` (an :class:`Event`, what
``LogReader`` returns in records) and :func:`open_dict` (a plain dict, for the alert runner,
where decoding straight to a dict is several times cheaper than building the struct and
converting it back). Both open the same paths with the same values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from auditkeep.crypto.atrest import MAGIC as SEALED_MAGIC
from auditkeep.crypto.atrest import KeyUnavailable
from auditkeep.model.event import Event, StoredEvent
from auditkeep.model.paths import set_path
from auditkeep.store.base import Entry

ERASED = "[erased]"
NO_KEY = (
    "this store is encrypted at rest and its master key was not given: reading events needs it "
    "([encryption] key_file, key_env or kms; see docs/encryption.md); verify checks the tree without it"
)

_event = msgspec.json.Decoder(Event)
_stored = msgspec.json.Decoder(StoredEvent)
_plain = msgspec.json.Decoder(dict[str, Any])


def _open(entry: Entry, paths: Iterable[str], put: Callable[[str, Any], None]) -> None:
    """Put each sealed path's kept value (or ``[erased]``)."""
    values = _plain.decode(entry.sealed) if entry.sealed else {}
    for path in paths:
        put(path, values.get(path, ERASED))


def open_event(entry: Entry, checked: bool = True) -> Event:
    """The entry's event (its leaf must hold one) with sealed fields opened; ``checked=False``
    decodes a :class:`StoredEvent`, without the model's string patterns (for records that
    are only formatted: exports, forwarding)."""
    try:
        ev = (_event if checked else _stored).decode(entry.leaf)
    except msgspec.DecodeError:
        _refuse_ciphertext(entry)
        raise
    if ev.sealed:
        _open(entry, ev.sealed, lambda path, value: set_path(ev, path, value))
        ev.sealed = None
    return ev


def open_dict(entry: Entry) -> dict[str, Any]:
    """:func:`open_event` as a plain dict (``msgspec.to_builtins`` of it, decoded directly)."""
    try:
        event = _plain.decode(entry.leaf)
    except msgspec.DecodeError:
        _refuse_ciphertext(entry)
        raise
    sealed = event.pop("sealed", None)
    if sealed:
        _open(entry, sealed, lambda path, value: _set(event, path, value))
    return event


def _refuse_ciphertext(entry: Entry) -> None:
    """A leaf that is ciphertext reached a reader without the master key: say so, instead of
    a JSON decoding error (a store encrypted at rest read without its key)."""
    if entry.leaf[: len(SEALED_MAGIC)] == SEALED_MAGIC:
        raise KeyUnavailable(NO_KEY)


def _set(event: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = event
    for key in parents:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[last] = value
