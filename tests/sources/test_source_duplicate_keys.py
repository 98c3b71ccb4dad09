"""A Kubernetes audit record whose JSON repeats a key (`"verb":"list","verb":"delete"`) is
kept in the quarantine with the key named, not mapped from whichever value a parser keeps:
the record goes into the leaf and must have one reading only."""

from __future__ import annotations

from pathlib import Path

from auditkeep.sources.kubernetes import parse_k8s_log_line, parse_k8s_payload


def test_a_record_repeating_a_key_is_refused_naming_it(testdata: Path) -> None:
    lines = (testdata / "kubernetes" / "audit2rbac-demo.log").read_bytes().splitlines()
    body = b'{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[' + b",".join(lines) + b"]}"
    bad = body.replace(b'"verb":"list"', b'"verb":"list","verb":"delete"', 1)
    events, errors = parse_k8s_payload(bad)
    assert len(events) == len(lines) - 1 and len(errors) == 1
    assert "duplicate key 'verb'" in errors[0].reason and b'"verb":"delete"' in errors[0].raw
    assert len(parse_k8s_payload(body)[0]) == len(lines)
    line = lines[0].replace(b'"kind":"Event"', b'"kind":"Event","kind":"Event"')
    try:
        parse_k8s_log_line(line)
    except Exception as exc:
        assert "duplicate key 'kind'" in str(exc)
    else:
        raise AssertionError("a log line repeating a key was mapped")


def test_a_cloudtrail_record_repeating_a_key_is_refused_naming_it(testdata: Path) -> None:
    from auditkeep.sources.cloudtrail import parse_cloudtrail

    data = (testdata / "cloudtrail" / "ec2_proxy_s3_exfiltration_2020-09-14011940.json").read_bytes()
    lines = [line for line in data.splitlines() if line.strip()][:5]
    good = b"\n".join(lines)
    assert len(parse_cloudtrail(good)[0]) == 5
    # the second record names its event twice: which one happened must not depend on the parser
    bad = lines[1].replace(b'"eventName":', b'"eventName":"DeleteBucket","eventName":', 1)
    assert bad != lines[1]
    events, errors = parse_cloudtrail(b"\n".join([lines[0], bad, *lines[2:]]))
    assert len(events) == 4 and len(errors) == 1
    assert "duplicate key 'eventName'" in errors[0].reason and b"DeleteBucket" in errors[0].raw
    # the same inside a Records document
    doc = b'{"Records":[' + b",".join([lines[0], bad]) + b"]}"
    events, errors = parse_cloudtrail(doc)
    assert len(events) == 1 and len(errors) == 1 and "duplicate key 'eventName'" in errors[0].reason


def test_an_otlp_json_request_repeating_a_key_is_refused_naming_it() -> None:
    from auditkeep.sources.otlp import parse_otlp_logs

    record = (b'{"timeUnixNano":"1700000000000000000","attributes":['
              b'{"key":"audit.action","value":{"stringValue":"user.login"}},'
              b'{"key":"audit.actor.id","value":{"stringValue":"alice","stringValue":"mallory"}}]}')
    body = b'{"resourceLogs":[{"scopeLogs":[{"logRecords":[' + record + b"]}]}]}"
    events, errors = parse_otlp_logs(body, "application/json")
    assert events == [] and len(errors) == 1
    assert "duplicate key 'resourceLogs.scopeLogs.logRecords.attributes.value.stringValue'" in errors[0].reason
    fine = body.replace(b',"stringValue":"mallory"', b"")
    events, errors = parse_otlp_logs(fine, "application/json")
    assert len(events) == 1 and errors == [] and events[0].actor is not None and events[0].actor.id == "alice"
