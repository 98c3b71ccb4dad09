"""Sigma correlation rules: event_count, value_count, temporal, temporal_ordered, chains,
aliases, upper-bound conditions judged at the end of a window, and their refusals."""

from __future__ import annotations

from typing import Any

from auditkeep.alerts import Engine, Rule, load_rules_text
from auditkeep.model.timefmt import format_rfc3339, parse_rfc3339

T0 = parse_rfc3339("2024-05-01T12:00:00Z")
S = 1_000_000_000

BASE = """
title: Failed login
id: 5638f7c0-ac70-491d-8465-2a65075e0d86
name: failed_login
logsource: {product: auditkeep}
detection:
  selection: {action: user.login, outcome: failure}
  condition: selection
---
title: Successful login
id: 4d0a2c83-c62c-4ed4-b475-c7e23a9269b8
name: successful_login
logsource: {product: auditkeep}
detection:
  selection: {action: user.login, outcome: success}
  condition: selection
---
title: Secret read
name: secret_read
logsource: {product: auditkeep}
detection:
  selection: {action: secrets.read}
  condition: selection
"""


def load(text: str) -> tuple[list[Rule], list[Any]]:
    return load_rules_text(BASE + "---\n" + text)


def ev(action: str, t: float, actor: str = "alice", outcome: str = "success", **kw: Any) -> dict[str, Any]:
    e = {"actor": {"id": actor, "ip": kw.get("ip", "10.0.0.1")}, "action": action, "outcome": outcome,
         "time": format_rfc3339(T0 + int(t * S)), "tenant": "acme"}
    return e


def run(rules: list[Rule], events: list[dict[str, Any]]) -> list[Any]:
    eng = Engine(rules)
    return [a for i, e in enumerate(events) for a in eng.process("acme", i, e)]


def test_event_count_and_generate_false_silences_the_base_rule() -> None:
    rules, errors = load("""
title: Many failed logins
id: 0e95725d-7320-415d-80f7-004da920fc11
correlation:
  type: event_count
  rules: [failed_login]
  group-by: [actor.id]
  timespan: 10m
  condition: {gte: 3}
level: high
""")
    assert errors == []
    assert {r.id for r in rules} == {"0e95725d-7320-415d-80f7-004da920fc11", "4d0a2c83-c62c-4ed4-b475-c7e23a9269b8", "secret_read"}
    a = run(rules, [ev("user.login", i, outcome="failure") for i in range(5)] + [ev("user.login", 6, actor="bob", outcome="failure")])
    assert [(x.rule_id[:8], x.last_index, x.count, x.severity) for x in a] == [("0e95725d", 2, 3, "high")]
    assert "3 events matching “Failed login” for actor.id=alice within 10m" in a[0].explanation
    assert a[0].title == "Many failed logins" and a[0].fields == {"actor.id": "alice"}


def test_value_count() -> None:
    rules, errors = load("""
title: Password spraying
correlation:
  type: value_count
  rules: [failed_login]
  group-by: [actor.ip]
  timespan: 5m
  condition: {field: actor.id, gt: 2}
""")
    assert errors == []
    events = [ev("user.login", i, actor=f"u{i % 3}", outcome="failure") for i in range(6)]
    events.append(ev("user.login", 7, actor="u9", outcome="failure"))
    a = [x for x in run(rules, events) if x.title == "Password spraying"]
    assert [(x.last_index, x.count) for x in a] == [(2, 3)]  # u0, u1, u2: more than 2


def test_temporal_any_order_and_ordered() -> None:
    text = """
title: Login and secret read
correlation:
  type: {kind}
  rules: [successful_login, secret_read]
  group-by: [actor.id]
  timespan: 1m
"""
    for kind, fires in (("temporal", True), ("temporal_ordered", False)):
        rules, errors = load(text.replace("{kind}", kind))
        assert errors == []
        a = run(rules, [ev("secrets.read", 0), ev("user.login", 10)])
        assert bool([x for x in a if x.title == "Login and secret read"]) is fires, kind
    rules, _ = load(text.replace("{kind}", "temporal_ordered"))
    a = [x for x in run(rules, [ev("user.login", 0), ev("secrets.read", 30), ev("user.login", 100), ev("secrets.read", 170)]) if x.title.startswith("Login")]
    assert [x.last_index for x in a] == [1]  # the second pair is 70s apart


def test_chained_correlation_failed_burst_then_success() -> None:
    rules, errors = load("""
title: Brute force then success
correlation:
  type: temporal_ordered
  rules: [many_failed, successful_login]
  group-by: [actor.id]
  timespan: 10m
level: critical
---
title: Many failed
name: many_failed
correlation:
  type: event_count
  rules: [failed_login]
  group-by: [actor.id]
  timespan: 10m
  condition: {gte: 3}
""")
    assert errors == []
    titles = {r.name for r in rules}
    assert "Brute force then success" in titles and "Many failed" not in titles
    events = [ev("user.login", 0, outcome="failure"), ev("user.login", 1, outcome="success"),
              ev("user.login", 2, outcome="failure"), ev("user.login", 3, outcome="failure"),
              ev("user.login", 4, outcome="success")]
    a = [x for x in run(rules, events) if x.title == "Brute force then success"]
    assert [(x.last_index, x.severity) for x in a] == [(4, "critical")]


def test_upper_bound_conditions_are_judged_when_the_window_closes() -> None:
    rules, errors = load("""
title: Few logins
correlation:
  type: event_count
  rules: [successful_login]
  group-by: [actor.id]
  timespan: 1m
  condition: {gte: 2, lte: 3}
""")
    assert errors == []
    eng = Engine(rules)
    events = [ev("user.login", 0), ev("user.login", 5), ev("user.login", 10, actor="bob"),
              ev("user.login", 11, actor="carol"), ev("user.login", 12, actor="carol"), ev("user.login", 13, actor="carol"), ev("user.login", 14, actor="carol"),
              ev("secrets.read", 65)]  # a later event of the tenant closes alice's window
    got = [a for i, e in enumerate(events) for a in eng.process("acme", i, e) if a.title == "Few logins"]
    assert [(a.group_key, a.count, a.last_index) for a in got] == [("actor.id=alice", 2, 1)]
    closed = [a for a in eng.tick(T0 + 200 * S) if a.title == "Few logins"]
    assert closed == []  # bob had 1, carol 4: outside 2..3


def test_aliases_group_different_fields() -> None:
    rules, errors = load("""
title: Same person
correlation:
  type: temporal
  rules: [failed_login, secret_read]
  group-by: [person]
  timespan: 1m
  aliases:
    person:
      failed_login: actor.id
      secret_read: resource.id
""")
    assert errors == []
    e2 = ev("secrets.read", 5, actor="svc")
    e2["resource"] = {"id": "alice"}
    a = [x for x in run(rules, [ev("user.login", 0, outcome="failure"), e2]) if x.title == "Same person"]
    assert [x.group_key for x in a] == ["person=alice"]


def test_correlation_refusals() -> None:
    cases = {
        "type: value_sum": "not supported",
        "type: event_count\n  rules: [nope]\n  timespan: 5m\n  condition: {gte: 2}": "not loaded",
        "type: event_count\n  rules: [failed_login]\n  timespan: 5 minutes\n  condition: {gte: 2}": "timespan",
        "type: value_count\n  rules: [failed_login]\n  timespan: 5m\n  condition: {gte: 2}": "needs 'field'",
        "type: temporal\n  rules: [failed_login]\n  timespan: 5m\n  condition: {lt: 2}": "gt or gte",
        "type: event_count\n  rules: [failed_login]\n  timespan: 5m\n  condition: {gte: 2}\n  extra: 1": "unknown key 'extra'",
    }
    for body, reason in cases.items():
        if "rules:" not in body:
            body += "\n  rules: [failed_login]\n  timespan: 5m\n  condition: {gte: 2}"
        _rules, errors = load(f"title: C\nid: corr-1\ncorrelation:\n  {body}\n")
        assert [e.rule_id for e in errors] == ["corr-1"], body
        assert reason in errors[0].reason, (body, errors[0].reason)
        assert errors[0].line is not None and errors[0].line > 20
    # a cycle is refused, not looped
    _, errors = load("""
title: A
name: ca
correlation: {type: event_count, rules: [cb], timespan: 1m, condition: {gte: 1}}
---
title: B
name: cb
correlation: {type: event_count, rules: [ca], timespan: 1m, condition: {gte: 1}}
""")
    assert len(errors) == 2 and all("cycle" in e.reason for e in errors)


def test_correlation_state_survives_snapshot_restore() -> None:
    rules, _ = load("""
title: Many failed logins
correlation:
  type: event_count
  rules: [failed_login]
  group-by: [actor.id]
  timespan: 10m
  condition: {gte: 3}
""")
    eng = Engine(rules)
    for i in range(2):
        eng.process("acme", i, ev("user.login", i, outcome="failure"))
    again, _ = load("""
title: Many failed logins
correlation:
  type: event_count
  rules: [failed_login]
  group-by: [actor.id]
  timespan: 10m
  condition: {gte: 3}
""")
    restored = Engine.restore(again, eng.snapshot())
    assert [a.title for a in restored.process("acme", 2, ev("user.login", 2, outcome="failure"))] == ["Many failed logins"]
