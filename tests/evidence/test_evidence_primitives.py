"""The bundle checker's own primitives, against auditkeep's: canonical JSON of revealed
values (RFC 8785, vs the rfc8785 package) and the range proof (vs the Merkle code in
auditkeep.log and a reference tree hash)."""

from __future__ import annotations

import hashlib
import math

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from auditkeep.evidence.tlogcheck import (
    jcs,
    mth,
    range_proof_nodes,
    range_root,
    time_ns,
    verify_consistency,
)
from auditkeep.log.hashing import mth as reference_mth
from auditkeep.log.proofs import consistency_proof, subtree_hash
from auditkeep.model.timefmt import format_rfc3339

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@settings(deadline=None)
@given(json_values)
def test_jcs_matches_rfc8785(value: object) -> None:
    assert jcs(value) == rfc8785.dumps(value)


@settings(deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: x != 0 and math.isfinite(x)))
def test_number_form_round_trips(x: float) -> None:
    assert float(jcs(x)) == x


def _leaves(n: int) -> list[bytes]:
    return [hashlib.sha256(b"\x00" + i.to_bytes(4, "big")).digest() for i in range(n)]


def _tiles(leaves: list[bytes]):  # type: ignore[no-untyped-def]
    """A tile reader over an in-memory tree (level-L tiles of 256 hashes)."""
    levels = [leaves]
    while len(levels[-1]) >= 256:
        row = levels[-1]
        levels.append([reference_mth(row[i : i + 256]) for i in range(0, len(row) - 255, 256)])

    def read(keys):  # type: ignore[no-untyped-def]
        return {(lv, t): b"".join(levels[lv][t * 256 : (t + 1) * 256]) for lv, t in keys}

    return read


@settings(deadline=None)
@given(st.data())
def test_range_root_is_the_tree_root(data: st.DataObject) -> None:
    size = data.draw(st.integers(1, 1500))
    first = data.draw(st.integers(0, size - 1))
    end = data.draw(st.integers(first + 1, size))
    leaves = _leaves(size)
    read = _tiles(leaves)
    proof = [subtree_hash(lo, hi, read) for lo, hi in range_proof_nodes(first, end, size)]
    it = iter(proof)
    assert range_root(first, leaves[first:end], size, it) == reference_mth(leaves) == mth(leaves)
    assert next(it, None) is None
    # Any other leaf in the range, or a shifted range, gives another root.
    pos = data.draw(st.integers(first, end - 1))
    changed = list(leaves[first:end])
    changed[pos - first] = hashlib.sha256(b"x").digest()
    assert range_root(first, changed, size, iter(proof)) != reference_mth(leaves)
    assert len(proof) <= 2 * max(1, size.bit_length())


@settings(deadline=None)
@given(st.data())
def test_consistency_check_matches_auditkeep(data: st.DataObject) -> None:
    new = data.draw(st.integers(1, 1200))
    old = data.draw(st.integers(0, new))
    leaves = _leaves(new)
    proof = consistency_proof(old, new, _tiles(leaves))
    assert verify_consistency(old, new, proof, reference_mth(leaves[:old]), reference_mth(leaves)) is None
    if 0 < old < new:
        assert verify_consistency(old, new, proof, hashlib.sha256(b"y").digest(), reference_mth(leaves)) is not None


@settings(deadline=None)
@given(st.integers(0, 2**62))
def test_time_parse_matches_the_leaf_format(ns: int) -> None:
    assert time_ns(format_rfc3339(ns)) == ns


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([None, "user.login", "doc.read", 7]),
            st.sampled_from([None, {"id": "u-1"}, {"id": "u-2", "ip": "x"}, {"name": "no id"}, "not an object"]),
            st.sampled_from([None, "success", "failure", "absent"]),
            st.integers(-5_000, 105_000),
        ),
        max_size=60,
    )
)
def test_report_counts_of_a_chunk_equal_counts_one_by_one(rows: list[tuple[object, object, object, int]]) -> None:
    """Stats.add_leaves (one decode per chunk, bins by bisection) counts as Stats.add does,
    including leaves without the counted fields and times outside the window."""
    import json

    from auditkeep.evidence.report import Stats

    one, many = Stats(0, 100_000), Stats(0, 100_000)
    leaves, received = [], []
    for action, actor, outcome, ns in rows:
        ev = {k: v for k, v in (("action", action), ("actor", actor), ("outcome", outcome)) if v is not None}
        if outcome == "absent":
            del ev["outcome"]
        elif outcome is None:
            ev["outcome"] = None
        leaf = json.dumps(ev, sort_keys=True).encode()
        one.add(json.loads(leaf), ns)
        leaves.append(leaf)
        received.append(ns)
    many.add_leaves(leaves, received)
    assert (many.total, many.bins, many.action, many.actor, many.outcome) == (one.total, one.bins, one.action, one.actor, one.outcome)
