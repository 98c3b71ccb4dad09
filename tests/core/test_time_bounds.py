"""One table of time bounds for the model, both stores, the projection and query arguments;
one parser of time arguments for every face (embedded, CLI, HTTP, SDK)."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditkeep.ledger import Ledger
from auditkeep.model import ValidationError
from auditkeep.model import validate as validate_module
from auditkeep.model.timeargs import parse_time_arg
from auditkeep.model.timefmt import (
    MAX_NS,
    MAX_TEXT,
    MIN_NS,
    MIN_TEXT,
    format_rfc3339,
    parse_rfc3339,
)

FAR = ["9999-12-31T23:59:59.999999999Z", "2262-04-12T00:00:00Z", "0001-01-01T00:00:00Z", "1677-01-01T00:00:00Z"]


def _event(i: int, **extra: object) -> dict[str, object]:
    return {"actor": {"id": f"u{i}"}, "action": "doc.read", **extra}


@pytest.mark.parametrize("when", FAR)
def test_out_of_range_event_time_is_refused_naming_time(ledger: Ledger, when: str) -> None:
    with pytest.raises(ValidationError) as info:
        ledger.append([_event(0, time=when)], "t1")
    assert info.value.path == "time" and "out of range" in info.value.message
    assert ledger.search("t1").items == []


def test_the_bounds_themselves_are_stored_and_searchable(ledger: Ledger) -> None:
    ledger.append([_event(0, time=MIN_TEXT), _event(1, time=MAX_TEXT)], "t1")
    assert [r.event.time for r in ledger.search("t1").items] == [MAX_TEXT, MIN_TEXT]
    assert [r.index for r in ledger.search("t1", since=MAX_TEXT).items] == [1]
    assert [r.index for r in ledger.search("t1", until="1678-01-01T00:00:01Z").items] == [0]


def test_a_row_committed_before_the_bounds_held_never_stalls_the_projection(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An event dated 9999 already in a log (written by a release without the bound) is
    indexed at the bound with a warning; events after it stay searchable; reindex works."""
    ledger.append([_event(0, time="2024-05-01T00:00:00Z")], "t1")
    with monkeypatch.context() as m:  # reproduce what an earlier release committed
        m.setattr(validate_module, "in_range", lambda ns: True)
        ledger.append([_event(1, time="9999-12-31T23:59:59.999999999Z"), _event(2, time="0001-01-01T00:00:00Z")], "t1")
    ledger.append([_event(3, time="2024-05-02T00:00:00Z")], "t1")
    with caplog.at_level(logging.WARNING, "auditkeep.projector"):
        found = ledger.search("t1", limit=10).items
    assert [r.index for r in found] == [1, 3, 0, 2]  # clamped to the bounds for ordering
    assert found[0].event.time == "9999-12-31T23:59:59.999999999Z"  # shown as committed
    assert "out of range" in caplog.text
    assert [r.index for r in ledger.search("t1", actor="u1").items] == [1]
    assert [r.index for r in ledger.search("t1", since="2024-05-01T12:00:00Z", until="2025-01-01T00:00:00Z").items] == [3]
    ledger.store.reset_projection()
    assert [r.index for r in ledger.search("t1", limit=10).items] == [1, 3, 0, 2]
    assert ledger.verify().ok


@pytest.mark.parametrize("name", ["since", "until", "received_since", "received_until"])
@pytest.mark.parametrize("value", ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "99999999999d", "9" * 5000 + "d"])
def test_time_arguments_out_of_range_name_the_argument(ledger: Ledger, name: str, value: str) -> None:
    ledger.append([_event(0)], "t1")
    with pytest.raises(ValidationError) as info:
        ledger.search("t1", **{name: value})  # type: ignore[arg-type]
    assert info.value.path == name, info.value


def test_nul_in_text_and_metadata_paths_names_the_argument(ledger: Ledger) -> None:
    ledger.append([_event(0, metadata={"a": "1"})], "t1")
    with pytest.raises(ValidationError) as info:
        ledger.search("t1", text="a\x00b")
    assert info.value.path == "text"
    with pytest.raises(ValidationError) as info:
        ledger.search("t1", metadata=[("a\x00", "1")])
    assert info.value.path == "metadata"
    # NUL in a value is just a value that matches nothing
    assert ledger.search("t1", metadata=[("a", "1\x00")], actor="u0\x00").items == []


def test_a_cursor_out_of_range_is_refused(ledger: Ledger) -> None:
    import base64

    ledger.append([_event(0)], "t1")
    bad = base64.urlsafe_b64encode(f"{2**70}:1".encode()).decode().rstrip("=")
    with pytest.raises(ValidationError) as info:
        ledger.search("t1", cursor=bad)
    assert info.value.path == "cursor"


def test_embedded_search_takes_the_forms_every_face_takes(ledger: Ledger) -> None:
    """The README's `log.search("acme", actor="alice", since="1h")` — as the CLI, HTTP and SDK."""
    ledger.append([_event(0)], "acme")
    for since in ("1h", "7d", "30s", "2w", " 15m ", format_rfc3339(time.time_ns() - 10**12)):
        assert [r.index for r in ledger.search("acme", since=since).items] == [0], since
    assert ledger.search("acme", since="now", until="1h").items == []
    aware = datetime.now(UTC).replace(year=2000)
    assert [r.index for r in ledger.search("acme", since=aware).items] == [0]
    with pytest.raises(ValidationError) as info:
        ledger.search("acme", since=datetime(2000, 1, 1))  # naive: ambiguous
    assert info.value.path == "since"


@given(st.integers(min_value=-(2**70), max_value=2**70))
def test_parse_time_arg_is_within_the_bounds_or_refused(ns: int) -> None:
    try:
        got = parse_time_arg(ns, "since")
    except ValidationError as exc:
        assert exc.path == "since" and not MIN_NS <= ns <= MAX_NS
    else:
        assert got == ns and MIN_NS <= got <= MAX_NS
        assert parse_time_arg(format_rfc3339(got), "since") == got
        assert parse_rfc3339(format_rfc3339(got)) == got


@given(st.text(max_size=40))
def test_parse_time_arg_never_raises_anything_but_a_validation_error(text: str) -> None:
    try:
        got = parse_time_arg(text, "until")
    except ValidationError as exc:
        assert exc.path == "until"
    else:
        assert MIN_NS <= got <= MAX_NS
