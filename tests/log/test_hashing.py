import hashlib

from hypothesis import given
from hypothesis import strategies as st
from merkle_reference import ref_mth

from auditkeep.log.hashing import EMPTY_ROOT, HASH_SIZE, leaf_hash, mth, node_hash

# RFC 6962 test leaves and the roots of their prefixes, as published in
# transparency-dev/merkle (and certificate-transparency-go before it).
RFC_LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
RFC_ROOTS = [
    bytes.fromhex(h)
    for h in [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
]


def test_empty_root_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert mth([]) == EMPTY_ROOT
    assert HASH_SIZE == 32


def test_leaf_and_node_hash_use_domain_prefixes() -> None:
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    a, b = b"a" * 32, b"b" * 32
    assert node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()
    assert node_hash(a, b) != node_hash(b, a)
    # A leaf of 64 bytes must not hash like the node over its halves.
    assert leaf_hash(a + b) != node_hash(a, b)


def test_rfc6962_roots() -> None:
    hashes = [leaf_hash(x) for x in RFC_LEAVES]
    for n in range(1, 9):
        assert mth(hashes[:n]) == RFC_ROOTS[n - 1], n


@given(st.lists(st.binary(min_size=32, max_size=32), max_size=300))
def test_mth_matches_recursive_definition(hashes: list[bytes]) -> None:
    assert mth(hashes) == ref_mth(hashes)
