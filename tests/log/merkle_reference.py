"""RFC 9162 §2.1 straight from its recursive definitions, for checking the real code.

Deliberately naive (recursive, list slicing, no tiles): it shares no code
with auditkeep.log except the two hash functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from auditkeep.log.hashing import EMPTY_ROOT, leaf_hash, node_hash
from auditkeep.log.tiles import TileKey


def k_split(n: int) -> int:
    """Largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(hashes: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes (the RFC's MTH with the leaf hashing already done)."""
    n = len(hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return hashes[0]
    k = k_split(n)
    return node_hash(ref_mth(hashes[:k]), ref_mth(hashes[k:]))


class RefTree:
    """PATH and PROOF of RFC 9162 §2.1.3.1 / §2.1.4.1 over D[lo:hi] ranges of one list.

    The recursion is the RFC's, word for word; MTH results are memoised per
    range only so that checking every index of a few-thousand-leaf tree is fast.
    """

    def __init__(self, hashes: Sequence[bytes]) -> None:
        self.hashes = list(hashes)
        self._memo: dict[tuple[int, int], bytes] = {}

    def mth(self, lo: int, hi: int) -> bytes:
        n = hi - lo
        if n == 0:
            return EMPTY_ROOT
        if n == 1:
            return self.hashes[lo]
        got = self._memo.get((lo, hi))
        if got is None:
            k = k_split(n)
            got = node_hash(self.mth(lo, lo + k), self.mth(lo + k, hi))
            self._memo[(lo, hi)] = got
        return got

    def path(self, m: int, lo: int, hi: int) -> list[bytes]:
        n = hi - lo
        if n == 1:
            return []
        k = k_split(n)
        if m < k:
            return [*self.path(m, lo, lo + k), self.mth(lo + k, hi)]
        return [*self.path(m - k, lo + k, hi), self.mth(lo, lo + k)]

    def subproof(self, m: int, lo: int, hi: int, b: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if b else [self.mth(lo, hi)]
        k = k_split(n)
        if m <= k:
            return [*self.subproof(m, lo, lo + k, b), self.mth(lo + k, hi)]
        return [*self.subproof(m - k, lo + k, hi, False), self.mth(lo, lo + k)]

    def root(self, size: int) -> bytes:
        return self.mth(0, size)

    def inclusion(self, index: int, size: int) -> list[bytes]:
        """PATH(index, D[size])."""
        return self.path(index, 0, size)

    def consistency(self, old: int, size: int) -> list[bytes]:
        """PROOF(old, D[size]) = SUBPROOF(old, D[size], true)."""
        return self.subproof(old, 0, size, True)


def ref_tiles(hashes: Sequence[bytes]) -> dict[TileKey, bytes]:
    """Every tile of the tree over ``hashes`` by the tlog-tiles formula.

    The n-th tile at level l holds MTH(D[(n*256 + i) * 256**l : (n*256 + i + 1) * 256**l])
    for each complete subtree i; the rightmost one is partial.
    """
    size = len(hashes)
    tiles: dict[TileKey, bytes] = {}
    level = 0
    while 256**level <= size:
        span = 256**level
        count = size // span  # complete level-l hashes
        row = [ref_mth(hashes[j * span : (j + 1) * span]) for j in range(count)]
        for t in range(0, count, 256):
            tiles[(level, t // 256)] = b"".join(row[t : t + 256])
        level += 1
    return tiles


def leaves(n: int, seed: bytes = b"") -> list[bytes]:
    """n distinct leaf hashes."""
    return [leaf_hash(seed + i.to_bytes(8, "big")) for i in range(n)]


class CountingReader:
    """A TileReader over a dict that records how it is called."""

    def __init__(self, store: Mapping[TileKey, bytes]) -> None:
        self.store = store
        self.calls = 0
        self.keys: list[TileKey] = []

    def __call__(self, keys: Sequence[TileKey]) -> dict[TileKey, bytes]:
        self.calls += 1
        self.keys.extend(keys)
        return {k: self.store[k] for k in keys if k in self.store}

    def reset(self) -> None:
        self.calls = 0
        self.keys = []
