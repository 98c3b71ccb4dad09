"""C2SP tlog-tiles layout (https://c2sp.org/tlog-tiles) and the tree's right edge.

A tile at level L holds up to 256 consecutive hashes of complete subtrees of
height 8*L: level 0 holds leaf hashes, level 1 the roots of full level-0
tiles, and so on. The rightmost tile of each level is usually partial (1..255
hashes); those partial tiles are exactly the state needed to keep appending.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence

from auditkeep.log.hashing import EMPTY_ROOT, HASH_SIZE

__all__ = [
    "MAX_LEVEL",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "Frontier",
    "TileKey",
    "entries_path",
    "parse_tile_path",
    "partial_tile_keys",
    "split_hashes",
    "tile_path",
]

TILE_HEIGHT = 8
TILE_WIDTH = 256
MAX_LEVEL = 63

TileKey = tuple[int, int]  # (level, index)

_sha256 = hashlib.sha256
_FULL_BYTES = TILE_WIDTH * HASH_SIZE


def _encode_index(index: int) -> str:
    # 1234067 -> "x001/x234/067": every element is 3 digits, all but the last
    # prefixed with "x", so a directory and a file never share a name.
    parts = [f"{index % 1000:03d}"]
    index //= 1000
    while index > 0:
        parts.append(f"x{index % 1000:03d}")
        index //= 1000
    return "/".join(reversed(parts))


def _check_width(width: int) -> None:
    if not 1 <= width <= TILE_WIDTH:
        raise ValueError(f"tile width must be 1..{TILE_WIDTH}, got {width}")


def tile_path(level: int, index: int, width: int = TILE_WIDTH) -> str:
    """Path of a Merkle tree tile: ``tile/<L>/<N>[.p/<W>]``."""
    if not 0 <= level <= MAX_LEVEL:
        raise ValueError(f"tile level must be 0..{MAX_LEVEL}, got {level}")
    if index < 0:
        raise ValueError(f"tile index must be non-negative, got {index}")
    _check_width(width)
    suffix = "" if width == TILE_WIDTH else f".p/{width}"
    return f"tile/{level}/{_encode_index(index)}{suffix}"


def entries_path(index: int, width: int = TILE_WIDTH) -> str:
    """Path of an entry bundle: ``tile/entries/<N>[.p/<W>]``."""
    if index < 0:
        raise ValueError(f"entry bundle index must be non-negative, got {index}")
    _check_width(width)
    suffix = "" if width == TILE_WIDTH else f".p/{width}"
    return f"tile/entries/{_encode_index(index)}{suffix}"


_LEVEL_RE = re.compile(r"0|[1-9][0-9]?")
_WIDTH_RE = re.compile(r"[1-9][0-9]{0,2}")
_LAST_RE = re.compile(r"[0-9]{3}")
_INNER_RE = re.compile(r"x[0-9]{3}")


def parse_tile_path(path: str) -> tuple[int | None, int, int]:
    """Parse a canonical tile or entry-bundle path into (level, index, width).

    ``level`` is None for an entry bundle; ``width`` is 256 for a full tile.
    Only the canonical encoding is accepted, so every tile has exactly one
    path (no leading zeros, no ``x000`` leading element, no ``.p/256``).
    """
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "tile":
        raise ValueError(f"not a tile path (want tile/<L>/<N>[.p/<W>]): {path!r}")
    level: int | None
    if parts[1] == "entries":
        level = None
    elif _LEVEL_RE.fullmatch(parts[1]):
        level = int(parts[1])
        if level > MAX_LEVEL:
            raise ValueError(f"tile level must be 0..{MAX_LEVEL}, got {level}: {path!r}")
    else:
        raise ValueError(
            f"tile level must be a decimal 0..{MAX_LEVEL} without leading zeros: {path!r}"
        )
    rest = parts[2:]
    width = TILE_WIDTH
    if len(rest) >= 2 and rest[-2].endswith(".p"):
        w = rest[-1]
        if not _WIDTH_RE.fullmatch(w) or int(w) >= TILE_WIDTH:
            raise ValueError(
                f"partial tile width must be a decimal 1..{TILE_WIDTH - 1} "
                f"without leading zeros: {path!r}"
            )
        width = int(w)
        rest = [*rest[:-2], rest[-2][: -len(".p")]]
    *inner, last = rest
    if not _LAST_RE.fullmatch(last) or not all(_INNER_RE.fullmatch(p) for p in inner):
        raise ValueError(
            f"tile index must be 3-digit elements, all but the last prefixed with 'x': {path!r}"
        )
    if inner and inner[0] == "x000":
        raise ValueError(f"tile index has a non-canonical leading x000 element: {path!r}")
    index = 0
    for p in inner:
        index = index * 1000 + int(p[1:])
    index = index * 1000 + int(last)
    return level, index, width


def partial_tile_keys(size: int) -> list[tuple[int, int, int]]:
    """(level, index, width) of the partial tile at each level for a tree of ``size``.

    Per the spec, the partial tile at level L has floor(size / 256**L) mod 256
    hashes; levels where that is 0 have no partial tile.
    """
    if size < 0:
        raise ValueError(f"tree size must be non-negative, got {size}")
    keys = []
    level = 0
    n = size
    while n > 0:
        width = n % TILE_WIDTH
        n //= TILE_WIDTH
        if width:
            keys.append((level, n, width))
        level += 1
    return keys


def split_hashes(data: bytes, count: int | None = None) -> list[bytes]:
    """Split tile data into its 32-byte hashes (only the first ``count`` if given)."""
    if count is None:
        if len(data) % HASH_SIZE:
            raise ValueError(f"tile data length {len(data)} is not a multiple of {HASH_SIZE}")
        count = len(data) // HASH_SIZE
    elif len(data) < count * HASH_SIZE:
        raise ValueError(f"tile data holds {len(data) // HASH_SIZE} hashes, need {count}")
    return [data[i : i + HASH_SIZE] for i in range(0, count * HASH_SIZE, HASH_SIZE)]


def _perfect_root(hashes: list[bytes]) -> bytes:
    # Root of a perfect subtree over 2**k hashes; one list pass per row keeps
    # the interpreter overhead per SHA-256 call low.
    row = hashes
    while len(row) > 1:
        row = [_sha256(b"\x01" + a + b).digest() for a, b in zip(row[0::2], row[1::2], strict=True)]
    return row[0]


class Frontier:
    """The right edge of a Merkle tree: the hashes of the partial tile at each level.

    Appending needs nothing else: a level-L tile that fills up is hashed to
    one level-(L+1) hash and leaves the frontier. Holding < 256 hashes per
    level, the state is at most a few kilobytes even for 2**64 leaves.
    """

    __slots__ = ("_levels", "_size")

    def __init__(self) -> None:
        self._levels: list[list[bytes]] = []
        self._size = 0

    @classmethod
    def load(cls, size: int, tiles: Mapping[TileKey, bytes]) -> Frontier:
        """Rebuild the frontier of a tree of ``size`` leaves from its stored partial tiles.

        A stored tile may be longer than needed (a later version of the same
        tile); only its prefix is used.
        """
        f = cls()
        for level, index, width in partial_tile_keys(size):
            data = tiles.get((level, index))
            if data is None:
                raise ValueError(
                    f"tile {tile_path(level, index, width)} is needed for size {size} but missing"
                )
            if len(data) < width * HASH_SIZE:
                raise ValueError(
                    f"tile {tile_path(level, index, width)} is needed for size {size} but "
                    f"holds only {len(data) // HASH_SIZE} hashes"
                )
            while len(f._levels) <= level:
                f._levels.append([])
            f._levels[level] = split_hashes(data, width)
        f._size = size
        return f

    @property
    def size(self) -> int:
        return self._size

    def copy(self) -> Frontier:
        f = Frontier()
        f._levels = [list(level) for level in self._levels]
        f._size = self._size
        return f

    def partial_tiles(self) -> dict[TileKey, bytes]:
        """The current data of every partial tile (the state ``load`` needs)."""
        return {
            (level, index): b"".join(self._levels[level])
            for level, index, _ in partial_tile_keys(self._size)
        }

    def root(self) -> bytes:
        """RFC 9162 Merkle Tree Hash of the whole tree."""
        if self._size == 0:
            return EMPTY_ROOT
        # The tree's perfect subtrees, left to right, are the power-of-two
        # groups of each level's partial tile, highest level first.
        peaks: list[bytes] = []
        for level in reversed(self._levels):
            pos = 0
            n = len(level)
            for bit in (128, 64, 32, 16, 8, 4, 2, 1):
                if n & bit:
                    peaks.append(_perfect_root(level[pos : pos + bit]))
                    pos += bit
        acc = peaks[-1]
        for h in reversed(peaks[:-1]):
            acc = _sha256(b"\x01" + h + acc).digest()
        return acc

    def append(self, leaf_hashes: Sequence[bytes]) -> dict[TileKey, bytes]:
        """Append leaf hashes; return every tile whose content changed.

        Each value is the tile's full current data (32 bytes per hash): full
        tiles with 256 hashes, the partial tile of each touched level with
        the hashes it holds now.
        """
        incoming = list(leaf_hashes)
        if not incoming:
            return {}
        lengths = set(map(len, incoming))
        if lengths != {HASH_SIZE}:
            raise ValueError(
                f"leaf hashes must be {HASH_SIZE} bytes, got lengths {sorted(lengths)}"
            )
        changed: dict[TileKey, bytes] = {}
        new_size = self._size + len(incoming)
        level = 0
        scale = 1  # leaves per hash at this level: 256**level
        while incoming:
            if level > MAX_LEVEL:
                raise OverflowError("tree exceeds the 64 tile levels of tlog-tiles")
            if len(self._levels) == level:
                self._levels.append([])
            current = self._levels[level]
            # Index of the first tile touched: the one the old partial tile is in.
            first_tile = self._size // (scale * TILE_WIDTH)
            current.extend(incoming)
            full = len(current) // TILE_WIDTH
            promoted = []
            for t in range(full):
                chunk = current[t * TILE_WIDTH : (t + 1) * TILE_WIDTH]
                changed[(level, first_tile + t)] = b"".join(chunk)
                promoted.append(_perfect_root(chunk))
            if full:
                current = current[full * TILE_WIDTH :]
                self._levels[level] = current
            if current:
                changed[(level, first_tile + full)] = b"".join(current)
            incoming = promoted
            level += 1
            scale *= TILE_WIDTH
        self._size = new_size
        return changed

    def __repr__(self) -> str:
        return f"Frontier(size={self._size})"
