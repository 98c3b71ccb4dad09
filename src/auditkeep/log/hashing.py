"""RFC 9162 (RFC 6962) Merkle tree hashing with SHA-256.

Leaves and interior nodes get different one-byte prefixes so that a leaf can
never be passed off as an interior node (second-preimage resistance).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = ["EMPTY_ROOT", "HASH_SIZE", "leaf_hash", "mth", "node_hash"]

HASH_SIZE = 32

_sha256 = hashlib.sha256

EMPTY_ROOT: bytes = _sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data), RFC 9162 §2.1.1."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right), RFC 9162 §2.1.1."""
    return _sha256(b"\x01" + left + right).digest()


def mth(hashes: Sequence[bytes]) -> bytes:
    """Merkle Tree Hash over a list of already-hashed leaves (or subtree roots).

    Equal to RFC 9162 MTH when ``hashes`` are the leaf hashes of D[n]. Works
    bottom-up one row at a time: an odd last element is carried up unchanged,
    which gives exactly the RFC's split at the largest power of two below n.
    """
    if not hashes:
        return EMPTY_ROOT
    row = list(hashes)
    while len(row) > 1:
        nxt = [
            _sha256(b"\x01" + a + b).digest() for a, b in zip(row[0::2], row[1::2], strict=False)
        ]
        if len(row) % 2:
            nxt.append(row[-1])
        row = nxt
    return row[0]
