"""RFC 9162 inclusion and consistency proofs, computed from stored tiles.

Every hash a proof needs is a Merkle Tree Hash of a range that splits into
O(log n) perfect subtrees. A perfect subtree of height 8*L + r is the root of
2**r consecutive hashes in one level-L tile, so a proof reads about two tiles
per level (the path's own and the right edge's), all in one call to the
reader, and hashes at most 255 times per tile.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from threading import Lock

from auditkeep.errors import IntegrityError
from auditkeep.log.hashing import EMPTY_ROOT, HASH_SIZE
from auditkeep.log.tiles import TILE_HEIGHT, TILE_WIDTH, TileKey, tile_path

__all__ = [
    "ProofError",
    "TileReader",
    "consistency_proof",
    "inclusion_proof",
    "subtree_hash",
    "tree_root",
    "verify_consistency",
    "verify_inclusion",
]

TileReader = Callable[[Sequence[TileKey]], Mapping[TileKey, bytes]]

_sha256 = hashlib.sha256


class ProofError(IntegrityError, ValueError):
    """A proof did not verify; the message names the check that failed."""


# --- tile-row cache --------------------------------------------------------

_Rows = tuple[bytes, ...]  # row r = concatenated hashes of perfect subtrees of height r


class _RowCache:
    """LRU of the interior rows of tiles, keyed by the tile bytes themselves.

    Keying by content (not by tile coordinates) makes the cache safe to share
    between logs and tree sizes: equal bytes always give equal rows. Level-0
    tiles churn (one per random proof), so they get their own LRU and cannot
    evict the few hot upper-level tiles that nearly every proof reads.
    """

    def __init__(self, max_tiles: int) -> None:
        self._max = max_tiles
        self._entries: OrderedDict[bytes, _Rows] = OrderedDict()
        self._lock = Lock()

    def get(self, data: bytes) -> _Rows:
        with self._lock:
            rows = self._entries.get(data)
            if rows is not None:
                self._entries.move_to_end(data)
                return rows
        rows = _tile_rows(data)
        with self._lock:
            self._entries[data] = rows
            if len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return rows

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _tile_rows(data: bytes) -> _Rows:
    # Row r holds the roots of the complete 2**r-aligned groups of the tile's
    # hashes; an incomplete group at the end of a partial tile is not a node.
    row = [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]
    rows = [data]
    for _ in range(TILE_HEIGHT - 1):
        row = [
            _sha256(b"\x01" + a + b).digest() for a, b in zip(row[0::2], row[1::2], strict=False)
        ]
        if not row:
            break
        rows.append(b"".join(row))
    return tuple(rows)


_LOW_CACHE = _RowCache(512)  # level-0 tiles
_HIGH_CACHE = _RowCache(512)  # level >= 1 tiles


def clear_cache() -> None:
    """Drop the cached tile rows (memory only; results never depend on it)."""
    _LOW_CACHE.clear()
    _HIGH_CACHE.clear()


# --- decomposition of ranges into perfect subtrees ------------------------

# A perfect subtree is (height, index): leaves [index << height, (index + 1) << height).
_Node = tuple[int, int]


def _largest_pow2_below(n: int) -> int:
    """Largest power of two strictly less than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _range_nodes(start: int, end: int) -> list[_Node]:
    """Perfect subtrees, left to right, whose right fold is MTH(D[start:end]).

    Valid for the ranges RFC 9162 proofs use: ``start`` is a multiple of the
    smallest power of two >= end - start, so each piece is aligned.
    """
    size = end - start
    if size <= 0:
        raise ValueError(f"empty or negative range [{start}, {end})")
    span = 1 << (size - 1).bit_length()
    if start % span:
        raise ValueError(
            f"range [{start}, {end}) is not a subtree of the Merkle tree "
            f"(start must be a multiple of {span})"
        )
    nodes = []
    while size:
        height = size.bit_length() - 1
        nodes.append((height, start >> height))
        start += 1 << height
        size -= 1 << height
    return nodes


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Ranges whose MTHs form PATH(index, D[size]), leaf to root (RFC 9162 §2.1.3.1)."""
    out = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _largest_pow2_below(hi - lo)
        if index < lo + k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo += k
    out.reverse()
    return out


def _consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """Ranges whose MTHs form SUBPROOF(old, D[new], true), RFC 9162 §2.1.4.1."""
    out = []
    lo, hi = 0, new_size
    m = old_size  # relative to lo
    complete = True  # the RFC's b: is the old tree's root this subtree's root?
    while True:
        n = hi - lo
        if m == n:
            if not complete:
                out.append((lo, hi))
            break
        k = _largest_pow2_below(n)
        if m <= k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo += k
            m -= k
            complete = False
    out.reverse()
    return out


# --- reading tiles and hashing nodes ----------------------------------------


class _TileSet:
    """The tiles of one proof: what to read, then the node hashes from them."""

    def __init__(self, size: int) -> None:
        self._size = size  # the tree every node lies in; bounds each tile's width
        self._widths: dict[TileKey, int] = {}
        self._data: dict[TileKey, bytes] = {}

    def want(self, nodes: Iterable[_Node]) -> None:
        for height, index in nodes:
            level, r = divmod(height, TILE_HEIGHT)
            tile = (index << r) >> TILE_HEIGHT
            key = (level, tile)
            if key not in self._widths:
                # Hashes of this tile complete at this tree size; using the
                # same prefix for every node keeps one cache entry per tile.
                complete = (self._size >> (TILE_HEIGHT * level)) - tile * TILE_WIDTH
                self._widths[key] = min(TILE_WIDTH, complete)

    def read(self, read: TileReader) -> None:
        keys = sorted(self._widths)
        got = read(keys)
        for key in keys:
            width = self._widths[key]
            data = got.get(key)
            path = tile_path(key[0], key[1], width)
            if data is None:
                raise ValueError(f"tile {path} is needed for tree size {self._size} but missing")
            if len(data) < width * HASH_SIZE:
                raise ValueError(
                    f"tile {path} is needed for tree size {self._size} but holds only "
                    f"{len(data) // HASH_SIZE} hashes"
                )
            self._data[key] = bytes(data[: width * HASH_SIZE])

    def node(self, height: int, index: int) -> bytes:
        level, r = divmod(height, TILE_HEIGHT)
        first = index << r
        key = (level, first >> TILE_HEIGHT)
        data = self._data[key]
        pos = (first & (TILE_WIDTH - 1)) >> r  # index within row r of the tile
        if r == 0:
            return data[pos * HASH_SIZE : (pos + 1) * HASH_SIZE]
        cache = _LOW_CACHE if level == 0 else _HIGH_CACHE
        row = cache.get(data)[r]
        return row[pos * HASH_SIZE : (pos + 1) * HASH_SIZE]

    def range_hash(self, nodes: list[_Node]) -> bytes:
        acc = self.node(*nodes[-1])
        for height, index in reversed(nodes[:-1]):
            acc = _sha256(b"\x01" + self.node(height, index) + acc).digest()
        return acc


def _hash_ranges(ranges: list[tuple[int, int]], size: int, read: TileReader) -> list[bytes]:
    """MTH of each range, all within a tree of ``size`` leaves, with one tile read."""
    if not ranges:
        return []
    tiles = _TileSet(size)
    decomposed = [_range_nodes(a, b) for a, b in ranges]
    for nodes in decomposed:
        tiles.want(nodes)
    tiles.read(read)
    return [tiles.range_hash(nodes) for nodes in decomposed]


def _check_size(size: int, what: str = "tree size") -> None:
    if size < 0:
        raise ValueError(f"{what} must be non-negative, got {size}")


def tree_root(size: int, read: TileReader) -> bytes:
    """Root hash of the tree of the first ``size`` leaves (any size up to the stored one)."""
    _check_size(size)
    if size == 0:
        return EMPTY_ROOT
    return _hash_ranges([(0, size)], size, read)[0]


def subtree_hash(start: int, end: int, read: TileReader) -> bytes:
    """MTH(D[start:end]) for a subtree of the Merkle tree.

    ``start`` must be a multiple of the smallest power of two >= end - start
    (true of every subtree in RFC 9162's recursive definitions).
    """
    _check_size(start, "start")
    return _hash_ranges([(start, end)], end, read)[0]


def inclusion_proof(index: int, size: int, read: TileReader) -> list[bytes]:
    """RFC 9162 §2.1.3.1 inclusion proof for leaf ``index`` in the tree of ``size`` leaves."""
    _check_size(size)
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    return _hash_ranges(_inclusion_ranges(index, size), size, read)


def consistency_proof(old_size: int, new_size: int, read: TileReader) -> list[bytes]:
    """RFC 9162 §2.1.4.1 consistency proof from ``old_size`` to ``new_size``.

    The RFC defines proofs for 0 < old_size < new_size; the trivial cases
    old_size == 0 and old_size == new_size have the empty proof.
    """
    _check_size(old_size, "old size")
    _check_size(new_size, "new size")
    if old_size > new_size:
        raise ValueError(f"old size {old_size} is larger than new size {new_size}")
    if old_size == 0 or old_size == new_size:
        return []
    return _hash_ranges(_consistency_ranges(old_size, new_size), new_size, read)


# --- verification -----------------------------------------------------------


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} is {len(value)} bytes, want {HASH_SIZE}")


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check an inclusion proof by RFC 9162 §2.1.3.2; raise ProofError if it fails."""
    _check_hash(leaf_hash, "leaf hash")
    _check_hash(root, "root hash")
    for i, p in enumerate(proof):
        _check_hash(p, f"proof[{i}]")
    if index < 0 or size < 0:
        raise ProofError(f"negative index {index} or size {size}")
    # 1. The leaf must be in the tree.
    if index >= size:
        raise ProofError(f"leaf index {index} is not below tree size {size}")
    # 2.-3.
    fn, sn = index, size - 1
    r = leaf_hash
    # 4.
    for i, p in enumerate(proof):
        if sn == 0:
            raise ProofError(f"proof is too long for index {index} in size {size} (at proof[{i}])")
        if fn & 1 or fn == sn:
            r = _sha256(b"\x01" + p + r).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    # 5.
    if sn != 0:
        raise ProofError(f"proof is too short for index {index} in size {size}")
    if not hmac.compare_digest(r, root):
        raise ProofError(
            f"inclusion proof for index {index} does not lead to the root of size {size}"
        )


def verify_consistency(
    old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes
) -> None:
    """Check a consistency proof by RFC 9162 §2.1.4.2; raise ProofError if it fails.

    The RFC's algorithm covers 0 < old_size < new_size. Outside that range:
    equal sizes need equal roots and an empty proof; an empty old tree is
    consistent with any tree, with an empty proof.
    """
    _check_hash(old_root, "old root")
    _check_hash(new_root, "new root")
    for i, p in enumerate(proof):
        _check_hash(p, f"proof[{i}]")
    if old_size < 0 or new_size < 0:
        raise ProofError(f"negative size: old {old_size}, new {new_size}")
    if old_size > new_size:
        raise ProofError(f"old size {old_size} is larger than new size {new_size}")
    if old_size == new_size:
        if proof:
            raise ProofError("proof between equal sizes must be empty")
        if not hmac.compare_digest(old_root, new_root):
            raise ProofError(f"roots differ for the same size {old_size}")
        return
    if old_size == 0:
        if proof:
            raise ProofError("proof from the empty tree must be empty")
        if not hmac.compare_digest(old_root, EMPTY_ROOT):
            raise ProofError("old root of size 0 is not the empty-tree hash")
        return
    # 1.
    if not proof:
        raise ProofError(f"empty consistency proof from size {old_size} to {new_size}")
    path = list(proof)
    # 2.
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    # 3.
    fn, sn = old_size - 1, new_size - 1
    # 4.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5.
    fr = sr = path[0]
    # 6.
    for i, c in enumerate(path[1:], start=1):
        if sn == 0:
            raise ProofError(
                f"consistency proof from {old_size} to {new_size} is too long (at element {i})"
            )
        if fn & 1 or fn == sn:
            fr = _sha256(b"\x01" + c + fr).digest()
            sr = _sha256(b"\x01" + c + sr).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = _sha256(b"\x01" + sr + c).digest()
        fn >>= 1
        sn >>= 1
    # 7.
    if sn != 0:
        raise ProofError(f"consistency proof from {old_size} to {new_size} is too short")
    if not hmac.compare_digest(fr, old_root):
        raise ProofError(f"consistency proof does not lead to the old root (size {old_size})")
    if not hmac.compare_digest(sr, new_root):
        raise ProofError(f"consistency proof does not lead to the new root (size {new_size})")
