"""Engine behaviour: match, threshold, sequence and absence rules; throttling; snapshot,
restore and replay; hot reload; the candidate index against a full scan."""

from __future__ import annotations

import random
from typing import Any

import msgspec
import pytest

from auditkeep.alerts import Engine, Rule, load_rules_text, parse_rule
from auditkeep.alerts.model import Alert
from auditkeep.model.timefmt import format_rfc3339, parse_rfc3339

T0 = parse_rfc3339("2024-05-01T12:00:00Z")
S = 1_000_000_000


def ev(action: str, actor: str = "alice", t: float = 0, **extra: Any) -> dict[str, Any]:
    e: dict[str, Any] = {
        "id": f"0190f5c2-7a1e-7cc0-9d7e-{random.getrandbits(48):012x}",
        "actor": {"id": actor},
        "action": action,
        "time": format_rfc3339(T0 + int(t * S)),
        "tenant": "acme",
    }
    for k, v in extra.items():
        if "." in k:
            head, tail = k.split(".", 1)
            e.setdefault(head, {})[tail] = v
        else:
            e[k] = v
    return e


def rules(text: str) -> list[Rule]:
    out, errors = load_rules_text(text)
    assert not errors, [str(e) for e in errors]
    return out


def run(engine: Engine, events: list[dict[str, Any]], tenant: str = "acme", start: int = 0) -> list[Alert]:
    out: list[Alert] = []
    for i, e in enumerate(events, start):
        out.extend(engine.process(tenant, i, e))
    return out


def test_match_rule_fires_with_explanation_and_fields() -> None:
    eng = Engine(rules("""
id: secret-read
name: Secret read by a human
severity: high
match:
  action: secrets.read
  actor.type: user
  resource.id: {prefix: prod/}
group_by: [actor.id]
notify: [ops]
"""))
    a = run(eng, [
        ev("secrets.read", **{"actor.type": "user", "resource.id": "prod/db"}),
        ev("secrets.read", **{"actor.type": "service", "resource.id": "prod/db"}),
        ev("secrets.list", **{"actor.type": "user", "resource.id": "prod/db"}),
    ])
    assert len(a) == 1
    alert = a[0]
    assert alert.rule_id == "secret-read" and alert.severity == "high" and alert.status == "open"
    assert alert.group_key == "actor.id=alice"
    assert alert.first_index == alert.last_index == 0
    assert alert.fields["resource.id"] == "prod/db"
    assert alert.notify == ["ops"]
    assert "alice performed secrets.read" in alert.explanation
    assert "resource.id starts with" not in alert.explanation  # text is the condition's own
    assert "resource.id prefix 'prod/'" in alert.explanation


def test_threshold_count_fires_once_per_crossing_and_rearms() -> None:
    eng = Engine(rules("""
id: brute
kind: threshold
match: {action: user.login, outcome: failure}
group_by: [actor.id]
threshold: {count: 5, window: 5m}
"""))
    events = [ev("user.login", t=i * 10, outcome="failure") for i in range(8)]  # 8 failures in 70s
    events.append(ev("user.login", t=75, outcome="success"))
    events.append(ev("user.login", t=80, actor="bob", outcome="failure"))
    a = run(eng, events)
    assert [x.last_index for x in a] == [4]  # the 5th failure, once
    assert a[0].count == 5 and a[0].first_index == 0 and len(a[0].event_ids) == 5
    assert "5 matching events for actor.id=alice within 5m" in a[0].explanation
    # after the window has emptied, a new burst fires again
    later = [ev("user.login", t=1000 + i, outcome="failure") for i in range(5)]
    a2 = run(eng, later, start=100)
    assert [x.last_index for x in a2] == [104]


def test_threshold_window_slides() -> None:
    eng = Engine(rules("""
id: t
kind: threshold
match: {action: x.y}
threshold: {count: 3, window: 60s}
"""))
    # 3 events but spread over more than 60s never reach 3 in one window
    assert run(eng, [ev("x.y", t=0), ev("x.y", t=50), ev("x.y", t=100), ev("x.y", t=170)]) == []
    a = run(eng, [ev("x.y", t=180)], start=4)  # 100? no: 170, 180 and... only 2
    assert a == []
    a = run(eng, [ev("x.y", t=185)], start=5)
    assert [x.last_index for x in a] == [5]


def test_threshold_distinct_count() -> None:
    eng = Engine(rules("""
id: spread
kind: threshold
match: {action: {prefix: data.}}
group_by: [actor.id]
threshold: {count: 50, distinct: resource.id, window: 10m}
"""))
    events = [ev("data.read", t=i, **{"resource.id": f"doc-{i % 49}"}) for i in range(200)]
    assert run(eng, events) == []  # 49 distinct only
    a = run(eng, [ev("data.read", t=300, **{"resource.id": "doc-new"})], start=200)
    assert len(a) == 1 and a[0].count == 50
    assert "50 distinct values of resource.id" in a[0].explanation


def test_sequence_with_counted_step() -> None:
    eng = Engine(rules("""
id: burst-then-success
kind: sequence
group_by: [actor.id]
window: 10m
steps:
  - name: failed login
    match: {action: user.login, outcome: failure}
    count: 3
  - name: successful login
    match: {action: user.login, outcome: success}
"""))
    e = [
        ev("user.login", t=0, outcome="failure"),
        ev("user.login", t=1, outcome="failure"),
        ev("user.login", t=2, outcome="success"),  # only 2 failures before: no
        ev("user.login", t=3, outcome="failure"),
        ev("user.login", t=4, actor="bob", outcome="success"),  # other actor
        ev("user.login", t=5, outcome="failure"),
        ev("user.login", t=6, outcome="success"),
    ]
    a = run(eng, e)
    assert [x.last_index for x in a] == [6]
    assert a[0].count == 4  # the three freshest failures and the success
    assert a[0].first_index == 1
    assert "failed login x3 → successful login" in a[0].explanation


def test_sequence_window_expires() -> None:
    eng = Engine(rules("""
id: s
kind: sequence
window: 1m
steps:
  - match: {action: a.b}
  - match: {action: c.d}
"""))
    assert run(eng, [ev("a.b", t=0), ev("c.d", t=61)]) == []
    assert len(run(eng, [ev("a.b", t=100), ev("c.d", t=110)], start=2)) == 1


def test_absence_fires_once_per_silence_and_rearms() -> None:
    eng = Engine(rules("""
id: heartbeat
kind: absence
match: {action: agent.heartbeat}
group_by: [source.host]
after: 5m
"""))
    run(eng, [ev("agent.heartbeat", t=0, **{"source.host": "web-1"}), ev("agent.heartbeat", t=10, **{"source.host": "web-2"})])
    assert eng.tick(T0 + 200 * S) == []
    a = eng.tick(T0 + 305 * S)
    assert [x.group_key for x in a] == ["source.host=web-1"]
    assert a[0].last_index == 0 and "No event matching action = agent.heartbeat from source.host=web-1" in a[0].explanation
    a = eng.tick(T0 + 320 * S)
    assert [x.group_key for x in a] == ["source.host=web-2"]
    assert eng.tick(T0 + 900 * S) == []  # once per silence
    run(eng, [ev("agent.heartbeat", t=1000, **{"source.host": "web-1"})], start=5)
    assert eng.tick(T0 + 1200 * S) == []
    a = eng.tick(T0 + 1301 * S)
    assert [(x.group_key, x.last_index) for x in a] == [("source.host=web-1", 5)]


def test_throttle_suppresses_and_counts() -> None:
    eng = Engine(rules("""
id: m
match: {action: x.y}
group_by: [actor.id]
throttle: 1m
"""))
    a = run(eng, [ev("x.y", t=i * 10) for i in range(8)])  # t = 0..70
    assert [x.last_index for x in a] == [0, 6]
    assert a[1].suppressed == 5
    assert eng.stats.suppressed == 6
    assert run(eng, [ev("x.y", actor="bob", t=71)], start=8)[0].suppressed == 0


def test_alert_ids_are_deterministic_and_distinct() -> None:
    text = """
id: m
match: {action: x.y}
"""
    events = [ev("x.y", t=i) for i in range(5)]
    a1 = run(Engine(rules(text)), events)
    a2 = run(Engine(rules(text)), events)
    assert [x.id for x in a1] == [x.id for x in a2]
    assert len({x.id for x in a1}) == 5
    a3 = run(Engine(rules(text)), events, tenant="other")
    assert not {x.id for x in a1} & {x.id for x in a3}


RULESET = """
rules:
  - id: brute
    kind: threshold
    match: {action: user.login, outcome: failure}
    group_by: [actor.id]
    threshold: {count: 4, window: 2m}
  - id: spread
    kind: threshold
    match: {action: data.read}
    group_by: [actor.id]
    threshold: {count: 6, distinct: resource.id, window: 5m}
  - id: seq
    kind: sequence
    group_by: [actor.id]
    window: 5m
    steps:
      - {match: {action: user.login, outcome: failure}, count: 2}
      - {match: {action: user.login, outcome: success}}
      - {match: {action: secrets.read}}
  - id: throttled
    match: {action: secrets.read}
    group_by: [actor.id]
    throttle: 90s
  - id: absent
    kind: absence
    match: {action: agent.heartbeat}
    group_by: [source.host]
    after: 2m
  - id: new-action
    kind: anomaly
    detector: new_action
    params: {learning_period: 10m}
  - id: spike
    kind: anomaly
    detector: rate_spike
    params: {learning_period: 0, bucket: 10s, min_buckets: 5, min_count: 5, z: 3}
"""


def _stream(n: int, seed: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    actions = ["user.login", "data.read", "secrets.read", "agent.heartbeat", "user.logout"]
    out = []
    t = 0.0
    for _ in range(n):
        t += rnd.expovariate(1 / 3)
        a = rnd.choice(actions)
        e = ev(a, actor=rnd.choice(["alice", "bob", "carol"]), t=t,
               outcome=rnd.choice(["failure", "failure", "success"]),
               **{"resource.id": f"r{rnd.randrange(10)}", "source.host": rnd.choice(["h1", "h2"])})
        e["id"] = f"0190f5c2-7a1e-7cc0-9d7e-{rnd.getrandbits(48):012x}"
        out.append(e)
    return out


@pytest.mark.parametrize("k", [0, 1, 137, 500, 999])
def test_snapshot_restore_replay_gives_the_same_alert_ids(k: int) -> None:
    events = _stream(1000, seed=7)
    rs = rules(RULESET)
    ticks = {i: T0 + int((i * 3 + 200) * S) for i in range(0, 1000, 50)}

    def drive(engine: Engine, start: int, end: int) -> list[str]:
        ids = []
        for i in range(start, end):
            ids += [a.id for a in engine.process("acme", i, events[i])]
            if i in ticks:
                ids += [a.id for a in engine.tick(ticks[i])]
        return ids

    whole = Engine(rs)
    all_ids = drive(whole, 0, 1000)
    assert len(all_ids) > 20 and len(set(all_ids)) == len(all_ids)

    first = Engine(rs)
    before = drive(first, 0, k)
    snap = first.snapshot()
    # the process "crashes" after emitting some more alerts it never recorded
    drive(first, k, min(k + 50, 1000))
    restored = Engine.restore(rules(RULESET), snap)
    after = drive(restored, k, 1000)
    assert before + after == all_ids
    # and the snapshot of the restored engine equals the uninterrupted one's
    assert msgspec.json.decode(restored.snapshot()) == msgspec.json.decode(whole.snapshot())


def test_restore_drops_state_of_changed_rules() -> None:
    rs = rules("""
id: t
kind: threshold
match: {action: x.y}
threshold: {count: 3, window: 1h}
""")
    eng = Engine(rs)
    run(eng, [ev("x.y", t=0), ev("x.y", t=1)])
    snap = eng.snapshot()
    same = Engine.restore(rs, snap)
    assert len(run(same, [ev("x.y", t=2)], start=2)) == 1
    changed = Engine.restore(rules("""
id: t
kind: threshold
match: {action: x.y}
threshold: {count: 3, window: 2h}
"""), snap)
    assert run(changed, [ev("x.y", t=2)], start=2) == []
    with pytest.raises(ValueError):
        Engine.restore(rs, b'{"version": 99}')


def test_hot_reload_keeps_state_of_unchanged_rules() -> None:
    base = """
id: t
kind: threshold
match: {action: x.y}
threshold: {count: 3, window: 1h}
"""
    eng = Engine(rules(base))
    run(eng, [ev("x.y", t=0), ev("x.y", t=1)])
    eng.replace_rules(rules(base) + rules("id: m\nmatch: {action: z.z}\n"))
    assert [a.rule_id for a in run(eng, [ev("x.y", t=2)], start=2)] == ["t"]
    assert [a.rule_id for a in run(eng, [ev("z.z", t=3)], start=3)] == ["m"]
    assert eng.remove_rule("m") and not eng.remove_rule("m")
    assert run(eng, [ev("z.z", t=4)], start=4) == []
    with pytest.raises(ValueError):
        eng.add_rule(rules(base)[0])
    eng.add_rule(rules("id: m2\nmatch: {action: z.z}\n")[0])
    assert len(run(eng, [ev("z.z", t=5)], start=5)) == 1


def test_disabled_rules_do_not_fire() -> None:
    eng = Engine(rules("id: m\nenabled: false\nmatch: {action: x.y}\n"))
    assert run(eng, [ev("x.y")]) == []


def test_index_selects_the_same_rules_as_a_full_scan() -> None:
    rnd = random.Random(3)
    actions = [f"svc{i}.op{j}" for i in range(6) for j in range(4)]
    defs = []
    for i in range(60):
        shape = i % 4
        if shape == 0:
            m = {"action": rnd.choice(actions)}
        elif shape == 1:
            m = {"action": rnd.sample(actions, 3), "outcome": "failure"}
        elif shape == 2:
            m = {"any": [{"action": rnd.choice(actions)}, {"action": {"prefix": "svc2."}}]}
        else:
            m = {"outcome": "failure", "actor.id": {"in": ["alice", "bob"]}}
        defs.append({"id": f"r{i}", "match": m})
    indexed = Engine([parse_rule(d) for d in defs])
    events = [ev(rnd.choice(actions), actor=rnd.choice(["alice", "bob", "eve"]), outcome=rnd.choice(["success", "failure"])) for _ in range(400)]
    got = [sorted(a.rule_id for a in indexed.process("acme", i, e)) for i, e in enumerate(events)]
    # full scan: every rule's condition tested directly
    compiled = [parse_rule(d) for d in defs]
    want = [sorted(r.id for r in compiled if r.spec.condition.test(e)) for e in events]  # type: ignore[attr-defined]
    assert got == want
    assert indexed.stats.evaluations < 60 * 400 / 2  # most rules skipped for most events


def test_a_failing_rule_does_not_stop_the_others() -> None:
    rs = rules("id: a\nmatch: {action: x.y}\n---\nid: b\nmatch: {action: x.y}\n")

    class Boom(Exception):
        pass

    def bad(ctx: Any) -> Any:
        raise Boom

    eng = Engine(rs)
    eng._evaluators["a"].on_event = bad  # type: ignore[method-assign]
    a = run(eng, [ev("x.y")])
    assert [x.rule_id for x in a] == ["b"] and eng.stats.errors == 1


def test_fast_time_parsing_agrees_with_the_model_parser() -> None:
    from hypothesis import given
    from hypothesis import strategies as st

    from auditkeep.alerts.timeutil import event_time_ns

    @given(st.integers(min_value=0, max_value=4_000_000_000 * S), st.sampled_from([0, 1, 3, 6, 9]), st.sampled_from(["Z", "+02:00", "-05:30"]))
    def check(ns: int, digits: int, zone: str) -> None:
        text = format_rfc3339(ns)[:19]
        frac = f"{ns % S:09d}"[:digits]
        full = text + ("." + frac if digits else "") + zone
        assert event_time_ns({"time": full}) == parse_rfc3339(full)
        assert event_time_ns({"time": full}) == event_time_ns({"received_at": full})

    check()
    assert event_time_ns({"time": "yesterday"}) is None and event_time_ns({}) is None
