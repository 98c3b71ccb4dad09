"""CloudTrail records: real samples, file forms (document, gzip, array, lines), rules."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from json_strategy import json_values  # type: ignore[import-not-found]

from auditkeep.model import Event, validate_event
from auditkeep.sources.base import SourceError
from auditkeep.sources.cloudtrail import (
    MAX_RECORD_BYTES,
    cloudtrail_actor_type,
    cloudtrail_outcome,
    cloudtrail_time,
    map_cloudtrail_record,
    parse_cloudtrail,
)

EXFIL = "ec2_proxy_s3_exfiltration_2020-09-14011940.json"
RULES = "aws_cloudtrail_rules.tests.jsonl"


def _rows(testdata: Path) -> list[dict[str, Any]]:
    text = (testdata / "cloudtrail" / RULES).read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _log(testdata: Path, test_name: str, rule_id: str | None = None) -> dict[str, Any]:
    for row in _rows(testdata):
        if row["test_name"] == test_name and (rule_id is None or row["rule_id"] == rule_id):
            return dict(row["log"])
    raise AssertionError(f"{test_name!r} not found")


def _valid(ev: Event) -> Event:
    validate_event(ev)
    return ev


def test_exfiltration_dataset_maps_fully(testdata: Path) -> None:
    data = (testdata / "cloudtrail" / EXFIL).read_bytes()
    events, errors = parse_cloudtrail(data)
    assert errors == []
    assert len(events) == len([line for line in data.splitlines() if line.strip()]) == 103
    for ev in events:
        _valid(ev)
    first = events[0]
    assert first.actor.id == "arn:aws:iam::123456789123:user/pedro"
    assert (first.actor.type, first.actor.name, first.actor.ip) == ("user", "pedro", "1.2.3.4")
    assert first.actor.user_agent == "console.ec2.amazonaws.com"
    assert first.action == "aws.ec2.DescribeInstanceTypes"
    assert first.id == "fd4f1042-c7f6-4107-a6ee-d841d92596e7"
    assert first.time == "2020-09-14T00:44:23Z"  # no eventTime in this export: @timestamp
    assert (first.category, first.outcome) == ("data_access", "success")
    assert first.source is not None
    assert first.source.service == "ec2.amazonaws.com"
    assert first.source.request_id == "2db6a7b5-876c-4995-8258-e6f09d9ef934"
    assert first.metadata is not None
    assert (first.metadata["account"], first.metadata["region"]) == ("123456789123", "us-east-1")
    assert first.metadata["cloudtrail"]["eventVersion"] == "1.05"
    # Re-ingesting the file gives the same ids.
    again, _ = parse_cloudtrail(data)
    assert [e.id for e in again] == [e.id for e in events]


def test_rules_file_maps_or_refuses_with_reason(testdata: Path) -> None:
    lines = [orjson.dumps(row["log"]) for row in _rows(testdata)]
    events, errors = parse_cloudtrail(b"\n".join(lines))
    assert len(events) + len(errors) == len(lines) == 461
    assert len(events) >= 430
    for ev in events:
        _valid(ev)
        assert ev.action.startswith("aws.")
    reasons = {e.reason for e in errors}
    assert "eventSource is missing" in reasons
    assert "userIdentity is missing" in reasons
    assert any(r.startswith("eventTime: not a timestamp") for r in reasons)
    for err in errors:
        assert err.raw in lines  # each refusal keeps its own record as received


def test_s3_access_denied(testdata: Path) -> None:
    ev = _valid(map_cloudtrail_record(_log(testdata, "S3 Failed to make Publicly Accessible")))
    assert ev.action == "aws.s3.PutBucketPolicy"
    assert ev.outcome == "denied"
    assert ev.resource is not None
    assert (ev.resource.type, ev.resource.id, ev.resource.name) == (
        "AWS::S3::Bucket",
        "arn:aws:s3:::example-bucket",
        "example-bucket",
    )
    assert ev.category == "data_change"
    # "1111" is no UUID: the id is derived from the record, the same every time.
    assert ev.id != "1111"
    assert (
        ev.id == map_cloudtrail_record(_log(testdata, "S3 Failed to make Publicly Accessible")).id
    )


def test_console_password_change_from_aws_internal(testdata: Path) -> None:
    ev = _valid(map_cloudtrail_record(_log(testdata, "ChangeOwnPassword")))
    assert ev.actor.id == "arn:aws:sts::98765432:assumed-role/IAM/alice"
    assert ev.actor.type == "user"  # AWS Internal is where the console calls from
    assert ev.actor.ip is None
    assert ev.metadata is not None and ev.metadata["source_address"] == "AWS Internal"
    assert ev.action == "aws.iam.UpdateLoginProfile"
    assert ev.category == "authorization"
    assert ev.time == "2022-09-15T13:45:24Z"  # eventTime is UTC, written here without a zone
    assert ev.resource is not None and (ev.resource.type, ev.resource.id) == (
        "AWS::IAM::User",
        "alice",
    )


def test_role_assumed_by_a_service(testdata: Path) -> None:
    ev = _valid(map_cloudtrail_record(_log(testdata, "Role Assumed by AWS Service")))
    assert ev.action == "aws.sts.AssumeRole"
    assert ev.actor.type == "service"
    assert ev.category == "authentication"
    assert ev.id == "1f3d7d49-6637-3304-b959-9be15f20215d"
    assert ev.resource is not None
    assert ev.resource.id == "arn:aws:iam::123456789123:role/my_role_arn"
    assert ev.resource.type == "AWS::IAM::Role" and ev.resource.name == "my_role_arn"


def test_failed_console_login_without_error_code(testdata: Path) -> None:
    ev = _valid(map_cloudtrail_record(_log(testdata, "Failed Console Login - Root User")))
    assert ev.action == "aws.signin.ConsoleLogin"
    assert ev.outcome == "failure"
    assert ev.actor.id == "root" and ev.actor.type == "user"
    assert ev.time is None  # the record has no time: the ledger stamps the receive time


def test_unauthorized_operation_keeps_the_message(testdata: Path) -> None:
    ev = _valid(
        map_cloudtrail_record(
            _log(testdata, "Unsuccessful Attempt", "AWS.EC2.DownloadInstanceUserData")
        )
    )
    assert ev.outcome == "denied"
    assert ev.reason is not None and ev.reason.startswith(
        "You are not authorized to perform this operation."
    )


def test_nanosecond_naive_time(testdata: Path) -> None:
    ev = _valid(
        map_cloudtrail_record(_log(testdata, "Model Invocation Logging Configuration Deleted"))
    )
    assert ev.time == "2025-01-21T17:49:47Z"
    assert ev.actor.ip == "161.97.249.211"
    assert ev.category == "data_change"


# --------------------------------------------------------------------------- file forms


def _exfil_records(testdata: Path) -> list[dict[str, Any]]:
    data = (testdata / "cloudtrail" / EXFIL).read_bytes()
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def test_records_document_plain_and_gzip(testdata: Path) -> None:
    records = _exfil_records(testdata)
    doc = orjson.dumps({"Records": records})
    plain, errors = parse_cloudtrail(doc)
    assert not errors and len(plain) == 103
    zipped, errors = parse_cloudtrail(gzip.compress(doc))
    assert not errors
    assert [e.id for e in zipped] == [e.id for e in plain]
    array, errors = parse_cloudtrail(orjson.dumps(records))
    assert not errors and [e.id for e in array] == [e.id for e in plain]
    # JSON Lines of whole documents, as some exporters write them.
    lines = b"\n".join(
        [orjson.dumps({"Records": records[:50]}), orjson.dumps({"Records": records[50:]})]
    )
    both, errors = parse_cloudtrail(lines)
    assert not errors and [e.id for e in both] == [e.id for e in plain]


def test_a_single_record_object(testdata: Path) -> None:
    rec = _exfil_records(testdata)[0]
    events, errors = parse_cloudtrail(orjson.dumps(rec, option=orjson.OPT_INDENT_2))
    assert not errors and len(events) == 1


def test_bad_input_is_refused_whole() -> None:
    for data, reason in [
        (b"\x1f\x8b\x08\x00garbage", "bad gzip data"),
        (gzip.compress(b'{"Records": [')[:-4], "bad gzip data"),
        (b"hello", "not JSON"),
        (b"[1, 2", "malformed JSON"),
    ]:
        events, errors = parse_cloudtrail(data)
        assert events == [] and len(errors) == 1
        assert reason in errors[0].reason
    assert parse_cloudtrail(b"  \n") == ([], [])


def test_records_that_are_not_objects(testdata: Path) -> None:
    events, errors = parse_cloudtrail(b'{"Records": [1, "x", null]}')
    assert events == [] and len(errors) == 3
    assert all("expected a JSON object" in e.reason for e in errors)
    assert [e.raw for e in errors] == [b"1", b'"x"', b"null"]


def test_gzip_bomb_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import auditkeep.sources.cloudtrail as ct

    monkeypatch.setattr(ct, "MAX_DECOMPRESSED_BYTES", 1000)
    _, errors = parse_cloudtrail(gzip.compress(b" " * 5000))
    assert errors and "more than 1000 bytes" in errors[0].reason


def test_deep_and_large_records_still_fit(testdata: Path) -> None:
    rec = _exfil_records(testdata)[0]
    deep: Any = "bottom"
    for _ in range(12):
        deep = {"d": deep}
    rec = dict(rec, requestParameters={"deep": deep}, responseElements={"blob": ["x" * 8000] * 10})
    ev = _valid(map_cloudtrail_record(rec))
    assert ev.metadata is not None
    assert ev.metadata["_omitted"] == ["metadata.cloudtrail.responseElements"]
    assert isinstance(
        ev.metadata["cloudtrail"]["requestParameters"]["deep"]["d"]["d"]["d"]["d"]["d"], str
    )


def test_ten_megabyte_line_is_refused() -> None:
    line = b'{"eventSource":"s3.amazonaws.com","x":"' + b"a" * (10 << 20) + b'"}'
    assert len(line) > MAX_RECORD_BYTES
    events, errors = parse_cloudtrail(line + b"\n" + line)
    assert events == [] and len(errors) >= 1
    assert all("bytes, more than" in e.reason for e in errors)


# --------------------------------------------------------------------------- rules


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        ("AccessDenied", "denied"),
        ("UnauthorizedOperation", "denied"),
        ("Client.UnauthorizedOperation", "denied"),
        ("VpceAccessDenied", "denied"),
        ("AccessDeniedException", "denied"),
        ("NoSuchEntity", "failure"),
        ("Client.DryRunOperation", "failure"),
        ("", "success"),
        (None, "success"),
    ],
)
def test_outcome_rule(code: str | None, outcome: str) -> None:
    assert cloudtrail_outcome(code) == outcome


@pytest.mark.parametrize(
    ("identity", "ip", "kind"),
    [
        (
            {"type": "AWSService", "invokedBy": "lambda.amazonaws.com"},
            "lambda.amazonaws.com",
            "service",
        ),
        ({"type": "AssumedRole", "invokedBy": "ec2.amazonaws.com"}, "1.2.3.4", "service"),
        (
            {"type": "AssumedRole", "arn": "arn:aws:sts::1:assumed-role/r/i-0123456789abcdef0"},
            "1.2.3.4",
            "service",
        ),
        (
            {
                "type": "AssumedRole",
                "sessionContext": {
                    "sessionIssuer": {"arn": "arn:aws:iam::1:role/aws-service-role/x/Y"}
                },
            },
            "1.2.3.4",
            "service",
        ),
        (
            {"type": "AssumedRole", "arn": "arn:aws:sts::1:assumed-role/Admin/alice"},
            "1.2.3.4",
            "user",
        ),
        ({"type": "IAMUser"}, "1.2.3.4", "user"),
        ({"type": "Root"}, None, "user"),
        ({"type": "FederatedUser"}, "AWS Internal", "user"),
    ],
)
def test_actor_type_rule(identity: dict[str, Any], ip: str | None, kind: str) -> None:
    assert cloudtrail_actor_type(identity, ip) == kind


def test_time_rule() -> None:
    assert cloudtrail_time("2024-01-01T00:00:00Z") == "2024-01-01T00:00:00Z"
    assert cloudtrail_time("2024-01-01 00:00:00") == "2024-01-01T00:00:00Z"
    with pytest.raises(ValueError):
        cloudtrail_time("2024-02-30T00:00:00Z")


def test_missing_fields_name_the_field() -> None:
    base = {
        "eventSource": "s3.amazonaws.com",
        "eventName": "GetObject",
        "userIdentity": {"type": "IAMUser"},
    }
    with pytest.raises(SourceError, match="userIdentity has no arn"):
        map_cloudtrail_record(base)
    with pytest.raises(SourceError, match="eventName is missing"):
        map_cloudtrail_record({"eventSource": "s3.amazonaws.com"})
    ev = _valid(
        map_cloudtrail_record(dict(base, userIdentity={"type": "IAMUser", "principalId": "AID"}))
    )
    assert ev.actor.id == "AID" and ev.category == "data_access"


# --------------------------------------------------------------------------- robustness


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_garbage_never_crashes(data: bytes) -> None:
    events, errors = parse_cloudtrail(data)
    for ev in events:
        _valid(ev)
    for err in errors:
        assert err.source == "cloudtrail" and err.reason


_json = json_values
_records = st.fixed_dictionaries(
    {},
    optional={
        "eventSource": st.sampled_from(["s3.amazonaws.com", "iam.amazonaws.com", "x y"]) | _json,
        "eventName": st.text(max_size=20) | _json,
        "eventTime": st.datetimes().map(lambda d: d.isoformat(sep=" "))
        | st.text(max_size=25)
        | _json,
        "eventID": st.uuids().map(str) | st.text(max_size=10) | _json,
        "userIdentity": st.fixed_dictionaries(
            {},
            optional={
                "type": st.sampled_from(["IAMUser", "AssumedRole", "AWSService"]) | _json,
                "arn": st.text(max_size=40) | _json,
                "principalId": st.text(max_size=20) | _json,
                "sessionContext": _json,
            },
        )
        | _json,
        "sourceIPAddress": st.ip_addresses().map(str) | st.text(max_size=20) | _json,
        "errorCode": st.sampled_from(["AccessDenied", "Oops", ""]) | _json,
        "readOnly": _json,
        "resources": _json,
        "requestParameters": _json,
    },
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])  # 400 before: cut for the suite's time
@given(st.lists(_records, min_size=1, max_size=3))
def test_any_records_map_to_valid_events_or_reasons(records: list[dict[str, Any]]) -> None:
    events, errors = parse_cloudtrail(orjson.dumps({"Records": records}))
    assert len(events) + len(errors) == len(records)
    for ev in events:
        _valid(ev)
        assert ev.action.startswith("aws.")
