"""OCSF records of real source events (Kubernetes, auditd, CloudTrail through the real
mappers) checked against the vendored OCSF 1.8.0 schema, every class we map to."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import ocsf_schema
import pytest

from auditkeep.export.ocsf import CLASS_NAMES, SCHEMA_VERSION, to_ocsf
from auditkeep.model.event import Event
from auditkeep.sources.auditd import AuditdDecoder, decode_log
from auditkeep.sources.base import SourceError
from auditkeep.sources.cloudtrail import map_cloudtrail_record
from auditkeep.sources.formats import SOURCE_FORMATS
from auditkeep.sources.kubernetes import map_k8s_event
from testdata_path import require_testdata

# An open(2) and an unlink(2) as auditd logs them: the sample logs hold no file syscall.
FILE_LINES = [
    'type=SYSCALL msg=audit(1700000000.100:7): arch=c000003e syscall=257 success=yes exit=3 a0=ffffff9c a1=55 a2=241 a3=1b6 items=2 ppid=10 pid=11 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=2 comm="vi" exe="/usr/bin/vi" key="files"',
    'type=CWD msg=audit(1700000000.100:7): cwd="/home/alice"',
    'type=PATH msg=audit(1700000000.100:7): item=0 name="/etc/" inode=2 dev=08:01 mode=040755 ouid=0 ogid=0 rdev=00:00 nametype=PARENT',
    'type=PATH msg=audit(1700000000.100:7): item=1 name="/etc/passwd" inode=5 dev=08:01 mode=0100644 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL',
    'type=SYSCALL msg=audit(1700000001.100:8): arch=c000003e syscall=87 success=no exit=-13 a0=55 a1=0 a2=0 a3=0 items=1 ppid=10 pid=12 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=2 comm="rm" exe="/usr/bin/rm" key="files"',
    'type=PATH msg=audit(1700000001.100:8): item=0 name="/etc/shadow" inode=6 dev=08:01 mode=0100640 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL',
]


def _source_events() -> list[tuple[str, Event]]:
    data = require_testdata()
    out: list[tuple[str, Event]] = []
    for f in sorted((data / "auditd").rglob("*.log")):
        out += [("auditd", e) for e in SOURCE_FORMATS["auditd"].parse(f.read_bytes()).events]
    for f in ("audit2rbac-demo.log", "failed-authentication.log"):
        out += [("kubernetes", e) for e in SOURCE_FORMATS["kubernetes"].parse((data / "kubernetes" / f).read_bytes()).events]
    ct = data / "cloudtrail" / "ec2_proxy_s3_exfiltration_2020-09-14011940.json"
    out += [("cloudtrail", e) for e in SOURCE_FORMATS["cloudtrail"].parse(ct.read_bytes()).events]
    for path, mapper, name in (
        (data / "cloudtrail" / "aws_cloudtrail_rules.tests.jsonl", map_cloudtrail_record, "cloudtrail"),
        (data / "kubernetes" / "kubernetes_rules.tests.jsonl", map_k8s_event, "kubernetes"),
    ):
        for line in path.read_text().splitlines():
            try:
                out.append((name, mapper(json.loads(line)["log"])))
            except SourceError:
                continue  # test cases of records the mapper refuses
    out += [("auditd", e) for e in decode_log([x.encode() for x in FILE_LINES], AuditdDecoder()).events]
    return out


@pytest.fixture(scope="module")
def mapped() -> list[tuple[str, Event, dict[str, Any]]]:
    return [(src, ev, to_ocsf(ev, tenant="acme", index=i, leaf_hash="00" * 32)) for i, (src, ev) in enumerate(_source_events())]


def test_every_record_conforms_to_its_class(mapped: list[tuple[str, Event, dict[str, Any]]]) -> None:
    failures = {f"{src} {ev.action}": errs for src, ev, rec in mapped if (errs := ocsf_schema.check(rec))}
    assert not failures, dict(list(failures.items())[:5])


def test_every_class_is_reached_by_real_source_events(mapped: list[tuple[str, Event, dict[str, Any]]]) -> None:
    by_class: dict[int, set[str]] = defaultdict(set)
    for src, _, rec in mapped:
        by_class[rec["class_uid"]].add(src)
    assert set(by_class) == set(CLASS_NAMES)
    assert by_class[6003] >= {"kubernetes", "cloudtrail"}
    assert {"auditd"} <= by_class[1007] and {"auditd"} <= by_class[1001] and {"auditd"} <= by_class[4001]
    assert "cloudtrail" in by_class[3001] and "cloudtrail" in by_class[3004]


def _find(mapped: list[tuple[str, Event, dict[str, Any]]], action: str) -> tuple[Event, dict[str, Any]]:
    return next((ev, rec) for _, ev, rec in mapped if ev.action == action)


def test_fields_carry_over(mapped: list[tuple[str, Event, dict[str, Any]]]) -> None:
    ev, rec = _find(mapped, "aws.iam.CreateUser")
    assert (rec["class_uid"], rec["activity_id"], rec["type_uid"]) == (3001, 1, 300101)
    assert rec["metadata"]["product"]["name"] == "auditkeep" and rec["metadata"]["version"] == SCHEMA_VERSION
    assert rec["metadata"]["uid"] == ev.id and rec["metadata"]["log_name"] == "acme"
    assert rec["actor"]["user"]["uid"] == ev.actor.id
    assert ev.time is not None and rec["time"] // 1000 == int(__import__("datetime").datetime.fromisoformat(ev.time).timestamp())
    login = next(rec for _, ev, rec in mapped if ev.action == "auditd.login")
    assert (login["class_uid"], login["activity_id"], login["status_id"]) == (3002, 1, 1)
    opened = next(rec for _, ev, rec in mapped if ev.action == "auditd.syscall.openat")
    assert (opened["class_uid"], opened["activity_id"]) == (1001, 14) and opened["file"]["path"] == "/etc/passwd"
    refused = next(rec for _, ev, rec in mapped if ev.action == "auditd.syscall.unlink")
    assert (refused["activity_id"], refused["status_id"], refused["status_detail"]) == (4, 2, "EACCES")
    connect = next(rec for _, ev, rec in mapped if ev.action == "auditd.syscall.connect" and ev.metadata and "socket" in ev.metadata)
    assert connect["dst_endpoint"]["ip"] == connect["unmapped"]["auditkeep"]["metadata"]["socket"]["addr"]
    execve = next(rec for _, ev, rec in mapped if ev.action == "auditd.syscall.execve" and ev.outcome == "success")
    assert (execve["class_uid"], execve["activity_id"]) == (1007, 1) and isinstance(execve["process"]["pid"], int)


def test_the_checker_catches_departures(mapped: list[tuple[str, Event, dict[str, Any]]]) -> None:
    """The schema check is not vacuous: a missing required attribute, a wrong type and an
    unknown enum value are each reported."""
    _, rec = _find(mapped, "aws.iam.CreateUser")
    for broken in (
        {k: v for k, v in rec.items() if k != "severity_id"},
        {**rec, "time": "yesterday"},
        {**rec, "status_id": 7},
        {**rec, "metadata": {"version": SCHEMA_VERSION}},
        {**rec, "type_uid": 1},
        {**rec, "actor": {}},
    ):
        assert ocsf_schema.check(broken)


def test_mapping_table_is_documented() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "exports.md").read_text()
    for uid, name in CLASS_NAMES.items():
        assert f"| {uid} " in doc and name in doc
