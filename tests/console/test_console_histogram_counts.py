"""The console histogram counts every match (no cap) into the same buckets as counting the
events one by one, on both stores."""

from __future__ import annotations

from typing import Any

import pytest

from auditkeep.console import histogram
from auditkeep.console.search import histogram_of
from auditkeep.ledger import Ledger
from auditkeep.model.timefmt import parse_rfc3339
from auditkeep.query.filters import Filters

T0 = parse_rfc3339("2024-05-01T00:00:00Z")
MIN = 60 * 10**9


def _events(n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(n):
        e: dict[str, Any] = {
            "time": f"2024-05-01T{(i * 7) // 60 % 24:02d}:{(i * 7) % 60:02d}:{i % 60:02d}Z",
            "actor": {"id": f"user-{i % 4}"},
            "action": ["user.login", "db.query"][i % 2],
        }
        if i % 5:
            e["outcome"] = ["success", "failure", "denied", "error"][i % 4]
        out.append(e)
    return out


def _expected(events: list[dict[str, Any]], lo: int, hi: int, actor: str | None = None) -> histogram.Histogram:
    points = [
        (parse_rfc3339(e["time"]), e.get("outcome", "unknown"))
        for e in events
        if actor is None or e["actor"]["id"] == actor
    ]
    return histogram.build(points, lo, hi)


@pytest.mark.parametrize(
    ("kwargs", "since", "until"),
    [
        ({}, None, None),
        ({"actor": "user-1"}, None, None),
        ({"since": T0 + 90 * MIN, "until": T0 + 700 * MIN}, T0 + 90 * MIN, T0 + 700 * MIN),
        ({"since": T0 + 5 * MIN, "actor": "user-2"}, T0 + 5 * MIN, None),
        ({"until": T0 + 33 * MIN}, None, T0 + 33 * MIN),
    ],
)
def test_histogram_matches_counting_each_event(
    ledger: Ledger, kwargs: dict[str, Any], since: int | None, until: int | None
) -> None:
    events = _events(700)
    ledger.append(events, tenant="acme")
    got = histogram_of(ledger, "acme", Filters.from_kwargs(kwargs), since, until)
    assert got is not None
    times = [parse_rfc3339(e["time"]) for e in events if e["actor"]["id"] == kwargs.get("actor", e["actor"]["id"])]
    lo = since if since is not None else min(times)
    hi = until if until is not None else max(times) + 1
    want = _expected(events, lo, hi, kwargs.get("actor"))
    assert got.complete and got.step_ns == want.step_ns
    assert [(b.start_ns, b.counts) for b in got.buckets] == [(b.start_ns, b.counts) for b in want.buckets]
    assert got.counted == want.counted > 0


def test_more_matches_than_the_old_cap_are_all_counted(ledger: Ledger) -> None:
    n = 21_000  # the scan it replaces stopped at 20,000
    for start in range(0, n, 1000):
        ledger.append(
            [{"time": f"2024-05-01T00:00:{i % 60:02d}Z", "actor": {"id": "a"}, "action": "x.y", "outcome": "success"}
             for i in range(start, start + 1000)],
            tenant="acme",
        )  # fmt: skip
    got = histogram_of(ledger, "acme", Filters(), None, None)
    assert got is not None and got.counted == n and got.totals()["success"] == n


def test_nothing_matches(ledger: Ledger) -> None:
    ledger.append(_events(10), tenant="acme")
    assert histogram_of(ledger, "acme", Filters(actor="nobody"), None, None) is None
    empty = histogram_of(ledger, "acme", Filters(actor="nobody", since=T0, until=T0 + MIN), T0, T0 + MIN)
    assert empty is not None and empty.counted == 0
