"""Archive segments on a real S3 HTTP endpoint (moto's server) with Object Lock."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from archive_support import DAY, S3Endpoint, check, fill, key

from auditkeep.archive.run import archived_to, list_segments, run_archive
from auditkeep.archive.target import ArchiveTargetError, S3Target
from auditkeep.ledger import Ledger

botocore_exceptions = pytest.importorskip("botocore.exceptions")


def _target(s3: S3Endpoint, bucket: str, lock_days: int = 1) -> S3Target:
    return S3Target(bucket, "audit/", s3.url, "us-east-1", lock_days, "COMPLIANCE")


def test_segments_go_to_s3_locked_in_compliance_mode(s3: S3Endpoint, tmp_path: Path) -> None:
    bucket = s3.new_bucket()
    target = _target(s3, bucket)
    with Ledger.open(tmp_path / "data") as lg:
        fill(lg, 700)
        done = run_archive(lg, target, [], 256, lg.head("default").received_ns + DAY, older_than_ns=1)
        assert done[0].segments == [(0, 256), (256, 512), (512, 700)]
        assert archived_to(lg.store, lg.tenant_id("default")) == 700
        for first, end in done[0].segments:
            rep = check(target, "default", first, end, key(lg))
            assert rep.ok and rep.entries == end - first, rep.failures
    client = s3.client()
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"])
    assert [k.rsplit(".", 2)[0].split(".")[0] for k in keys] == [
        f"audit/default/{a:012d}-{b:012d}" for a, b in [(0, 256), (256, 512), (512, 700)] for _ in range(2)]
    assert sum(k.endswith(".manifest.json") for k in keys) == 3
    head = client.head_object(Bucket=bucket, Key=keys[0])
    assert head["ObjectLockMode"] == "COMPLIANCE"
    until = head["ObjectLockRetainUntilDate"]
    assert dt.timedelta(hours=23) < until - dt.datetime.now(dt.UTC) <= dt.timedelta(days=1)
    rows = list_segments(target, "default")
    assert [(r["first"], r["end"], r["complete"]) for r in rows] == [(0, 256, True), (256, 512, True), (512, 700, True)]
    assert (target.retention("default/000000000000-000000000256.manifest.json") or "").startswith("COMPLIANCE until")


def test_a_locked_segment_can_be_neither_deleted_nor_overwritten(s3: S3Endpoint, tmp_path: Path) -> None:
    bucket = s3.new_bucket()
    target = _target(s3, bucket)
    with Ledger.open(tmp_path / "data") as lg:
        fill(lg, 300)
        run_archive(lg, target, [], 4096, lg.head("default").received_ns + DAY, older_than_ns=1)
        k = key(lg)
    client = s3.client()
    name = next(o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"] if o["Key"].endswith(".jsonl.zst"))
    original = client.get_object(Bucket=bucket, Key=name)
    version, body = original["VersionId"], original["Body"].read()
    for bypass in (False, True):  # compliance mode: not even with the governance bypass
        with pytest.raises(botocore_exceptions.ClientError) as exc:
            client.delete_object(Bucket=bucket, Key=name, VersionId=version, BypassGovernanceRetention=bypass)
        assert exc.value.response["Error"]["Code"] == "AccessDenied"
    # an overwrite only stacks a new version on top: the locked one stays, byte for byte
    client.put_object(Bucket=bucket, Key=name, Body=b"forged")
    assert client.get_object(Bucket=bucket, Key=name, VersionId=version)["Body"].read() == body
    versions = client.list_object_versions(Bucket=bucket, Prefix=name)["Versions"]
    assert len(versions) == 2
    # and verify names the forged latest version for what it is
    assert not check(target, "default", 0, 300, k).ok
    # auditkeep itself never replaces an object
    with pytest.raises(ArchiveTargetError, match="never replaced"):
        target.put("default/000000000000-000000000300.manifest.json", b"{}")


def test_server_side_encryption_is_asked_for_each_object(s3: S3Endpoint, tmp_path: Path) -> None:
    bucket = s3.new_bucket()
    target = S3Target(bucket, "", s3.url, "us-east-1", 1, "COMPLIANCE", sse="AES256")
    with Ledger.open(tmp_path / "data") as lg:
        fill(lg, 20)
        run_archive(lg, target, [], 4096, lg.head("default").received_ns + DAY, older_than_ns=1)
        assert check(target, "default", 0, 20, key(lg)).ok
    name = next(o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket)["Contents"] if o["Key"].endswith(".zst"))
    head = s3.client().head_object(Bucket=bucket, Key=name)
    assert head["ServerSideEncryption"] == "AES256"


def test_a_bucket_without_object_lock_refuses_locked_writes(s3: S3Endpoint, tmp_path: Path) -> None:
    bucket = s3.new_bucket(lock=False)
    with Ledger.open(tmp_path / "data") as lg:
        fill(lg, 10)
        with pytest.raises(ArchiveTargetError, match="cannot store"):
            run_archive(lg, _target(s3, bucket), [], 4096, lg.head("default").received_ns + DAY, older_than_ns=1)
        assert archived_to(lg.store, lg.tenant_id("default")) == 0  # nothing recorded as archived
