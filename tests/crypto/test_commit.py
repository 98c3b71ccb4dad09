"""Commitments to personal fields: the append path's one-loop ``commitments`` agrees with
the documented construction (``event_key`` then ``commitment`` per path, RFC 2104 HMAC)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from auditkeep.crypto.commit import (
    HmacKey,
    commitment,
    commitments,
    event_key,
    open_commitment,
    value_bytes,
)

values = st.one_of(
    st.text(max_size=60),
    st.integers(-(2**53) + 1, 2**53 - 1),
    st.booleans(),
    st.lists(st.text(max_size=10), max_size=3),
)


@given(st.binary(min_size=1, max_size=80), st.text(max_size=40), st.dictionaries(st.text(max_size=20), values, max_size=4))
def test_commitments_agree_with_the_construction(salt: bytes, event_id: str, vals: dict[str, Any]) -> None:
    try:
        expected: dict[str, str] | type = {}
        key = event_key(salt, event_id)
        assert key == hmac.digest(salt, b"auditkeep/v1/event\x00" + event_id.encode(), "sha256")
        expected = {p: commitment(key, p, v) for p, v in vals.items()}
    except UnicodeEncodeError:  # a lone surrogate: refused by validation before sealing
        expected = UnicodeEncodeError
    try:
        got: dict[str, str] | type = commitments(HmacKey(salt), event_id, vals)
    except UnicodeEncodeError:
        got = UnicodeEncodeError
    assert got == expected
    if isinstance(got, dict):
        for p, v in vals.items():
            want = hmac.new(key, p.encode() + b"\x00" + value_bytes(v), hashlib.sha256).hexdigest()
            assert got[p] == want
            assert open_commitment(key, p, v, got[p])


def test_a_changed_value_does_not_open() -> None:
    salt = b"s" * 32
    got = commitments(HmacKey(salt), "e1", {"actor.name": "Alice"})
    key = event_key(salt, "e1")
    assert open_commitment(key, "actor.name", "Alice", got["actor.name"])
    assert not open_commitment(key, "actor.name", "Alicf", got["actor.name"])
    assert not open_commitment(event_key(salt, "e2"), "actor.name", "Alice", got["actor.name"])
