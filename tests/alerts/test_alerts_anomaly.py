"""Anomaly baselines: first use of an action, new IP / user agent, unusual hours, rate
spikes; learning periods, explanations, bounded memory and snapshots."""

from __future__ import annotations

import re
from typing import Any

from auditkeep.alerts import Alert, Engine, Rule, parse_rule
from auditkeep.model.timefmt import format_rfc3339, parse_rfc3339

T0 = parse_rfc3339("2024-05-06T09:00:00Z")  # a Monday
S = 1_000_000_000
H = 3600 * S
D = 24 * H


def ev(t_ns: int, actor: str = "alice", action: str = "doc.read", **actor_extra: Any) -> dict[str, Any]:
    return {"actor": {"id": actor, **actor_extra}, "action": action, "time": format_rfc3339(t_ns), "tenant": "acme"}


def rule(detector: str, **params: Any) -> Rule:
    return parse_rule({"id": detector, "kind": "anomaly", "detector": detector, "params": params})


def feed(eng: Engine, events: list[dict[str, Any]], start: int = 0) -> list[Alert]:
    return [a for i, e in enumerate(events, start) for a in eng.process("acme", i, e)]


def test_first_use_of_an_action_after_learning() -> None:
    eng = Engine([rule("new_action", learning_period="1d", lookback="30d")])
    history = [ev(T0 + i * H, action=a) for i, a in enumerate(["doc.read", "doc.write", "secrets.read"] * 4)]
    assert feed(eng, history) == []  # learning: nothing fires
    later = T0 + 2 * D
    assert feed(eng, [ev(later, action="doc.read")], 100) == []
    [a] = feed(eng, [ev(later + S, action="secrets.delete")], 101)
    assert a.explanation == "actor alice used `secrets.delete` for the first time; 0 times in the previous 30d."
    assert a.group_key == "actor.id=alice" and a.fields["action"] == "secrets.delete"
    # forty days later, an action last used in the learning days counts as new again
    [b] = feed(eng, [ev(later + 40 * D, action="doc.write")], 102)
    assert "last used 2024-05-06" in b.explanation
    assert [x.fields["actor.id"] for x in feed(eng, [ev(later + 41 * D, actor="bob")], 103)] == ["bob"]


def test_new_ip_needs_history_and_names_known_ones() -> None:
    eng = Engine([rule("new_ip", learning_period=0, min_history=5)])
    hist = [ev(T0 + i * S, ip=f"10.0.0.{i % 2 + 1}") for i in range(5)]
    assert feed(eng, hist) == []  # the first IPs of a new actor are not news
    [a] = feed(eng, [ev(T0 + 10 * S, ip="203.0.113.9")], 10)
    assert a.explanation.startswith("actor alice used a new IP 203.0.113.9; seen with 2 other IPs in the previous 30d")
    assert feed(eng, [ev(T0 + 11 * S, ip="203.0.113.9")], 11) == []


def test_new_user_agent() -> None:
    eng = Engine([rule("new_user_agent", learning_period=0, min_history=2)])
    feed(eng, [ev(T0 + i * S, user_agent="curl/8") for i in range(3)])
    [a] = feed(eng, [ev(T0 + 5 * S, user_agent="python-requests/2.31")], 5)
    assert "new user agent python-requests/2.31" in a.explanation


def test_unusual_hours() -> None:
    eng = Engine([rule("unusual_hours", learning_period=0, min_history=40, min_share=0.01)])
    # four weeks of weekday office hours
    hist = [ev(T0 + d * D + h * H) for d in range(28) if d % 7 < 5 for h in range(0, 8, 2)]
    assert feed(eng, hist) == []
    [a] = feed(eng, [ev(T0 + 33 * D + 18 * H)], 1000)  # Sunday 03:00
    assert a.explanation.startswith("actor alice active at Sun 03:00 UTC; 0 of 80 previous events in that hour of the week")
    assert "09:00" in a.explanation


def test_rate_spike_explains_itself() -> None:
    eng = Engine([rule("rate_spike", learning_period=0, bucket="1m", min_buckets=10, min_count=20, z=4)])
    events = []
    for m in range(60):
        events += [ev(T0 + m * 60 * S + k * S, actor="bob") for k in range(3 + m % 3)]  # 3..5 per minute
    assert feed(eng, events) == []
    burst = [ev(T0 + 61 * 60 * S + k * 100_000_000, actor="bob") for k in range(200)]
    alerts = feed(eng, burst, 1000)
    assert len(alerts) == 1  # once per bucket
    a = alerts[0]
    assert re.fullmatch(r"actor bob: 20 events in 1m, usual \d\.\d \u00b1 \d\.\d \(z = \d+\.\d\)\.", a.explanation)
    assert 3 <= a.fields["mean"] <= 5  # (one empty minute before the burst pulls it below 4)
    assert a.fields["z"] >= 4 and a.count >= 20


def test_rate_spike_per_action_and_quiet_series() -> None:
    eng = Engine([rule("rate_spike", per="action", learning_period=0, bucket="10s", min_buckets=5, min_count=5, z=3)])
    steady = [ev(T0 + b * 10 * S + k * S, action="api.call") for b in range(30) for k in range(4)]
    assert feed(eng, steady) == []
    a = feed(eng, [ev(T0 + 300 * S + k * 10_000_000, action="api.call") for k in range(30)], 500)
    assert len(a) == 1 and a[0].group_key == "action=api.call"


def test_memory_is_bounded_per_tenant() -> None:
    eng = Engine([rule("new_action", learning_period=0, max_keys=100)])
    feed(eng, [ev(T0 + i * S, actor=f"u{i}") for i in range(1000)])
    ev_ = eng._evaluators["new_action"]
    assert len(ev_.tenants["acme"].keys) == 100  # type: ignore[attr-defined]


def test_baselines_survive_snapshot_restore() -> None:
    rules = [rule("new_action", learning_period=0), rule("rate_spike", learning_period=0, min_buckets=3, min_count=3, z=2, bucket="1m")]
    a = Engine(rules)
    hist = [ev(T0 + i * 60 * S, action="doc.read") for i in range(10)]
    feed(a, hist)
    b = Engine.restore(rules, a.snapshot())
    after = [ev(T0 + 11 * 60 * S, action="doc.read"), ev(T0 + 11 * 60 * S + S, action="doc.write")]
    assert [x.id for x in feed(a, after, 10)] == [x.id for x in feed(b, after, 10)]


def _rule(severity: str = "medium", rule_id: str = "first-use", **extra: Any) -> Rule:
    return parse_rule({"id": rule_id, "kind": "anomaly", "detector": "new_action", "severity": severity,
                       "params": {"learning_period": "7d"}, **extra})


def test_learning_starts_with_the_tenants_first_event() -> None:
    """A rule that matches only some events learns from the tenant's first event, not from
    the first event it matched (the docs' promise)."""
    eng = Engine([_rule(match={"action": {"prefix": "secrets."}})])
    feed(eng, [ev(T0, action="doc.read")])  # the tenant's history starts here
    feed(eng, [ev(T0 + 6 * D, action="secrets.read")], 1)  # the rule's first match
    [a] = feed(eng, [ev(T0 + 7 * D + H, action="secrets.delete")], 2)  # learning ended on day 7
    assert a.fields["action"] == "secrets.delete"


def test_editing_a_rule_does_not_restart_learning() -> None:
    history = [ev(T0 + i * H, action=a) for i, a in enumerate(["doc.read", "doc.write"] * 4)]
    day8 = T0 + 8 * D
    # in the running engine (a rules directory reloaded) ...
    eng = Engine([_rule()])
    feed(eng, history)
    eng.replace_rules([_rule(severity="high", throttle="1h")])
    [a] = feed(eng, [ev(day8, action="secrets.delete")], 10)
    assert a.severity == "high"
    assert feed(eng, [ev(day8 + H, action="doc.read")], 11) == []  # the baseline was kept
    # ... and across a restart with the edited rule
    before = Engine([_rule()])
    feed(before, history)
    after = Engine.restore([_rule(severity="low")], before.snapshot())
    [b] = feed(after, [ev(day8, action="secrets.delete")], 10)
    assert b.severity == "low" and feed(after, [ev(day8 + H, action="doc.write")], 11) == []


def test_a_rule_with_nothing_learned_learns_first() -> None:
    """Added on day 8 (or its match changed), a rule has no baseline to compare with: it
    learns for its own period instead of calling every action new."""
    eng = Engine([_rule()])
    feed(eng, [ev(T0 + i * H, action="doc.read") for i in range(4)])
    eng.replace_rules([_rule(), _rule(rule_id="added", match={"actor.id": "alice"})])
    day8 = T0 + 8 * D
    assert [a.rule_id for a in feed(eng, [ev(day8, action="secrets.delete")], 10)] == ["first-use"]
    assert [a.rule_id for a in feed(eng, [ev(day8 + 8 * D, action="secrets.rotate")], 11)] == ["first-use", "added"]
