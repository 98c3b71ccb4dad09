"""The guardrail core: parsing with file:line errors, first match wins, identity kinds,
gateway condition kinds and sections, hot reload keeping the last good rules."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditkeep.gateway.guardrails import RuleError, RulesFile, glob, parse_rules


@dataclass(frozen=True)
class Call:
    user: str
    roles: frozenset[str] = field(default_factory=frozenset)
    verb: str = "read"


def _verbs(value: Any) -> Any:
    g = glob(value)
    return lambda s: g(s.verb)


KINDS = {"verbs": _verbs}

RULES = """\
default: allow
review_timeout: 90s
rules:
  - name: dba-may
    action: allow
    roles: [dba]
  - name: no-drops
    action: deny
    message: dropping is not allowed here
    verbs: [drop*]
  - name: writes-reviewed
    action: review
    verbs: [write]
    except_users: [svc-*]
"""


def test_first_match_wins_and_identity_kinds() -> None:
    rs = parse_rules(RULES, KINDS, file="g.yml")
    assert rs.review_timeout == 90
    assert rs.decide(Call("alice", verb="drop_table")).action == "deny"
    assert rs.decide(Call("alice", verb="drop_table")).message == "dropping is not allowed here"
    assert rs.decide(Call("root", frozenset({"dba"}), "drop_table")).rule_name == "dba-may"
    v = rs.decide(Call("alice", verb="write"))
    assert (v.action, v.rule_name) == ("review", "writes-reviewed")
    assert rs.decide(Call("svc-billing", verb="write")).action == "allow"
    v = rs.decide(Call("alice"))
    assert v.action == "allow" and v.rule is None


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("rules:\n  - name: a\n    action: deny\n    colour: red\n", 4, "unknown condition 'colour'"),
        ("rules:\n  - name: a\n    action: maybe\n", 3, "action: expected one of"),
        ("rules:\n  - name: a\n    action: deny\n  - name: a\n    action: deny\n", 4, "used twice"),
        ("default: never\n", 1, "default: expected"),
        ("rules:\n  - action: deny\n", 2, "name:"),
        ("rules:\n  - name: a\n    action: deny\n    users: []\n", 4, "users: expected a string"),
        ("review_timeout: soon\n", 1, "review_timeout"),
        ("rules: [\n", 2, "invalid YAML"),
        ("extra: 1\n", 1, "unknown key 'extra'"),
        ("rules:\n  - name: a\n    action: deny\n    verbs: 3\n", 4, "verbs: expected"),
    ],
)
def test_errors_name_file_and_line(text: str, line: int, reason: str) -> None:
    with pytest.raises(RuleError) as exc:
        parse_rules(text, KINDS, file="g.yml")
    assert exc.value.file == "g.yml"
    assert exc.value.line == line, exc.value.render()
    assert reason in exc.value.reason
    assert exc.value.render().startswith(f"g.yml:{line}: ")


def test_sections_are_parsed_by_the_gateway() -> None:
    def masking(value: Any) -> list[str]:
        if not isinstance(value, dict) or "columns" not in value:
            raise ValueError("expected a mapping with columns")
        return list(value["columns"])

    rs = parse_rules("masking:\n  columns: [ssn]\n", KINDS, sections={"masking": masking})
    assert rs.sections["masking"] == ["ssn"]
    with pytest.raises(RuleError) as exc:
        parse_rules("rules: []\nmasking: 3\n", KINDS, file="g.yml", sections={"masking": masking})
    assert exc.value.line == 2 and "masking: expected" in exc.value.reason


def test_empty_file_and_bare_list() -> None:
    assert parse_rules("", KINDS).decide(Call("a")).action == "allow"
    rs = parse_rules("- name: all\n  action: deny\n", KINDS)
    assert rs.decide(Call("a")).action == "deny"


def test_reload_on_change_keeps_last_good(tmp_path: Path) -> None:
    path = tmp_path / "g.yml"
    path.write_text(RULES)
    now = [0.0]
    rf: RulesFile[Call] = RulesFile(path, KINDS, check_interval=1.0, clock=lambda: now[0])
    assert rf.current().decide(Call("a", verb="drop")).action == "deny"
    path.write_text("rules:\n  - name: all\n    action: review\n")
    os.utime(path, ns=(1, 10**9))
    assert rf.current().decide(Call("a", verb="drop")).action == "deny"  # not checked yet
    now[0] = 2.0
    assert rf.current().decide(Call("a", verb="drop")).action == "review"
    path.write_text("rules:\n  - name: all\n    action: explode\n")
    os.utime(path, ns=(1, 2 * 10**9))
    now[0] = 4.0
    assert rf.current().decide(Call("a")).action == "review"  # the bad change did not load
    assert rf.error is not None and rf.error.line == 3 and rf.error.file == str(path)
    with pytest.raises(RuleError):
        RulesFile(tmp_path / "missing.yml", KINDS)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_loads_or_fails_with_rule_error(text: str) -> None:
    try:
        parse_rules(text, KINDS, file="f.yml")
    except RuleError as exc:
        assert exc.render().startswith("f.yml")
