"""Native rule files: conditions, the loader's error reports (file, line, reason), and the
directory watcher."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditkeep.alerts import (
    Engine,
    RuleError,
    RulesWatcher,
    compile_condition,
    load_rules_dir,
    load_rules_file,
    load_rules_text,
    parse_rule,
)
from auditkeep.alerts.yamlsrc import load_documents

EV: dict[str, Any] = {
    "actor": {"id": "Alice", "ip": "10.1.2.3", "type": "user"},
    "action": "secrets.read",
    "outcome": "failure",
    "resource": {"type": "secret", "id": "prod/db-password"},
    "metadata": {"k8s": {"verb": "get", "annotations": {"authorization.k8s.io/decision": "allow"},
                         "requestObject": {"spec": {"containers": [{"securityContext": {"privileged": False}}, {"securityContext": {"privileged": True}}]}}},
                 "bytes": 5_000, "tags": ["a", "b"]},
}


@pytest.mark.parametrize(
    "cond,expected",
    [
        ({"action": "secrets.read"}, True),
        ({"action": "Secrets.Read"}, False),
        ({"action": {"equals": "Secrets.Read", "ignore_case": True}}, True),
        ({"outcome": ["failure", "denied"]}, True),
        ({"resource.id": {"prefix": "prod/"}}, True),
        ({"resource.id": {"suffix": "password"}}, True),
        ({"resource.id": {"contains": "db-"}}, True),
        ({"resource.id": {"regex": "^prod/[a-z-]+$"}}, True),
        ({"actor.ip": {"cidr": "10.0.0.0/8"}}, True),
        ({"actor.ip": {"cidr": ["192.168.0.0/16", "fd00::/8"]}}, False),
        ({"metadata.bytes": {"gt": 4999, "lte": 5000}}, True),
        ({"metadata.bytes": {"lt": 10}}, False),
        ({"actor.session_id": {"exists": False}}, True),
        ({"actor.ip": {"exists": True}}, True),
        ({"metadata.tags": "b"}, True),
        ({"metadata.k8s.annotations.authorization.k8s.io/decision": "allow"}, True),
        ({"metadata.k8s.requestObject.spec.containers.securityContext.privileged": True}, True),
        ({"actor.name": None}, True),
        ({"all": [{"action": "secrets.read"}, {"not": {"actor.type": "service"}}]}, True),
        ({"any": [{"action": "x.y"}, {"outcome": "success"}]}, False),
        ({"not": {"any": [{"action": "x.y"}, {"outcome": "success"}]}}, True),
        ([{"action": "secrets.read"}, {"outcome": "failure"}], True),
    ],
)
def test_condition_operators(cond: Any, expected: bool) -> None:
    assert compile_condition(cond).test(EV) is expected


@given(st.lists(st.sampled_from(["a.b", "c.d", "e.f", "a.bb"]), min_size=1, max_size=3), st.sampled_from(["a.b", "c.d", "x.y", "a.bb"]))
def test_index_hints_never_exclude_a_matching_event(values: list[str], action: str) -> None:
    for cond in ({"action": values}, {"any": [{"action": v} for v in values]}, {"all": [{"action": {"in": values}}, {"outcome": "failure"}]}, {"action": {"prefix": values[0]}}):
        c = compile_condition(cond)
        ev = {"action": action, "outcome": "failure"}
        if c.test(ev):
            assert c.hint is not None and c.hint.admits(action)


def test_rule_errors_carry_the_line(tmp_path: Path) -> None:
    text = """\
rules:
  - id: ok-one
    match: {action: a.b}
  - id: typo
    kind: threshold
    match: {action: a.b}
    treshold: {count: 5, window: 5m}
  - id: bad-op
    match:
      actor.ip: {within: 10.0.0.0/8}
  - id: bad-duration
    kind: absence
    after: 5 minutes
  - id: bad-regex
    match: {action: {regex: "("}}
  - id: ok-one
    match: {action: c.d}
"""
    f = tmp_path / "rules.yml"
    f.write_text(text)
    rules, errors = load_rules_file(f)
    assert [r.id for r in rules] == ["ok-one"]
    got = [(e.rule_id, e.line, e.reason.split(" (")[0]) for e in errors]
    assert got == [
        ("typo", 7, "unknown key 'treshold' for a threshold rule"),
        ("bad-op", 10, "unknown operator 'within' for field 'actor.ip'"),
        ("bad-duration", 13, "'after': expected a duration such as 30s, 5m, 1h or 7d, got '5 minutes'"),
        ("bad-regex", 15, "invalid regular expression '(': missing ), unterminated subpattern at position 0"),
        ("ok-one", 16, "duplicate rule id"),
    ]
    assert str(errors[0]) == f"{f}:7: rule 'typo': {errors[0].reason}"


def test_malformed_yaml_names_the_line_and_other_files_still_load(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text("id: a\nmatch: {action: a.b}\n")
    (tmp_path / "b.yml").write_text("id: b\nmatch: {action: [a.b\n")
    (tmp_path / "c.yaml").write_text("- id: c1\n  match: {action: c.d}\n- id: c2\n  match: {action: e.f}\n")
    (tmp_path / "d.yml").write_text("id: d\nid: d2\nmatch: {action: a.b}\n")
    (tmp_path / "notes.txt").write_text("not a rule")
    rules, errors = load_rules_dir(tmp_path)
    assert sorted(r.id for r in rules) == ["a", "c1", "c2"]
    by_file = {Path(e.file).name: e for e in errors}  # type: ignore[arg-type]
    assert set(by_file) == {"b.yml", "d.yml"}
    assert by_file["b.yml"].reason.startswith("invalid YAML") and by_file["b.yml"].line == 3
    assert by_file["d.yml"].reason == "duplicate key 'id'" and by_file["d.yml"].line == 2


def test_dict_api_and_required_fields() -> None:
    r = parse_rule({"id": "x", "match": {"action": "a.b"}, "severity": "informational", "tags": ["t"]})
    assert r.severity == "info" and r.tags == ("t",) and r.kind == "match"
    for bad, reason in [
        ({"match": {"action": "a"}}, "'id' is required"),
        ({"id": "x"}, "needs 'match'"),
        ({"id": "x", "kind": "magic"}, "'kind' must be one of"),
        ({"id": "x", "match": {"action": "a"}, "severity": "urgent"}, "'severity' must be one of"),
        ({"id": "x", "kind": "sequence", "window": "1m", "steps": [{"match": {"action": "a"}}]}, "at least two steps"),
        ({"id": "x", "kind": "anomaly", "detector": "psychic"}, "'detector' must be one of"),
        ({"id": "x", "kind": "anomaly", "detector": "rate_spike", "params": {"zz": 1}}, "unknown parameter 'zz'"),
        ({"id": "x", "match": {"action": {"equals": ["a", "b"]}}}, "'equals' takes one value"),
    ]:
        with pytest.raises(RuleError, match=re.escape(reason)):
            parse_rule(bad)


def test_yaml_lines_are_recorded() -> None:
    [(doc, line)] = load_documents("\n\nid: x\nmatch:\n  action: a\n")
    assert line == 3 and doc.line_of("match") == 4 and doc["match"].line_of("action") == 5


def _touch(path: Path, text: str) -> None:
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_watcher_reloads_removes_broken_files_and_keeps_state(tmp_path: Path) -> None:
    _touch(tmp_path / "t.yml", "id: t\nkind: threshold\nmatch: {action: x.y}\nthreshold: {count: 3, window: 1h}\n")
    _touch(tmp_path / "m.yml", "id: m\nmatch: {action: z.z}\n")
    eng = Engine()
    seen: list[Any] = []
    w = RulesWatcher(tmp_path, engine=eng, on_reload=seen.append)
    first = w.check()
    assert first is not None and sorted(r.id for r in eng.rules) == ["m", "t"]
    assert w.check() is None  # nothing changed
    ev = {"actor": {"id": "a"}, "action": "x.y", "time": "2024-05-01T00:00:00Z"}
    eng.process("acme", 0, ev)
    eng.process("acme", 1, ev)
    _touch(tmp_path / "m.yml", "id: m\nmatch: {action: [z.z\n")  # broken
    res = w.check()
    assert res is not None and res.changed == [str(tmp_path / "m.yml")]
    assert [r.id for r in eng.rules] == ["t"] and len(res.errors) == 1 and res.errors[0].line == 3
    assert [a.rule_id for a in eng.process("acme", 2, ev)] == ["t"]  # its window survived the reload
    _touch(tmp_path / "m.yml", "id: m\nmatch: {action: z.z}\n")
    (tmp_path / "t.yml").unlink()
    w.check()
    assert [r.id for r in eng.rules] == ["m"] and len(seen) == 3
    time.sleep(0)


def test_examples_load_cleanly() -> None:
    examples = Path(__file__).resolve().parents[2] / "examples" / "rules"
    rules, errors = load_rules_dir(examples)
    assert errors == [] and len(rules) >= 8
    assert {r.kind for r in rules} >= {"match", "threshold", "sequence", "absence", "anomaly", "sigma", "sigma_correlation"}


def test_text_loader_mixes_native_and_sigma() -> None:
    rules, errors = load_rules_text("""
id: native
match: {action: a.b}
---
title: Sigma one
id: sig-1
logsource: {product: auditkeep}
detection: {sel: {action: a.b}, condition: sel}
""")
    assert errors == [] and [r.kind for r in rules] == ["match", "sigma"]
