"""Counts per time bucket and outcome (the console histogram's aggregate) equal a brute-force
count over the same events, for random filters, ranges and buckets, on both stores."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditkeep.ledger import Ledger
from auditkeep.model import ValidationError
from auditkeep.model.timefmt import format_rfc3339, parse_rfc3339

T0 = parse_rfc3339("2024-05-01T00:00:00Z")
SPAN = 3 * 86400 * 10**9
ACTORS = ["alice", "bob", "carol"]
ACTIONS = ["user.login", "user.logout", "db.query", "db.write"]
OUTCOMES = ["success", "failure", "denied", "error", None]
REASONS = ["password expired", "quota exceeded", None]


def _events(n: int = 300) -> list[dict[str, Any]]:
    rnd = random.Random(15)
    out: list[dict[str, Any]] = []
    for _ in range(n):
        t = T0 + rnd.randrange(SPAN // 10**6) * 10**6
        e: dict[str, Any] = {
            "time": format_rfc3339(t),
            "actor": {"id": rnd.choice(ACTORS)},
            "action": rnd.choice(ACTIONS),
            "category": rnd.choice(["authentication", "data_access"]),
            "resource": {"type": rnd.choice(["table", "doc"]), "id": f"r{rnd.randrange(3)}"},
            "metadata": {"http": {"status": rnd.choice([200, 403])}},
        }
        outcome, reason = rnd.choice(OUTCOMES), rnd.choice(REASONS)
        if outcome:
            e["outcome"] = outcome
        if reason:
            e["reason"] = reason
        out.append(e)
    return out


def _matches(e: dict[str, Any], f: dict[str, Any]) -> bool:
    """The search's filters, evaluated directly on an event as submitted."""
    t = parse_rfc3339(e["time"])
    if ("since" in f and t < f["since"]) or ("until" in f and t >= f["until"]):
        return False
    if "actor" in f and e["actor"]["id"] != f["actor"]:
        return False
    if "action" in f:
        a = f["action"]
        if not (e["action"].startswith(a[:-1]) if a.endswith("*") else e["action"] == a):
            return False
    if "outcome" in f and e.get("outcome", "unknown") != f["outcome"]:
        return False
    if "category" in f and e["category"] != f["category"]:
        return False
    if "resource_type" in f and e["resource"]["type"] != f["resource_type"]:
        return False
    if "metadata" in f and str(e["metadata"]["http"]["status"]) != f["metadata"]["http.status"]:
        return False
    return not ("text" in f and f["text"] not in e.get("reason", "").split())


def _brute(events: list[dict[str, Any]], f: dict[str, Any], origin: int, step: int) -> dict[tuple[int, str], int]:
    out: dict[tuple[int, str], int] = {}
    for e in events:
        t = parse_rfc3339(e["time"])
        if t >= origin and _matches(e, f):
            key = ((t - origin) // step, e.get("outcome", "unknown"))
            out[key] = out.get(key, 0) + 1
    return out


_time = st.integers(T0 - 86400 * 10**9, T0 + SPAN + 86400 * 10**9)
_filters = st.fixed_dictionaries(
    {},
    optional={
        "since": _time,
        "until": _time,
        "actor": st.sampled_from([*ACTORS, "nobody"]),
        "action": st.sampled_from([*ACTIONS, "user.*", "db.*", "x.*"]),
        "outcome": st.sampled_from(["success", "failure", "denied", "error", "unknown"]),
        "category": st.sampled_from(["authentication", "data_access"]),
        "resource_type": st.sampled_from(["table", "doc"]),
        "metadata": st.sampled_from([{"http.status": "200"}, {"http.status": "403"}]),
        "text": st.sampled_from(["expired", "quota", "absent"]),
    },
)
_step = st.sampled_from([1, 10**9, 60 * 10**9, 3600 * 10**9, 7 * 3600 * 10**9, 86400 * 10**9, 10 * 86400 * 10**9])


def test_counts_equal_a_brute_force_count(ledger: Ledger) -> None:
    events = _events()
    ledger.append(events, tenant="acme")
    ledger.append(_events(40), tenant="other")  # another tenant's events are never counted

    @settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(f=_filters, step=_step, back=st.integers(0, 2 * 86400 * 10**9))
    def check(f: dict[str, Any], step: int, back: int) -> None:
        origin = f.get("since", T0) - back
        got = ledger.count_by_time("acme", origin_ns=origin, step_ns=step, **f)
        counted = {(b, o): n for b, o, n in got}
        assert len(counted) == len(got)  # one row per (bucket, outcome)
        assert counted == _brute(events, f, origin, step)
        span = ledger.time_span("acme", **f)
        times = [parse_rfc3339(e["time"]) for e in events if _matches(e, f)]
        assert span == ((min(times), max(times)) if times else None)

    check()


def test_every_event_counted_once(ledger: Ledger) -> None:
    events = _events()
    ledger.append(events, tenant="acme")
    got = ledger.count_by_time("acme", origin_ns=T0, step_ns=3600 * 10**9)
    assert sum(n for _, _, n in got) == len(events)
    assert {o for _, o, _ in got} == {e.get("outcome", "unknown") for e in events}


def test_unknown_tenant_and_bad_step(ledger: Ledger) -> None:
    ledger.append(_events(5), tenant="acme")
    assert ledger.count_by_time("nobody", origin_ns=T0, step_ns=10**9) == []
    assert ledger.time_span("nobody") is None
    with pytest.raises(ValidationError):
        ledger.count_by_time("acme", origin_ns=T0, step_ns=0)
    with pytest.raises(ValidationError):
        ledger.count_by_time("acme", origin_ns=T0, step_ns=10**9, submitter="?bad kind")
