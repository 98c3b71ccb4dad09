"""Property tests of the small parts retention and verify rely on: durations, index ranges,
and the check that every expired range is named by a retention record."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditkeep.ledger.verify import _uncovered
from auditkeep.retention.policy import PolicyError, first_match, load_policies, parse_duration
from auditkeep.store.base import key_runs

_NS = 1_000_000_000
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


@given(st.integers(1, 999_999), st.sampled_from(sorted(UNITS)))
def test_durations(n: int, unit: str) -> None:
    assert parse_duration(f"{n}{unit}", "x") == n * UNITS[unit] * _NS


@given(st.text(max_size=12))
def test_anything_else_is_refused_naming_where(text: str) -> None:
    try:
        parse_duration(text, "policy 'p' delete_after")
    except PolicyError as exc:
        assert "policy 'p' delete_after" in str(exc)


@given(st.sets(st.integers(0, 2000), max_size=300))
def test_ranges_cover_exactly_the_indexes(indexes: set[int]) -> None:
    ranges = key_runs(sorted(indexes))
    assert {i for a, b in ranges for i in range(a, b)} == indexes
    assert all(a < b for a, b in ranges)
    assert all(ranges[j][1] < ranges[j + 1][0] for j in range(len(ranges) - 1))  # maximal runs


@given(st.sets(st.integers(0, 500), max_size=120), st.lists(st.tuples(st.integers(0, 500), st.integers(1, 60)), max_size=30))
def test_uncovered_finds_an_expired_index_no_record_names(expired: set[int], records: list[tuple[int, int]]) -> None:
    recorded = [(a, a + n) for a, n in records]
    named = {i for a, b in recorded for i in range(a, b)}
    gap = _uncovered(key_runs(sorted(expired)), recorded)
    missing = sorted(expired - named)
    if not missing:
        assert gap is None
    else:
        assert gap is not None and gap[0] == missing[0] and gap[0] in expired


def test_first_match_wins_and_a_policy_without_delete_after_keeps() -> None:
    policies = load_policies([
        {"name": "keep", "tenant": "acme", "action": "user.*"},
        {"name": "short", "action": "user.*", "delete_after": "1d"},
        {"name": "default", "delete_after": "1y"},
    ])
    keep = first_match(policies, "acme", None, "user.login")
    assert keep is not None and keep.name == "keep" and keep.delete_after_ns is None
    short = first_match(policies, "other", "authentication", "user.login")
    assert short is not None and short.name == "short"
    fallback = first_match(policies, "other", None, "db.read")
    assert fallback is not None and fallback.name == "default"
    with pytest.raises(PolicyError, match="used twice"):
        load_policies([{"name": "a"}, {"name": "a"}])
    with pytest.raises(PolicyError, match="must be a non-empty string"):
        load_policies([{"action": ""}])
