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
