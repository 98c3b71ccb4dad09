"""Sigma values, wildcards and modifiers; the condition parser (with hypothesis)."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditkeep.alerts import RuleError
from auditkeep.alerts.sigma import condition as cond
from auditkeep.alerts.sigma import strings as ss
from auditkeep.alerts.sigma.detection import compile_detection
from auditkeep.alerts.sigma.logsource import AUDITKEEP

# -- wildcards and escaping -------------------------------------------------------------

parts_st = st.lists(
    st.one_of(st.text(alphabet="ab\\*?-/ .", min_size=1, max_size=4), st.sampled_from([ss.MULTI, ss.SINGLE])),
    max_size=6,
)


@given(parts_st)
def test_render_then_parse_round_trips(parts: list[Any]) -> None:
    norm = ss.normalise(parts)
    assert ss.parse(ss.render(norm)) == norm


def _reference(parts: list[Any], text: str, cased: bool) -> bool:
    """An independent matcher: dynamic programming over the parsed parts."""
    chars: list[Any] = []
    for p in parts:
        chars.extend(p if isinstance(p, str) else [p])
    f = (lambda c: c) if cased else (lambda c: c.lower())
    n, m = len(chars), len(text)
    ok = [[False] * (m + 1) for _ in range(n + 1)]
    ok[0][0] = True
    for i in range(1, n + 1):
        c = chars[i - 1]
        for j in range(m + 1):
            if c is ss.MULTI:
                ok[i][j] = ok[i - 1][j] or (j > 0 and ok[i][j - 1])
            elif j > 0:
                ok[i][j] = ok[i - 1][j - 1] and (c is ss.SINGLE or f(c) == f(text[j - 1]))
    return ok[n][m]


@settings(max_examples=300)
@given(parts_st, st.text(alphabet="abAB\\*?-/ .", max_size=8), st.booleans())
def test_pattern_matching_agrees_with_a_reference(parts: list[Any], text: str, cased: bool) -> None:
    norm = ss.normalise(parts)
    assert ss.compile_pattern(norm, cased)(text) is _reference(norm, text, cased)


def test_escapes_per_the_specification() -> None:
    assert ss.parse(r"C:\Windows\System32") == ["C:\\Windows\\System32"]  # plain backslashes
    assert ss.parse(r"C:\Windows\*") == ["C:\\Windows*"]  # an escaped star
    assert ss.parse(r"C:\Windows\\*") == ["C:\\Windows\\", ss.MULTI]  # backslash, then wildcard
    assert ss.parse(r"a\*b") == ["a*b"]
    assert ss.parse(r"a\\*") == ["a\\", ss.MULTI]
    assert ss.parse(r"a\\\*") == ["a\\*"]
    assert ss.parse(r"a\\\\") == ["a\\\\"]
    assert ss.parse(r"a\\\?") == ["a\\?"]
    assert ss.parse("?x") == [ss.SINGLE, "x"]


# -- modifiers -----------------------------------------------------------------------------


def det(body: dict[str, Any], condition: str = "sel") -> Any:
    return compile_detection({"sel": body, "condition": condition}, AUDITKEEP).test


def test_equality_is_case_insensitive_unless_cased() -> None:
    assert det({"action": "User.Login"})({"action": "user.login"})
    assert not det({"action|cased": "User.Login"})({"action": "user.login"})
    assert det({"n": 401})({"n": 401}) and det({"n": 401})({"n": "401"}) and det({"n": "401"})({"n": 401})
    assert det({"b": True})({"b": True}) and not det({"b": True})({"b": False})


def test_lists_of_values_or_and_all() -> None:
    t = det({"cmd|contains": ["curl", "wget"]})
    assert t({"cmd": "x wget y"}) and not t({"cmd": "ls"})
    t = det({"cmd|contains|all": ["curl", "-o"]})
    assert t({"cmd": "curl -o f"}) and not t({"cmd": "curl f"})
    t = det({"args|contains|all": ["-s", "truncate"]})
    assert t({"args": ["truncate", "-s", "0"]})  # a list field: each value in some element


def test_start_end_and_wildcards() -> None:
    assert det({"p|startswith": "/tmp/"})({"p": "/TMP/x"})
    assert det({"p|endswith": "/nmap"})({"p": "/usr/bin/nmap"})
    assert det({"p": "/usr/*/n?ap"})({"p": "/usr/bin/nmap"})
    assert not det({"p": "/usr/*/n?ap"})({"p": "/usr/bin/nmmap"})
    assert det({"p": r"a\*b"})({"p": "a*b"}) and not det({"p": r"a\*b"})({"p": "axxb"})


def test_null_exists_and_pure_star() -> None:
    assert det({"errorCode": None})({}) and det({"errorCode": None})({"errorCode": None})
    assert not det({"errorCode": None})({"errorCode": "AccessDenied"})
    assert det({"x|exists": True})({"x": ""}) and not det({"x|exists": True})({})
    assert det({"x|exists": False})({}) and not det({"x|exists": False})({"x": 1})
    star = det({"hostPath": "*"})
    assert star({"hostPath": {"path": "/etc"}}) and star({"hostPath": "x"}) and not star({}) and not star({"hostPath": None})


def test_mappings_are_searched_through_their_leaves() -> None:
    t = det({"requestParameters|contains": "Suspended"})
    assert t({"requestParameters": {"VersioningConfiguration": {"Status": "Suspended"}}})
    assert not t({"requestParameters": {"VersioningConfiguration": {"Status": "Enabled"}}})


def test_re_with_flags() -> None:
    assert det({"a|re": "^ab+c$"})({"a": "abbc"}) and not det({"a|re": "^ab+c$"})({"a": "ABBC"})
    assert det({"a|re|i": "^ab+c$"})({"a": "ABBC"})
    assert det({"a|re|m": "^x$"})({"a": "y\nx\nz"}) and not det({"a|re": "^x$"})({"a": "y\nx\nz"})
    assert det({"a|re|s": "a.b"})({"a": "a\nb"}) and not det({"a|re": "a.b"})({"a": "a\nb"})
    assert det({"a1|re": r"(^|\/)\.[^.\/]"})({"a1": "/home/u/.ssh"})


def test_cidr_and_numbers() -> None:
    t = det({"ip|cidr": ["10.0.0.0/8", "2001:db8::/32"]})
    assert t({"ip": "10.1.2.3"}) and t({"ip": "2001:db8::1"}) and not t({"ip": "11.0.0.1"}) and not t({"ip": "nope"})
    assert det({"n|gt": 5})({"n": 6}) and not det({"n|gt": 5})({"n": 5}) and det({"n|gte": 5})({"n": "5"})
    assert det({"n|lt": 5})({"n": [9, 1]}) and not det({"n|lte": 5})({"n": "x"})


@given(st.binary(min_size=1, max_size=12), st.binary(max_size=5), st.binary(max_size=5))
def test_base64offset_finds_the_value_at_any_offset(value: bytes, pre: bytes, post: bytes) -> None:
    text = value.decode("latin-1")
    encoded = base64.b64encode(pre + text.encode("utf-8") + post).decode()
    assert det({"x|base64offset|contains": ss.escape(text)})({"x": encoded})


def test_base64_and_utf16() -> None:
    enc = base64.b64encode(b"whoami").decode()
    assert det({"x|base64": "whoami"})({"x": enc}) and not det({"x|base64": "whoami"})({"x": enc.lower()})
    wide = base64.b64encode("IEX".encode("utf-16-le")).decode()
    assert det({"x|wide|base64": "IEX"})({"x": wide})
    assert det({"x|utf16le|base64offset|contains": "IEX"})({"x": "zz" + base64.b64encode(b"ab" + "IEX".encode("utf-16-le")).decode()})


def test_windash_and_neq_and_fieldref() -> None:
    t = det({"cmd|windash|contains": " -enc "})
    for dash in ("-", "/", "\u2013", "\u2014", "\u2015"):
        assert t({"cmd": f"p {dash}enc x"})
    assert not t({"cmd": "p +enc x"})
    assert det({"a|neq": "x"})({"a": "y"}) and not det({"a|neq": "x"})({"a": "X"})
    assert det({"a|fieldref": "b"})({"a": "Alice", "b": "alice"}) and not det({"a|fieldref": "b"})({"a": "x", "b": "y"})
    assert det({"a|fieldref|neq": "b"})({"a": "x", "b": "y"})


@pytest.mark.parametrize(
    "body,reason",
    [
        ({"a|bogus": "x"}, "unknown modifier 'bogus'"),
        ({"a|expand": "%x%"}, "placeholders"),
        ({"a|hour": 3}, "time-part"),
        ({"a|utf16le": "x"}, "must be followed by 'base64'"),
        ({"a|base64": "x*"}, "cannot encode wildcards"),
        ({"a|gt": "many"}, "needs numbers"),
        ({"a|cidr": "10.0.0.0/33"}, "invalid CIDR"),
        ({"a|re": "("}, "invalid regular expression"),
        ({"a|exists": "yes"}, "true or false"),
        ({"a": {"b": 1}}, "nested mappings"),
        ({"a|i": "x"}, "only apply to 're'"),
    ],
)
def test_unsupported_modifiers_are_refused_with_a_reason(body: dict[str, Any], reason: str) -> None:
    with pytest.raises(RuleError, match=re.escape(reason)):
        det(body)


def test_keywords_search_every_text_value() -> None:
    d = compile_detection({"kw": ["dd", "if="], "sel": {"type": "EXECVE"}, "condition": "sel and kw"}, AUDITKEEP).test
    assert d({"type": "EXECVE", "a0": "dd"}) and not d({"type": "EXECVE", "a0": "ls"})
    d = compile_detection({"kw": {"|all": ["dd", "if="]}, "condition": "kw"}, AUDITKEEP).test
    assert d({"a0": "dd", "a1": "if=/dev/zero"}) and not d({"a0": "dd", "a1": "of=/x"})


# -- conditions ----------------------------------------------------------------------------

NAMES = ["sel_a", "sel_b", "filter_x", "filter_y", "kw"]


def _render(node: cond.Node) -> str:
    if isinstance(node, cond.Ref):
        return node.name
    if isinstance(node, cond.Not):
        return f"not ({_render(node.inner)})"
    if isinstance(node, cond.And):
        return " and ".join(f"({_render(n)})" for n in node.items)
    if isinstance(node, cond.Or):
        return " or ".join(f"({_render(n)})" for n in node.items)
    if isinstance(node, cond.OneOf):
        return "1 of " + ("them" if set(node.names) == set(NAMES) else node.names[0].split("_")[0] + "_*")
    return "all of " + ("them" if set(node.names) == set(NAMES) else node.names[0].split("_")[0] + "_*")


def _groups(prefix: str) -> tuple[str, ...]:
    return tuple(n for n in NAMES if n.startswith(prefix + "_"))


nodes = st.recursive(
    st.one_of(
        st.sampled_from(NAMES).map(cond.Ref),
        st.sampled_from(["sel", "filter"]).map(lambda p: cond.OneOf(_groups(p))),
        st.sampled_from(["sel", "filter"]).map(lambda p: cond.AllOf(_groups(p))),
        st.just(cond.OneOf(tuple(NAMES))),
        st.just(cond.AllOf(tuple(NAMES))),
    ),
    lambda children: st.one_of(
        children.map(cond.Not),
        st.lists(children, min_size=2, max_size=3).map(lambda xs: cond.And(tuple(xs))),
        st.lists(children, min_size=2, max_size=3).map(lambda xs: cond.Or(tuple(xs))),
    ),
    max_leaves=8,
)


@settings(max_examples=300)
@given(nodes, st.fixed_dictionaries({n: st.booleans() for n in NAMES}))
def test_parsed_conditions_evaluate_like_the_tree_they_print(node: cond.Node, truth: dict[str, bool]) -> None:
    parsed = cond.parse_condition(_render(node), NAMES)
    assert cond.evaluate(parsed, truth) == cond.evaluate(node, truth)


def test_precedence_not_and_or() -> None:
    p = cond.parse_condition("sel_a or sel_b and not filter_x", NAMES)
    assert p == cond.Or((cond.Ref("sel_a"), cond.And((cond.Ref("sel_b"), cond.Not(cond.Ref("filter_x"))))))
    p = cond.parse_condition("not 1 of filter_* and all of sel_*", NAMES)
    assert p == cond.And((cond.Not(cond.OneOf(("filter_x", "filter_y"))), cond.AllOf(("sel_a", "sel_b"))))
    assert cond.parse_condition("1 of them", ["a", "_hidden"]) == cond.OneOf(("a",))
    assert cond.parse_condition("SEL_A AND NOT filter_x", ["SEL_A", "filter_x"]) == cond.And((cond.Ref("SEL_A"), cond.Not(cond.Ref("filter_x"))))


@pytest.mark.parametrize(
    "text,reason",
    [
        ("sel_a | count() > 5", "aggregation"),
        ("sel_a near sel_b", "near"),
        ("2 of sel_*", "'2 of' is not supported"),
        ("nope", "unknown search identifier"),
        ("1 of zz*", "matches no search identifier"),
        ("sel_*", "needs '1 of'"),
        ("(sel_a", "missing ')'"),
        ("sel_a and", "unexpected end"),
        ("sel_a sel_b", "unexpected 'sel_b'"),
        ("sel_a & sel_b", "unexpected character"),
        ("", "empty condition"),
    ],
)
def test_bad_conditions_are_refused(text: str, reason: str) -> None:
    with pytest.raises(RuleError, match=re.escape(reason)):
        cond.parse_condition(text, NAMES)


@settings(max_examples=200)
@given(st.text(alphabet="abc_*() |&", max_size=20))
def test_parser_never_crashes_on_garbage(text: str) -> None:
    try:
        node = cond.parse_condition(text, ["a", "b", "c_1"])
    except RuleError as exc:
        assert exc.reason.startswith("condition:")
    else:
        assert cond.referenced(node) <= {"a", "b", "c_1"}
