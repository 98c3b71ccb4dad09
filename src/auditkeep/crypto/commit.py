"""Commitments to personal fields, so they can be erased without breaking proofs.

A leaf does not hold a personal value; it holds

    event_key  = HMAC-SHA256(subject_salt, "auditkeep/v1/event" || 0x00 || event_id)
    commitment = HMAC-SHA256(event_key, path || 0x00 || JCS(value))

as lowercase hex under ``sealed[path]``. The plaintext and the per-subject salt are kept
beside the leaf. Revealing ``event_key`` opens the fields of one event without exposing the
subject's other events; destroying the salt and the plaintext erases the value for good
while every leaf hash, and so every proof, stays valid. See docs/leaf-format.md.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import rfc8785

_EVENT_LABEL = b"auditkeep/v1/event\x00"
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))
_sha256 = hashlib.sha256


class HmacKey:
    """HMAC-SHA256 with the padded key hashed once (RFC 2104), for many short messages.

    ``hmac.digest`` re-derives the pads on every call, which costs twice as much as the
    hashing itself on event-sized inputs; the append path seals every event.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > 64:
            key = _sha256(key).digest()
        padded = key.ljust(64, b"\0")
        self._inner = _sha256(padded.translate(_IPAD))
        self._outer = _sha256(padded.translate(_OPAD))

    def digest(self, msg: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(msg)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


def event_key(salt: bytes | HmacKey, event_id: str) -> bytes:
    key = salt if isinstance(salt, HmacKey) else HmacKey(salt)
    return key.digest(_EVENT_LABEL + event_id.encode())


def value_bytes(value: Any) -> bytes:
    """JCS bytes of a sealed value (plain ASCII strings, the common case, without the library)."""
    if isinstance(value, str) and value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return b'"' + value.encode() + b'"'
    return rfc8785.dumps(value)


def commitment(key: bytes | HmacKey, path: str, value: Any) -> str:
    k = key if isinstance(key, HmacKey) else HmacKey(key)
    return k.digest(path.encode() + b"\x00" + value_bytes(value)).hex()


def commitments(salt: HmacKey, event_id: str, values: dict[str, Any]) -> dict[str, str]:
    """``{path: commitment}`` of every value of one event: :func:`event_key` and
    :func:`commitment` in one loop (the append path seals every event; function layers were
    a fifth of the cost)."""
    padded = salt.digest(_EVENT_LABEL + event_id.encode()).ljust(64, b"\0")
    inner0 = _sha256(padded.translate(_IPAD))
    outer0 = _sha256(padded.translate(_OPAD))
    out: dict[str, str] = {}
    for path, value in values.items():
        if type(value) is str and value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
            vb = b'"' + value.encode() + b'"'
        else:
            vb = rfc8785.dumps(value)
        inner = inner0.copy()
        inner.update(path.encode() + b"\x00" + vb)
        outer = outer0.copy()
        outer.update(inner.digest())
        out[path] = outer.hexdigest()
    return out


def open_commitment(key: bytes, path: str, value: Any, expected: str) -> bool:
    """Whether ``value`` is what was committed at ``path`` under ``key``."""
    return hmac.compare_digest(commitment(key, path, value), expected)
