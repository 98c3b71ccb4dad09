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

import hmac
from typing import Any

import rfc8785

_EVENT_LABEL = b"auditkeep/v1/event\x00"


def event_key(salt: bytes, event_id: str) -> bytes:
    return hmac.digest(salt, _EVENT_LABEL + event_id.encode(), "sha256")


def value_bytes(value: Any) -> bytes:
    """JCS bytes of a sealed value (strings are the common case, done without the library)."""
    if isinstance(value, str) and value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return b'"' + value.encode() + b'"'
    return rfc8785.dumps(value)


def commitment(key: bytes, path: str, value: Any) -> str:
    return hmac.digest(key, path.encode() + b"\x00" + value_bytes(value), "sha256").hex()


def open_commitment(key: bytes, path: str, value: Any, expected: str) -> bool:
    """Whether ``value`` is what was committed at ``path`` under ``key``."""
    return hmac.compare_digest(commitment(key, path, value), expected)
