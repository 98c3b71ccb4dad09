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
    inner = salt._inner.copy()
    inner.update(_EVENT_LABEL + event_id.encode())
    outer = salt._outer.copy()
    outer.update(inner.digest())
    padded = outer.digest() + _ZEROS  # the 32-byte event key, padded to SHA-256's block
    inner0 = _sha256(padded.translate(_IPAD))
    outer0 = _sha256(padded.translate(_OPAD))
    out: dict[str, str] = {}
    prefixes = _PREFIXES
    for path, value in values.items():
        if type(value) is str and value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
            # path 0x00 '"' value '"': the JCS form of a plain string, its prefix kept per path
            pre = prefixes.get(path)
            if pre is None:
                pre = _prefix(path)
            msg = pre + value.encode() + b'"'
        else:
            msg = path.encode() + b"\x00" + rfc8785.dumps(value)
        inner = inner0.copy()
        inner.update(msg)
        outer = outer0.copy()
        outer.update(inner.digest())
        out[path] = outer.hexdigest()
    return out


_ZEROS = bytes(32)
_PREFIXES: dict[str, bytes] = {}


def _prefix(path: str) -> bytes:
    pre = path.encode() + b'\x00"'
    if len(_PREFIXES) < 1024:  # the configured personal paths: a handful
        _PREFIXES[path] = pre
    return pre


def open_commitment(key: bytes, path: str, value: Any, expected: str) -> bool:
    """Whether ``value`` is what was committed at ``path`` under ``key``."""
    return hmac.compare_digest(commitment(key, path, value), expected)
