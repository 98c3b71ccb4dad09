"""One Filters value means the same in memory (the live tail) as in the store's search."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditkeep.client.reads import search_params
from auditkeep.ledger import Ledger
from auditkeep.model.errors import ValidationError
from auditkeep.model.timefmt import parse_rfc3339
from auditkeep.query.filters import FILTER_NAMES, Filters, search_kwargs

ACTORS = ["alice", "bob", "carol"]
ACTIONS = ["user.login", "user.logout", "doc.read", "doc.write"]
OUTCOMES = ["success", "failure", "denied"]
WORDS = ["invoice", "payroll", "backup", "quarterly"]
TIMES = [f"2024-05-0{d}T1{h}:00:00Z" for d in range(1, 5) for h in range(0, 3)]


def _event(i: int) -> dict[str, object]:
    return {
        "actor": {"id": ACTORS[i % 3], "ip": f"10.0.0.{i % 4}"},
        "action": ACTIONS[i % 4],
        "resource": {"type": "doc" if i % 2 else "user", "id": f"r{i % 5}"},
        "outcome": OUTCOMES[i % 3],
        "category": "authentication" if i % 4 < 2 else "data_access",
        "reason": f"{WORDS[i % 4]} {WORDS[(i + 1) % 4]}",
        "time": TIMES[i % len(TIMES)],
        "metadata": {"size": i % 3, "team": ["red", "blue"][i % 2], "flag": bool(i % 2)},
    }


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    lg = Ledger.open(tmp_path_factory.mktemp("filters") / "data")
    try:
        lg.append([_event(i) for i in range(48)], "acme")
        yield lg
    finally:
        lg.close()


def _from_store(lg: Ledger, f: Filters) -> list[int]:
    page = lg.search("acme", limit=10_000, order="oldest", filters=f)
    assert page.next_cursor is None
    return sorted(r.index for r in page.items)


def _in_memory(lg: Ledger, f: Filters) -> list[int]:
    return sorted(r.index for r in lg.records(0, lg.head("acme").size, "acme") if f.matches(r.event))


_raw = st.fixed_dictionaries(
    {},
    optional={
        "actor": st.sampled_from(ACTORS),
        "action": st.sampled_from([*ACTIONS, "user.*", "doc.*"]),
        "resource_type": st.sampled_from(["doc", "user"]),
        "resource_id": st.sampled_from([f"r{i}" for i in range(5)]),
        "outcome": st.sampled_from(OUTCOMES),
        "category": st.sampled_from(["authentication", "data_access"]),
        "text": st.sampled_from([*WORDS, "pay*", "invoice backup", "10.0.0.2", "alice"]),
        "since": st.sampled_from(TIMES),
        "until": st.sampled_from(TIMES),
        "metadata": st.lists(st.sampled_from(["size=1", "team=red", "flag=true", "size=2"]), max_size=2),
    },
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=_raw)
def test_memory_and_store_agree(ledger: Ledger, raw: dict[str, object]) -> None:
    f = Filters.parse(raw)
    assert _in_memory(ledger, f) == _from_store(ledger, f)


def test_the_filters_select_something_and_not_everything(ledger: Ledger) -> None:
    everything = _from_store(ledger, Filters())
    assert len(everything) == 48
    some = Filters.parse({"action": "user.*", "outcome": "success", "metadata": ["team=red"]})
    chosen = _in_memory(ledger, some)
    assert 0 < len(chosen) < 48 and chosen == _from_store(ledger, some)


def test_parse_checks_each_field_once_and_round_trips() -> None:
    f = Filters.parse({"since": "2024-05-01T10:00:00Z", "action": "user.*", "metadata": ["a.b=1"]})
    assert f.since == parse_rfc3339("2024-05-01T10:00:00Z") and f.metadata == (("a.b", "1"),)
    assert Filters.from_kwargs(f.kwargs()) == f
    assert f.kwargs() == search_kwargs({"since": "2024-05-01T10:00:00Z", "action": "user.*", "metadata": ["a.b=1"]})
    with pytest.raises(ValidationError, match="metadata"):
        Filters.parse({"metadata": ["no-equals-sign"]})
    with pytest.raises(ValidationError) as info:
        Filters.from_kwargs({"colour": "red"})
    assert info.value.path == "colour"


def test_keywords_and_filters_are_one_spelling(ledger: Ledger) -> None:
    # FilterArgs (the keywords of every search) and Filters (what they parse into) name the same
    # filters in the same order; the SDK's query parameters are the ones the server parses.
    assert tuple(f.name for f in fields(Filters)) == FILTER_NAMES
    kw = {"action": "user.*", "since": "2024-05-01T10:00:00Z", "metadata": {"team": "red"}}
    by_keywords = ledger.search("acme", order="oldest", limit=10_000, **kw)  # type: ignore[arg-type]
    by_filters = ledger.search("acme", order="oldest", limit=10_000, filters=Filters.from_kwargs(kw))
    assert [r.index for r in by_keywords.items] == [r.index for r in by_filters.items] != []
    params = search_params("acme", kw, order="oldest")
    wire: dict[str, object] = {k: v for k, v in params if k in FILTER_NAMES}
    wire["metadata"] = [v for k, v in params if k == "metadata"]
    assert Filters.parse(wire) == Filters.from_kwargs(kw)


def test_an_unknown_keyword_is_a_type_error_as_in_a_signature(ledger: Ledger) -> None:
    with pytest.raises(TypeError, match="'colour'"):
        ledger.search("acme", colour="red")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="'colour'"):
        search_params("acme", {"colour": "red"})
    with pytest.raises(TypeError, match="not both"):
        ledger.search("acme", filters=Filters(actor="alice"), action="user.*")
