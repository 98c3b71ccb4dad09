"""Canonical bytes equal RFC 8785 as computed by an independent implementation."""

from __future__ import annotations

import math
from typing import Any

import msgspec
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from auditkeep.model import canonical_bytes, convert_event, validate_event
from auditkeep.model.canonical import needs_exact
from auditkeep.model.validate import MAX_SAFE_INT

# Keys and strings across the planes: ASCII, Latin, BMP private use, astral (emoji).
text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), min_codepoint=0, max_codepoint=0x10FFFF),
    max_size=12,
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-MAX_SAFE_INT, max_value=MAX_SAFE_INT)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=20,
)
idents = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.:@", min_size=1, max_size=20)


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "actor": {"id": draw(idents)},
        "action": draw(st.sampled_from(["user.login", "db.query", "k8s.pods.create", "x"])),
        "time": draw(
            st.sampled_from(
                ["2024-05-01T12:00:00Z", "2024-05-01T12:00:00.123456789Z", "1999-12-31T23:59:59+05:30"]
            )
        ),
    }
    if draw(st.booleans()):
        ev["actor"]["name"] = draw(text)
    if draw(st.booleans()):
        ev["reason"] = draw(text)
    if draw(st.booleans()):
        ev["resource"] = {"type": draw(text), "id": draw(text)}
    if draw(st.booleans()):
        ev["metadata"] = draw(st.dictionaries(text, json_values, max_size=6))
    return ev


@settings(max_examples=400, deadline=None)
@given(events())
def test_canonical_equals_rfc8785(raw: dict[str, Any]) -> None:
    ev = convert_event(raw)
    checked = validate_event(ev)
    ours = canonical_bytes(ev, exact=checked.exact)
    reference = rfc8785.dumps(msgspec.to_builtins(ev))
    assert ours == reference


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(text, json_values, max_size=6))
def test_fast_path_only_taken_when_equal(value: dict[str, Any]) -> None:
    """Where validation says the fast path is safe, it must give the reference bytes."""
    if not needs_exact(value):
        assert canonical_bytes(value) == rfc8785.dumps(value)


def test_numbers_follow_ecmascript() -> None:
    ev = convert_event({"actor": {"id": "a"}, "action": "x", "metadata": {"a": 1e21, "b": 1e-7, "c": -0.0, "d": 10.0}})
    checked = validate_event(ev)
    assert checked.exact
    assert b'"a":1e+21' in canonical_bytes(ev, exact=True)
    assert b'"b":1e-7' in canonical_bytes(ev, exact=True)
    assert b'"c":0' in canonical_bytes(ev, exact=True)
    assert b'"d":10' in canonical_bytes(ev, exact=True)


def test_astral_keys_sort_by_utf16() -> None:
    value = {"\U0001f600": 1, "\uffff": 2}
    assert needs_exact(value)
    # UTF-16: U+1F600 is D83D DE00, which sorts before FFFF.
    assert canonical_bytes(value, exact=True) == '{"\U0001f600":1,"\uffff":2}'.encode()
    assert math.isfinite(1.0)
