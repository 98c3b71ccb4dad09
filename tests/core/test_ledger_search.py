"""Search: every filter, ordering, keyset pagination, freshness of the projection."""

from __future__ import annotations

import time

import pytest

from auditkeep.ledger import Ledger
from auditkeep.model import ValidationError


def _seed(ledger: Ledger) -> None:
    events = []
    for i in range(60):
        events.append(
            {
                "time": f"2024-05-01T12:{i:02d}:00Z",
                "actor": {"id": f"user-{i % 3}", "name": f"Person {i % 3}"},
                "action": ["user.login", "user.logout", "db.query"][i % 3],
                "category": ["authentication", "authentication", "data_access"][i % 3],
                "resource": {"type": "table" if i % 2 else "doc", "id": f"r{i % 5}"},
                "outcome": "failure" if i % 10 == 0 else "success",
                "reason": "password expired" if i == 30 else None,
                "metadata": {"http": {"status": 403 if i % 4 == 0 else 200, "path": f"/p/{i}"}, "email": f"p{i}@example.com"},
            }
        )
    for e in events:
        if e["reason"] is None:
            del e["reason"]
    ledger.append(events, tenant="acme")
    ledger.append([{"actor": {"id": "user-0"}, "action": "user.login"}], tenant="other")


def _indexes(ledger: Ledger, **kw: object) -> list[int]:
    return [r.index for r in ledger.search("acme", limit=1000, **kw).items]  # type: ignore[arg-type]


def test_filters(ledger: Ledger) -> None:
    _seed(ledger)
    assert _indexes(ledger, actor="user-1") == [i for i in reversed(range(60)) if i % 3 == 1]
    assert set(_indexes(ledger, action="user.*")) == {i for i in range(60) if i % 3 != 2}
    assert set(_indexes(ledger, action="user.login")) == {i for i in range(60) if i % 3 == 0}
    assert set(_indexes(ledger, outcome="failure")) == {0, 10, 20, 30, 40, 50}
    assert set(_indexes(ledger, category="data_access")) == {i for i in range(60) if i % 3 == 2}
    assert set(_indexes(ledger, resource_type="table", resource_id="r1")) == {i for i in range(60) if i % 2 and i % 5 == 1}
    assert _indexes(ledger, since="2024-05-01T12:10:00Z", until="2024-05-01T12:13:00Z") == [12, 11, 10]
    assert _indexes(ledger, text="password expired") == [30]
    assert set(_indexes(ledger, metadata={"http.status": "403"})) == {i for i in range(60) if i % 4 == 0}
    # a sealed personal field is searchable through the plaintext kept beside the leaf
    assert _indexes(ledger, metadata={"email": "p7@example.com"}) == [7]
    assert _indexes(ledger, text="Person") != []
    both = _indexes(ledger, actor="user-0", outcome="failure", since="2024-05-01T12:20:00Z")
    assert both == [30]


def test_order_and_pagination(ledger: Ledger) -> None:
    _seed(ledger)
    seen: list[int] = []
    cursor = None
    while True:
        page = ledger.search("acme", order="oldest", limit=7, cursor=cursor)
        seen += [r.index for r in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == list(range(60))
    newest = ledger.search("acme", limit=3)
    assert [r.index for r in newest.items] == [59, 58, 57]


def test_tenant_isolation_in_search(ledger: Ledger) -> None:
    _seed(ledger)
    other = ledger.search("other")
    assert [r.tenant for r in other.items] == ["other"]
    assert ledger.search("nobody").items == []


def test_bad_arguments(ledger: Ledger) -> None:
    _seed(ledger)
    with pytest.raises(ValidationError):
        ledger.search("acme", cursor="garbage!!")
    with pytest.raises(ValidationError):
        ledger.search("acme", since="yesterday")
    with pytest.raises(ValidationError):
        ledger.search("acme", limit=0)


def test_committed_events_are_projected_without_a_search(ledger: Ledger) -> None:
    """The background follower keeps the projection fresh without any search forcing it.
    How fresh (within a second at full ingest rate) is a benchmark's figure, not this test's:
    the deadline here only bounds a follower that never runs."""
    ledger.append([{"actor": {"id": "fresh"}, "action": "x.y"}], tenant="live")
    deadline = time.monotonic() + 60.0
    while ledger.projection_lag("live") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ledger.projection_lag("live") == 0


def test_common_text_takes_the_time_walk_and_agrees(ledger: Ledger) -> None:
    """A text query matching more entries than the probe threshold is answered by walking
    the time index; it must give exactly what sorting every match gives."""
    from auditkeep.store import sqlite_search

    n = sqlite_search.COMMON_TEXT + 300
    events = [
        {"time": f"2024-05-{1 + (i * 7919) % 28:02d}T{(i * 31) % 24:02d}:{i % 60:02d}:00Z", "actor": {"id": f"a{i % 9}"},
         "action": "note.add", "reason": "common word" if i % 5 else "rare word"}
        for i in range(n)
    ]
    ledger.append(events, tenant="fts")
    walked = [r.index for r in ledger.search("fts", text="common", limit=100).items]
    assert len(walked) == 100
    everything: list[tuple[int, int]] = []
    for i, e in enumerate(events):
        if e["reason"] == "common word":
            from auditkeep.model.timefmt import parse_rfc3339

            everything.append((parse_rfc3339(str(e["time"])), i))
    expected = [i for _, i in sorted(everything, reverse=True)[:100]]
    assert walked == expected
    rare = [r.index for r in ledger.search("fts", text="rare", order="oldest", limit=5).items]
    assert all(events[i]["reason"] == "rare word" for i in rare) and len(rare) == 5
