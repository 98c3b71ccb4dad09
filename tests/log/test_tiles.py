import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from merkle_reference import leaves, ref_mth, ref_tiles

from auditkeep.log.hashing import EMPTY_ROOT
from auditkeep.log.tiles import (
    TILE_HEIGHT,
    TILE_WIDTH,
    Frontier,
    TileKey,
    entries_path,
    parse_tile_path,
    partial_tile_keys,
    tile_path,
)


def test_constants() -> None:
    assert (TILE_HEIGHT, TILE_WIDTH) == (8, 256)


# --- paths -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "index", "width", "path"),
    [
        (0, 0, 256, "tile/0/000"),
        (0, 1, 256, "tile/0/001"),
        (0, 999, 256, "tile/0/999"),
        (0, 1000, 256, "tile/0/x001/000"),
        (0, 1234067, 256, "tile/0/x001/x234/067"),  # the spec's example
        (0, 1234, 5, "tile/0/x001/234.p/5"),
        (3, 1_000_000, 255, "tile/3/x001/x000/000.p/255"),
        (63, 7, 1, "tile/63/007.p/1"),
    ],
)
def test_tile_path(level: int, index: int, width: int, path: str) -> None:
    assert tile_path(level, index, width) == path
    assert parse_tile_path(path) == (level, index, width)


def test_entries_path() -> None:
    assert entries_path(0) == "tile/entries/000"
    assert entries_path(1234067, 17) == "tile/entries/x001/x234/067.p/17"
    assert parse_tile_path("tile/entries/x001/x234/067.p/17") == (None, 1234067, 17)
    assert parse_tile_path("tile/entries/005") == (None, 5, 256)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((64, 0, 256), "level"),
        ((-1, 0, 256), "level"),
        ((0, -1, 256), "index"),
        ((0, 0, 0), "width"),
        ((0, 0, 257), "width"),
    ],
)
def test_tile_path_rejects(args: tuple[int, int, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tile_path(*args)


def test_entries_path_rejects() -> None:
    with pytest.raises(ValueError, match="width"):
        entries_path(0, 0)
    with pytest.raises(ValueError, match="index"):
        entries_path(-5)


@given(
    st.integers(0, 63) | st.none(),
    st.integers(0, 2**64),
    st.integers(1, 256),
)
def test_path_round_trip(level: int | None, index: int, width: int) -> None:
    path = entries_path(index, width) if level is None else tile_path(level, index, width)
    assert parse_tile_path(path) == (level, index, width)


@pytest.mark.parametrize(
    "path",
    [
        "",
        "tile",
        "tile/0",
        "tiles/0/000",
        "/tile/0/000",
        "tile/0/000/",
        "tile/00/000",  # level with leading zero
        "tile/01/000",
        "tile/64/000",  # level out of range
        "tile/-1/000",
        "tile/a/000",
        "tile/0/0",  # index element not 3 digits
        "tile/0/0000",
        "tile/0/1",
        "tile/0/x001",  # last element must not have x
        "tile/0/001/002",  # inner element must have x
        "tile/0/x000/001",  # non-canonical zero padding
        "tile/0/x000/x001/001",
        "tile/0/x01/001",
        "tile/0/x0001/001",
        "tile/0/X001/001",
        "tile/0/001.p/0",  # width 0
        "tile/0/001.p/256",  # a full tile has no .p suffix
        "tile/0/001.p/300",
        "tile/0/001.p/05",  # width with leading zero
        "tile/0/001.p/",
        "tile/0/001.p",
        "tile/0/001.p/5/6",
        "tile/0/001.q/5",
        "tile/0/ 01",
        "tile/0/+01",
        "tile/0/\u0661\u0662\u0663",  # non-ASCII digits
        "tile/entries/x000/001",
        "tile/entries/001.p/256",
        "tile/entries",
    ],
)
def test_parse_tile_path_rejects(path: str) -> None:
    with pytest.raises(ValueError):
        parse_tile_path(path)


# --- partial tiles -----------------------------------------------------------


def test_partial_tile_keys_spec_examples() -> None:
    # "a tree of size 70,000 will be represented by 273 full level 0 tiles, one
    # partial level 0 tile of width 112, one full level 1 tile, one partial
    # level 1 tile of width 17, and one partial level 2 tile of width 1."
    assert partial_tile_keys(70_000) == [(0, 273, 112), (1, 1, 17), (2, 0, 1)]
    # "a tree of size 256 will be represented by a full level 0 tile and a
    # partial level 1 tile of width 1."
    assert partial_tile_keys(256) == [(1, 0, 1)]
    assert partial_tile_keys(0) == []
    assert partial_tile_keys(1) == [(0, 0, 1)]
    assert partial_tile_keys(65536) == [(2, 0, 1)]
    assert partial_tile_keys(65537) == [(0, 256, 1), (2, 0, 1)]
    with pytest.raises(ValueError):
        partial_tile_keys(-1)


# --- Frontier ------------------------------------------------------------------


def build(hashes: list[bytes], batches: list[int]) -> tuple[Frontier, dict[TileKey, bytes]]:
    """Append ``hashes`` in batches of the given sizes; the store keeps the latest tile data."""
    f = Frontier()
    store: dict[TileKey, bytes] = {}
    pos = 0
    for n in batches:
        before = dict(store)
        changed = f.append(hashes[pos : pos + n])
        pos += n
        store.update(changed)
        # What append reports is exactly what changed.
        assert {k for k in store if before.get(k) != store[k]} == set(changed)
        assert f.size == pos
    assert pos == len(hashes)
    return f, store


def splits(total: int, rng: random.Random) -> list[list[int]]:
    """Several ways to cut ``total`` leaves into append batches."""
    ways = [[total], [1] * min(total, 600) + ([total - 600] if total > 600 else [])]
    for _ in range(3):
        cut, left = [], total
        while left:
            n = min(left, rng.choice([1, 2, 7, 255, 256, 257, 1000, 4096, 70000]))
            cut.append(n)
            left -= n
        ways.append(cut)
    return ways


@pytest.mark.parametrize("size", [1, 2, 255, 256, 257, 511, 512, 65535, 65536, 65537])
def test_frontier_boundaries(size: int) -> None:
    hashes = leaves(size)
    expected_tiles = ref_tiles(hashes)
    expected_root = ref_mth(hashes)
    rng = random.Random(size)
    for batches in splits(size, rng):
        f, store = build(hashes, batches)
        assert store == expected_tiles, batches[:5]
        assert f.root() == expected_root
        assert f.partial_tiles() == {
            (lv, ix): store[(lv, ix)] for lv, ix, _ in partial_tile_keys(size)
        }


def test_frontier_tile_shapes() -> None:
    f = Frontier()
    changed = f.append(leaves(257))
    assert sorted(changed) == [(0, 0), (0, 1), (1, 0)]
    assert len(changed[(0, 0)]) == 256 * 32
    assert len(changed[(0, 1)]) == 32
    assert changed[(1, 0)] == ref_mth(leaves(256))
    # Appending one more leaf touches only the level-0 partial tile.
    more = f.append(leaves(1, seed=b"x"))
    assert list(more) == [(0, 1)]
    assert len(more[(0, 1)]) == 64


def test_frontier_roots_at_every_size() -> None:
    hashes = leaves(600, seed=b"r")
    f = Frontier()
    assert f.root() == EMPTY_ROOT
    for i, h in enumerate(hashes):
        f.append([h])
        assert f.root() == ref_mth(hashes[: i + 1]), i + 1


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 3000), st.integers(0, 3000), st.integers(1, 600))
def test_frontier_load_resumes(size: int, extra: int, batch: int) -> None:
    hashes = leaves(size + extra, seed=b"load")
    full, store = build(hashes, [len(hashes)])
    # Load at the older size from the newest stored tiles (longer partial tiles).
    f = Frontier.load(size, store)
    assert f.size == size
    assert f.root() == ref_mth(hashes[:size])
    resumed: dict[TileKey, bytes] = {k: v for k, v in store.items()}
    for start in range(size, size + extra, batch):
        resumed.update(f.append(hashes[start : start + batch]))
    assert resumed == store
    assert f.root() == full.root()


def test_frontier_load_exact_partial_tiles() -> None:
    hashes = leaves(70_000, seed=b"exact")
    f, _ = build(hashes, [70_000])
    g = Frontier.load(70_000, f.partial_tiles())
    assert g.root() == f.root()
    tail = leaves(1000, seed=b"tail")
    assert g.append(tail) == f.append(tail)


def test_frontier_load_errors() -> None:
    hashes = leaves(300)
    _, store = build(hashes, [300])
    missing = {k: v for k, v in store.items() if k != (0, 1)}
    with pytest.raises(ValueError, match=r"tile/0/001\.p/44 .*missing"):
        Frontier.load(300, missing)
    short = dict(store)
    short[(0, 1)] = store[(0, 1)][:32]
    with pytest.raises(ValueError, match="holds only 1 hashes"):
        Frontier.load(300, short)
    with pytest.raises(ValueError):
        Frontier.load(-1, store)


def test_frontier_rejects_bad_leaf_hashes() -> None:
    f = Frontier()
    with pytest.raises(ValueError, match="32 bytes"):
        f.append([b"\x00" * 32, b"\x00" * 31])
    assert f.size == 0
    assert f.append([]) == {}


def test_frontier_copy_is_independent() -> None:
    f = Frontier()
    f.append(leaves(300))
    g = f.copy()
    g.append(leaves(5, seed=b"g"))
    assert f.size == 300
    assert g.size == 305
    assert f.root() == ref_mth(leaves(300))
