"""Redactor: field rules, detectors over the whole event, bookkeeping, real records."""

from __future__ import annotations

import copy
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditkeep.model import Event, convert_event, validate_event
from auditkeep.policy import FieldRule, PolicyError, Redactor, mask_ip, mask_value
from testdata_path import require_testdata

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"


def _event(**over: Any) -> Event:
    fields: dict[str, Any] = {
        "actor": {
            "id": "alice@example.com",
            "name": "alice@example.com",
            "ip": "203.0.113.77",
            "user_agent": "curl/8",
        },
        "action": "user.update",
        "reason": "ok",
        "resource": {"type": "user", "id": "u-1"},
        "metadata": {
            "request": {
                "headers": {"authorization": "Basic YWxhZGRpbjpvcGVuc2VzYW1l", "x-trace": "t-1"},
                "body": {
                    "password": "hunter2",
                    "note": f"sso {JWT}",
                    "cards": ["4111 1111 1111 1111", "n/a"],
                },
            },
            "contact": "mail bob@example.org",
            "count": 3,
        },
    }
    fields.update(over)
    return convert_event(fields)


def test_detectors_and_secret_keys_over_the_whole_event() -> None:
    ev = Redactor()(_event(reason="token Bearer abc.def"), "api")
    validate_event(ev)
    assert ev.actor.id == "alice@example.com"  # exempt: who acted
    assert ev.reason == "token Bearer [REDACTED:bearer_token]"
    assert ev.metadata is not None
    req = ev.metadata["request"]
    assert req["headers"]["authorization"] == "[REDACTED:secret]"
    assert req["headers"]["x-trace"] == "t-1"
    assert req["body"]["password"] == "[REDACTED:password]"
    assert req["body"]["note"] == "sso [REDACTED:jwt]"
    assert req["body"]["cards"] == ["[REDACTED:card_number]", "n/a"]
    assert ev.metadata["contact"] == "mail [REDACTED:email]"
    assert ev.metadata["count"] == 3
    assert ev.metadata["_redacted"] == [
        "metadata.contact",
        "metadata.request.body.cards[0]",
        "metadata.request.body.note",
        "metadata.request.body.password",
        "metadata.request.headers.authorization",
        "reason",
    ]


def test_redaction_is_idempotent() -> None:
    r = Redactor(
        [FieldRule("actor.ip", "mask"), FieldRule("metadata.contact", "mask", keep_last=4)]
    )
    once = r(_event(), "api")
    snapshot = msgspec.json.encode(once)
    twice = r(once, "api")
    assert msgspec.json.encode(twice) == snapshot


def test_field_rules() -> None:
    r = Redactor(
        [
            FieldRule("metadata.request.headers", "drop"),
            FieldRule("metadata.request.body.*", "mask", keep_last=2),
            FieldRule("actor.ip", "mask"),
            FieldRule("actor.user_agent", "drop"),
            FieldRule("metadata.absent.path", "drop"),
        ],
        detectors=[],
        secret_keys=False,
    )
    ev = r(_event(), "api")
    validate_event(ev)
    assert ev.actor.ip == "203.0.113.0" and ev.actor.user_agent is None
    assert ev.metadata is not None
    assert "headers" not in ev.metadata["request"]
    body = ev.metadata["request"]["body"]
    assert body["password"] == "[REDACTED:masked]…r2"
    assert body["cards"] == "[REDACTED:masked]"  # not text: no hint
    assert ev.metadata["_redacted"] == [
        "actor.ip",
        "actor.user_agent",
        "metadata.request.body.cards",
        "metadata.request.body.note",
        "metadata.request.body.password",
        "metadata.request.headers",
    ]


def test_masking_helpers() -> None:
    assert mask_value("4111111111111111", 4) == "[REDACTED:masked]…1111"
    assert mask_value("abc", 4) == "[REDACTED:masked]"  # too short to show a hint
    assert mask_value("[REDACTED:masked]…1111", 4) == "[REDACTED:masked]…1111"
    assert mask_ip("2001:db8:1234:5678::1") == "2001:db8:1234::"
    assert mask_ip("10.1.2.3") == "10.1.2.0"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (("actor.id", "drop"), "required field"),
        (("action", "mask"), "only metadata"),
        (("id", "mask"), "only metadata"),
        (("metadata..x", "drop"), "dotted names"),
        (("metadata.x", "hide"), "drop or mask"),
    ],
)
def test_field_rule_errors(rule: tuple[str, Any], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        FieldRule(*rule)


def test_from_dict() -> None:
    r = Redactor.from_dict(
        {
            "detectors": ["email"],
            "exempt": [],
            "fields": [{"path": "metadata.request.body", "action": "drop"}],
        }
    )
    ev = r(_event(), "api")
    assert ev.actor.id == "[REDACTED:email]"  # nothing exempt
    assert ev.metadata is not None and "body" not in ev.metadata["request"]
    for bad in (
        {"fields": [{"path": "metadata.x", "action": "drop", "why": 1}]},
        {"detectors": ["ssn"]},
        {"exempt": "actor.id"},
        {"colour": "red"},
        {"fields": [{"path": "metadata.x", "keep_last": "four"}]},
    ):
        with pytest.raises(PolicyError):
            Redactor.from_dict(bad)


def test_clean_event_is_untouched() -> None:
    ev = convert_event(
        {"actor": {"id": "svc"}, "action": "job.run", "metadata": {"n": 1, "ok": "yes"}}
    )
    before = msgspec.json.encode(ev)
    assert msgspec.json.encode(Redactor()(ev, "api")) == before


def test_event_without_metadata_gets_the_list() -> None:
    ev = Redactor()(
        convert_event({"actor": {"id": "a"}, "action": "x.y", "reason": "pw is password=abc"}),
        "api",
    )
    assert ev.metadata == {"_redacted": ["reason"]}


def test_real_records() -> None:
    data = require_testdata()
    from auditkeep.sources.cloudtrail import parse_cloudtrail
    from auditkeep.sources.kubernetes import parse_k8s_log_line

    line = (
        (data / "kubernetes/falco-traces/create_configmap_sensitive_values.json")
        .read_bytes()
        .splitlines()[0]
    )
    ev = Redactor()(parse_k8s_log_line(line), "kubernetes")
    validate_event(ev)
    assert ev.metadata is not None
    props = ev.metadata["k8s"]["requestObject"]["data"]["access.properties"]
    assert props == "aws_access_key_id = MY-ID\naws_secret_access_key = [REDACTED:password]\n"
    events, _ = parse_cloudtrail(
        (data / "cloudtrail/ec2_proxy_s3_exfiltration_2020-09-14011940.json").read_bytes()
    )
    ct = Redactor()(events[0], "cloudtrail")
    validate_event(ct)
    assert ct.metadata is not None
    assert ct.metadata["cloudtrail"]["userIdentity"]["accessKeyId"] == "[REDACTED:aws_access_key]"
    assert "metadata.cloudtrail.userIdentity.accessKeyId" in ct.metadata["_redacted"]


_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.text(max_size=30)
    | st.sampled_from(
        ["password=x1", "4111 1111 1111 1111", "AKIAIOSFODNN7EXAMPLE", "a@b.io", JWT, "Bearer zz"]
    )
)
_meta = st.recursive(
    _leaf,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["a", "password", "note", "token", "x-y", "api_key"])
            | st.text(max_size=6),
            inner,
            max_size=3,
        )
    ),
    max_leaves=25,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.text(min_size=1, max_size=8), _meta, max_size=5), st.text(max_size=40))
def test_redacted_events_validate_and_are_stable(meta: dict[str, Any], reason: str) -> None:
    ev = convert_event(
        {"actor": {"id": "a"}, "action": "x.y", "reason": reason or None, "metadata": meta}
    )
    r = Redactor([FieldRule("metadata.note", "mask", keep_last=2)])
    once = r(ev, "api")
    validate_event(copy.deepcopy(once))
    snapshot = msgspec.json.encode(once)
    assert msgspec.json.encode(r(once, "api")) == snapshot
    if once.metadata and "_redacted" in once.metadata:
        paths = once.metadata["_redacted"]
        assert paths == sorted(set(paths))


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_meta, st.text(max_size=40)), min_size=1, max_size=6))
def test_a_batch_is_redacted_as_each_event_alone(items: list[tuple[Any, str]]) -> None:
    """redact_many searches the strings of the whole batch at once; every event must come out
    as it does when redacted alone (the same values, the same _redacted list)."""
    def events() -> list[Event]:
        return [
            convert_event({"actor": {"id": "a"}, "action": "x.y", "reason": reason or None,
                           "metadata": copy.deepcopy({"m": meta, "contact": "mail bob@example.org"} if i % 2 else {"m": meta})})
            for i, (meta, reason) in enumerate(items)
        ]

    r = Redactor([FieldRule("metadata.m.note", "mask", keep_last=2)])
    alone = [msgspec.json.encode(r(ev, "api")) for ev in events()]
    batch = events()
    r.redact_many(batch)
    assert [msgspec.json.encode(ev) for ev in batch] == alone
