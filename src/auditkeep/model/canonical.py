"""Canonical bytes of an event: RFC 8785, the JSON Canonicalization Scheme (JCS).

The fast path is msgspec with sorted keys. It equals JCS exactly when the value holds no
floats (JCS formats numbers the ECMAScript way) and no object key with a character outside
the Basic Multilingual Plane (JCS sorts keys by UTF-16 code units, msgspec by code points).
Validation reports both conditions, and such events take the reference implementation; the
test suite checks the two agree over generated events.
"""

from __future__ import annotations

from typing import Any

import msgspec
import rfc8785

_encoder = msgspec.json.Encoder(order="sorted")


def canonical_bytes(value: Any, exact: bool = False) -> bytes:
    """JCS bytes of ``value`` (an Event or plain JSON data).

    ``exact`` forces the reference implementation; callers pass it when validation found a
    float or a non-BMP key.
    """
    if exact:
        return rfc8785.dumps(msgspec.to_builtins(value))
    return _encoder.encode(value)


def needs_exact(value: Any) -> bool:
    """Whether ``value`` holds something the fast path does not canonicalise (float, astral key)."""
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        for k, v in value.items():
            if not k.isascii() and any(ord(c) > 0xFFFF for c in k):
                return True
            if needs_exact(v):
                return True
        return False
    if isinstance(value, list):
        return any(needs_exact(v) for v in value)
    return False
