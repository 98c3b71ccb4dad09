import math
import random

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from merkle_reference import CountingReader, RefTree, leaves
from test_hashing import RFC_LEAVES, RFC_ROOTS

from auditkeep.log.hashing import EMPTY_ROOT, leaf_hash
from auditkeep.log.proofs import (
    ProofError,
    consistency_proof,
    inclusion_proof,
    subtree_hash,
    tree_root,
    verify_consistency,
    verify_inclusion,
)
from auditkeep.log.tiles import Frontier, TileKey


def h(x: str) -> bytes:
    return bytes.fromhex(x)


# Known answers from transparency-dev/merkle proof/verify_test.go (which
# inherited them from certificate-transparency-go). Leaf numbers there are
# 1-based; here they are 0-based indexes.
INCLUSION_VECTORS = [
    (
        0,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        5,
        8,
        [
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (2, 3, [h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (
        1,
        5,
        [
            h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
    (0, 1, []),
]

CONSISTENCY_VECTORS = [
    (1, 1, []),
    (
        1,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        6,
        8,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (
        2,
        5,
        [
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
    (
        6,
        7,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
]


class Log:
    """A tree held as tiles in a dict, grown one appended batch at a time."""

    def __init__(self, hashes: list[bytes]) -> None:
        self.hashes = hashes
        self.frontier = Frontier()
        self.store: dict[TileKey, bytes] = {}
        for i in range(0, len(hashes), 1000):
            self.store.update(self.frontier.append(hashes[i : i + 1000]))
        self.reader = CountingReader(self.store)


RFC_LOG = Log([leaf_hash(x) for x in RFC_LEAVES])


def max_keys(size: int) -> int:
    # Two tiles per level (the path's and the right edge's) is the shape;
    # allow exactly that, no slack.
    levels = math.ceil(math.log(size, 256)) + 1 if size > 1 else 1
    return 2 * levels


# --- known answers -----------------------------------------------------------------


def test_rfc_roots_from_tiles() -> None:
    for n in range(1, 9):
        assert tree_root(n, RFC_LOG.reader) == RFC_ROOTS[n - 1]
    assert tree_root(0, RFC_LOG.reader) == EMPTY_ROOT


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_VECTORS)
def test_rfc_inclusion_vectors(index: int, size: int, proof: list[bytes]) -> None:
    assert inclusion_proof(index, size, RFC_LOG.reader) == proof
    leaf = leaf_hash(RFC_LEAVES[index])
    verify_inclusion(leaf, index, size, proof, RFC_ROOTS[size - 1])


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY_VECTORS)
def test_rfc_consistency_vectors(old: int, new: int, proof: list[bytes]) -> None:
    assert consistency_proof(old, new, RFC_LOG.reader) == proof
    verify_consistency(old, new, proof, RFC_ROOTS[old - 1], RFC_ROOTS[new - 1])


# --- against the RFC's recursive definitions ---------------------------------------------------


@settings(max_examples=12, deadline=None)
@given(st.integers(1, 3000))
@example(1)
@example(256)
@example(257)
@example(2048)
@example(3000)
def test_inclusion_every_index(size: int) -> None:
    log = Log(leaves(size, seed=b"inc"))
    ref = RefTree(log.hashes)
    root = ref.root(size)
    assert tree_root(size, log.reader) == root
    for index in range(size):
        log.reader.reset()
        proof = inclusion_proof(index, size, log.reader)
        assert log.reader.calls == (1 if size > 1 else 0)
        assert len(log.reader.keys) <= max_keys(size)
        assert len(proof) <= math.ceil(math.log2(size)) if size > 1 else proof == []
        assert proof == ref.inclusion(index, size)
        verify_inclusion(log.hashes[index], index, size, proof, root)


def test_inclusion_matches_reference_everywhere_small() -> None:
    # Every older size too: partial tiles are read as prefixes of newer ones.
    log = Log(leaves(300, seed=b"small"))
    ref = RefTree(log.hashes)
    for size in range(1, 301):
        assert tree_root(size, log.reader) == ref.root(size)
        for index in range(size):
            assert inclusion_proof(index, size, log.reader) == ref.inclusion(index, size)


def test_consistency_all_pairs() -> None:
    log = Log(leaves(270, seed=b"pairs"))
    ref = RefTree(log.hashes)
    roots = [ref.root(n) for n in range(271)]
    for new in range(271):
        for old in range(new + 1):
            proof = consistency_proof(old, new, log.reader)
            if 0 < old < new:
                assert proof == ref.consistency(old, new)
            else:
                assert proof == []
            verify_consistency(old, new, proof, roots[old], roots[new])


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_consistency_across_tiles(data: st.DataObject) -> None:
    new = data.draw(st.integers(1, 70_000))
    old = data.draw(st.integers(1, new))
    log = BIG
    log.reader.reset()
    proof = consistency_proof(old, new, log.reader)
    assert log.reader.calls == (1 if old < new else 0)
    assert len(log.reader.keys) <= max_keys(new)
    assert len(proof) <= math.ceil(math.log2(new)) + 1
    if old < new:
        assert proof == BIG_REF.consistency(old, new)
    verify_consistency(old, new, proof, BIG_ROOT(old), BIG_ROOT(new))


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_inclusion_and_roots_big_tree(data: st.DataObject) -> None:
    size = data.draw(st.integers(1, 70_000))
    index = data.draw(st.integers(0, size - 1))
    BIG.reader.reset()
    root = tree_root(size, BIG.reader)
    assert root == BIG_ROOT(size)
    assert BIG.reader.calls == 1
    # The root needs only the right edge: at most two tiles per level.
    assert len(BIG.reader.keys) <= max_keys(size)
    BIG.reader.reset()
    proof = inclusion_proof(index, size, BIG.reader)
    assert BIG.reader.calls == (1 if size > 1 else 0)
    assert len(BIG.reader.keys) <= max_keys(size)
    assert proof == BIG_REF.inclusion(index, size)
    verify_inclusion(BIG.hashes[index], index, size, proof, root)


BIG = Log(leaves(70_000, seed=b"big"))
BIG_REF = RefTree(BIG.hashes)
BIG_ROOT = BIG_REF.root


def test_big_tree_against_reference_samples() -> None:
    rng = random.Random(7)
    for size in [255, 256, 257, 65535, 65536, 65537, 70_000]:
        assert tree_root(size, BIG.reader) == BIG_REF.root(size)
        indexes = [0, 254, 255, 256, 257, 65535, 65536, size - 1, *rng.sample(range(size), 20)]
        for index in indexes:
            if index < size:
                assert inclusion_proof(index, size, BIG.reader) == BIG_REF.inclusion(index, size)
        olds = [1, 2, 255, 256, 257, 65535, 65536, 65537, *rng.sample(range(1, size), 20)]
        for old in olds:
            if old < size:
                assert consistency_proof(old, size, BIG.reader) == BIG_REF.consistency(old, size)


def test_subtree_hash() -> None:
    assert subtree_hash(0, 70_000, BIG.reader) == BIG_ROOT(70_000)
    assert subtree_hash(65536, 70_000, BIG.reader) == BIG_REF.mth(65536, 70_000)
    assert subtree_hash(512, 768, BIG.reader) == BIG_REF.mth(512, 768)
    assert subtree_hash(5, 6, BIG.reader) == BIG.hashes[5]
    with pytest.raises(ValueError, match="not a subtree"):
        subtree_hash(1, 3, BIG.reader)


# --- errors -------------------------------------------------------------------------


def test_generation_errors() -> None:
    log = Log(leaves(300, seed=b"err"))
    with pytest.raises(ValueError, match="not in a tree"):
        inclusion_proof(5, 5, log.reader)
    with pytest.raises(ValueError, match="not in a tree"):
        inclusion_proof(0, 0, log.reader)
    with pytest.raises(ValueError, match="not in a tree"):
        inclusion_proof(-1, 5, log.reader)
    with pytest.raises(ValueError, match="larger than new size"):
        consistency_proof(6, 5, log.reader)
    with pytest.raises(ValueError, match="non-negative"):
        tree_root(-1, log.reader)
    # Beyond the stored tree: the partial tile is too short.
    with pytest.raises(ValueError, match=r"holds only 44 hashes"):
        tree_root(301, log.reader)
    # A tile the store lost.
    del log.store[(0, 0)]
    with pytest.raises(ValueError, match=r"tile/0/000 is needed .* missing"):
        inclusion_proof(3, 300, log.reader)


# --- verification rejects tampering --------------------------------------------------


SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def flip(proof: list[bytes], i: int) -> list[bytes]:
    out = list(proof)
    out[i] = bytes([out[i][0] ^ 8]) + out[i][1:]
    return out


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_inclusion_tampering_rejected(data: st.DataObject) -> None:
    size = data.draw(st.integers(1, 70_000))
    index = data.draw(st.integers(0, size - 1))
    leaf = BIG.hashes[index]
    root = BIG_ROOT(size)
    proof = inclusion_proof(index, size, BIG.reader)
    verify_inclusion(leaf, index, size, proof, root)
    bad: list[tuple[bytes, int, int, list[bytes], bytes]] = [
        (leaf, index + 1, size, proof, root),
        (leaf, index ^ 2, size, proof, root),
        (leaf, index, size * 2, proof, root),
        (leaf, index, size // 2, proof, root),
        (SOME_HASH, index, size, proof, root),
        (leaf, index, size, proof, SOME_HASH),
        (leaf, index, size, proof, EMPTY_ROOT),
        (leaf, index, size, [*proof, root], root),
        (leaf, index, size, [root, *proof], root),
    ]
    if index > 0:
        bad.append((leaf, index - 1, size, proof, root))
    if proof:
        bad.append((leaf, index, size, proof[:-1], root))
        bad.append((leaf, index, size, [proof[0], SOME_HASH, *proof[1:]], root))
        bad.extend((leaf, index, size, flip(proof, i), root) for i in range(len(proof)))
    for case in bad:
        with pytest.raises(ProofError):
            verify_inclusion(*case)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_consistency_tampering_rejected(data: st.DataObject) -> None:
    new = data.draw(st.integers(2, 70_000))
    old = data.draw(st.integers(1, new - 1))
    r1, r2 = BIG_ROOT(old), BIG_ROOT(new)
    proof = consistency_proof(old, new, BIG.reader)
    verify_consistency(old, new, proof, r1, r2)
    bad: list[tuple[int, int, list[bytes], bytes, bytes]] = [
        (old - 1, new, proof, r1, r2),
        (old + 1, new, proof, r1, r2),
        (old ^ 2, new, proof, r1, r2),
        (old, new * 2, proof, r1, r2),
        (old, new // 2, proof, r1, r2),
        (old, new, proof, SOME_HASH, r2),
        (old, new, proof, r1, SOME_HASH),
        (old, new, proof, r2, r1),
        (old, new, [], r1, r2),
        (old, new, [*proof, r1], r1, r2),
        (old, new, [*proof, r2], r1, r2),
        (old, new, [r1, *proof], r1, r2),
        (old, new, [r2, *proof], r1, r2),
        (old, new, [proof[0], *proof], r1, r2),
        (old, new, proof[:-1], r1, r2),
    ]
    bad.extend((old, new, flip(proof, i), r1, r2) for i in range(len(proof)))
    for case in bad:
        with pytest.raises(ProofError):
            verify_consistency(*case)


def test_verify_inclusion_edge_cases() -> None:
    leaf = leaf_hash(b"data")
    verify_inclusion(leaf, 0, 1, [], leaf)
    cases = [
        (leaf, 0, 0, [], leaf),  # empty tree has no leaves
        (leaf, 1, 1, [], leaf),
        (leaf, 0, 1, [], SOME_HASH),
        (SOME_HASH, 0, 1, [], leaf),
        (leaf, -1, 1, [], leaf),
        (leaf[:31], 0, 1, [], leaf[:31]),  # wrong hash size
        (leaf, 0, 1, [b""], leaf),
    ]
    for case in cases:
        with pytest.raises(ProofError):
            verify_inclusion(*case)


def test_verify_consistency_edge_cases() -> None:
    a, b = SOME_HASH, leaf_hash(b"b")
    # Trivially consistent cases (empty proof).
    verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
    verify_consistency(0, 5, [], EMPTY_ROOT, b)
    verify_consistency(3, 3, [], a, a)
    cases = [
        (3, 3, [], a, b),  # same size, different roots
        (0, 0, [], a, b),
        (3, 3, [EMPTY_ROOT], a, a),  # same size, non-empty proof
        (0, 5, [EMPTY_ROOT], EMPTY_ROOT, b),
        (0, 5, [], a, b),  # size 0 must have the empty root
        (1, 0, [], a, b),  # time travel
        (2, 1, [a], a, b),
        (1, 2, [], a, b),  # empty proof for a real step
        (-1, 2, [], a, b),
        (1, 2, [a[:31]], a, b),
    ]
    for case in cases:
        with pytest.raises(ProofError):
            verify_consistency(*case)


def test_proof_error_messages_name_the_check() -> None:
    log = RFC_LOG
    proof = inclusion_proof(5, 8, log.reader)
    leaf = leaf_hash(RFC_LEAVES[5])
    with pytest.raises(ProofError, match="does not lead to the root"):
        verify_inclusion(leaf, 5, 8, proof, RFC_ROOTS[6])
    with pytest.raises(ProofError, match="too short"):
        verify_inclusion(leaf, 5, 8, proof[:-1], RFC_ROOTS[7])
    with pytest.raises(ProofError, match="too long"):
        verify_inclusion(leaf, 5, 8, [*proof, proof[0]], RFC_ROOTS[7])
    with pytest.raises(ProofError, match="not below tree size"):
        verify_inclusion(leaf, 8, 8, proof, RFC_ROOTS[7])
    cp = consistency_proof(6, 8, log.reader)
    with pytest.raises(ProofError, match="old root"):
        verify_consistency(6, 8, cp, RFC_ROOTS[4], RFC_ROOTS[7])
    with pytest.raises(ProofError, match="new root"):
        verify_consistency(6, 8, cp, RFC_ROOTS[5], RFC_ROOTS[6])
    assert issubclass(ProofError, ValueError)
