"""Fitting native records into the event limits without losing them."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditkeep.model import DEFAULT_LIMITS, Limits, convert_event, validate_event
from auditkeep.model.json_text import JSON_TEXT_KEY, lookup, restore_json_text
from auditkeep.policy import TooLarge, bounded_decoder, fit_metadata
from auditkeep.policy.types import OMITTED_KEY


def _deep(n: int) -> Any:
    value: Any = "leaf"
    for _ in range(n):
        value = {"d": value}
    return value


def test_deep_wide_and_odd_values() -> None:
    meta: dict[str, Any] = {
        "src": {
            "deep": _deep(10),
            "wide": {f"k{i}": i for i in range(70)},
            "long_list": list(range(1100)),
            "big": 2**60,
            "inf": math.inf,
            "raw": b"\x00\xff",
            "pair": (1, 2),
        }
    }
    original = copy.deepcopy(meta)
    assert fit_metadata(meta) == []  # nothing lost: all of it kept as text
    validate_event(convert_event({"actor": {"id": "a"}, "action": "x.y", "metadata": meta}))
    src = meta["src"]
    assert json.loads(src["wide"]) == original["src"]["wide"]
    assert json.loads(src["long_list"]) == original["src"]["long_list"]
    assert (src["big"], src["inf"], src["raw"], src["pair"]) == (str(2**60), "inf", "AP8=", [1, 2])
    # metadata(1).src(2).deep(3) + 5 more levels are kept as they are.
    kept = src["deep"]["d"]["d"]["d"]["d"]["d"]
    assert isinstance(kept, dict) and json.loads(kept["d"]) == _deep(4)


def test_what_cannot_be_kept_is_listed() -> None:
    meta: dict[str, Any] = {"src": {"text": "x" * 9000, "blob": {"v": ["y" * 100] * 100}}}
    omitted = fit_metadata(meta, Limits(max_keys=64, max_array=50))
    assert sorted(omitted) == ["metadata.src.blob.v", "metadata.src.text"]
    assert meta["_omitted"] == ["metadata.src.blob.v", "metadata.src.text"]
    assert len(meta["src"]["text"]) <= 8192 and meta["src"]["text"].endswith(
        "[cut: 9000 characters]"
    )


def test_bodies_go_first_then_too_large() -> None:
    meta: dict[str, Any] = {"src": {"body": ["z" * 8000] * 9, "head": "h"}}
    fit_metadata(meta, drop_first=("src.body",))
    assert meta["src"] == {"head": "h"} and meta["_omitted"] == ["metadata.src.body"]
    with pytest.raises(TooLarge):
        fit_metadata({"src": {"a": ["z" * 8000] * 9}}, drop_first=("src.body",))


def test_root_key_limit() -> None:
    with pytest.raises(TooLarge):
        fit_metadata({f"k{i}": i for i in range(65)})


def test_bounded_decoder() -> None:
    dec = bounded_decoder(DEFAULT_LIMITS.max_depth - 1)
    assert dec.decode(b'{"a": [1, {"b": "c"}]}') == {"a": [1, {"b": "c"}]}
    for bad in (
        json.dumps(_deep(8)),
        '{"a": 1e400}',
        json.dumps({"a": 2**60}),
        json.dumps({"a": "x" * 8193}),
    ):
        with pytest.raises(msgspec.ValidationError):
            dec.decode(bad)


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=50)
    | st.binary(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=5), inner, max_size=6)
    ),
    max_leaves=60,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.text(max_size=5), _json, max_size=3))
def test_anything_fits(meta: dict[str, Any]) -> None:
    small = Limits(max_keys=4, max_depth=4, max_string=40, max_array=4)
    fit_metadata(meta, small)
    validate_event(convert_event({"actor": {"id": "a"}, "action": "x.y", "metadata": meta}), small)


_lossless = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=5), inner, max_size=6),
    max_leaves=40,
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.text(min_size=1, max_size=5).filter(lambda k: not k.startswith("_")), _lossless, max_size=2))
def test_parts_kept_as_json_text_are_listed_and_restore_exactly(meta: dict[str, Any]) -> None:
    """Whatever is nested too deep or too wide comes back whole from ``_json_text``."""
    small = Limits(max_keys=4, max_depth=4, max_string=4000, max_array=4)
    fitted = copy.deepcopy(meta)
    fit_metadata(fitted, small)
    restored = restore_json_text(fitted)
    restored.pop(JSON_TEXT_KEY, None)
    listed = fitted.get(JSON_TEXT_KEY, [])
    if OMITTED_KEY not in fitted and len(listed) < small.max_array:  # (a longer list is cut)
        assert restored == meta
    for ptr in listed:
        assert ptr.startswith("/") and isinstance(lookup(fitted, ptr), str)
