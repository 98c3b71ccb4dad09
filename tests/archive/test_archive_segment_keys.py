"""A sealed segment's own data key: the offline verifier (examples/verify_segment.py) opens
and checks its leaves when given the segment key file, and refuses another segment's; a
master-key rotation re-wraps the segments' keys in a rewritable key object beside each
segment (directory, and S3 with Object Lock), in two phases that survive a stop between them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import zstandard
from archive_support import DAY, S3Endpoint, fill, key

from auditkeep.archive.check import (
    check_segment,
    load_segment_key,
    read_segment,
    read_segment_files,
)
from auditkeep.archive.keys import (
    add_wraps,
    key_object_name,
    rotate_with_segments,
    segment_data_key,
    segment_key_file,
)
from auditkeep.archive.run import run_archive
from auditkeep.archive.target import DirTarget, S3Target, Target
from auditkeep.crypto.atrest import EncryptionSettings, LocalKms, new_master_key
from auditkeep.errors import UserError
from auditkeep.ledger import Ledger
from auditkeep.ledger.atrest import EncryptedStore

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "verify_segment.py"
ON = EncryptionSettings(enabled=True)
ADMIN = {"id": "admin", "type": "user"}
SEG = "default/000000000000-000000000256"
SEG2 = "default/000000000256-000000000300"


def _kms(lg: Ledger) -> LocalKms:
    store = lg.store
    assert isinstance(store, EncryptedStore)
    kms = store.keys.kms
    assert isinstance(kms, LocalKms)
    return kms


def _archived(tmp_path: Path, target: Target) -> tuple[Ledger, str]:
    lg = Ledger.open(tmp_path / "data", encryption=ON, background=False)
    fill(lg, 300)
    done = run_archive(lg, target, [], 256, lg.head("default").received_ns + DAY, older_than_ns=1)
    assert done[0].segments == [(0, 256), (256, 300)]
    return lg, key(lg)


def _verify(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(EXAMPLE), *args], capture_output=True, text=True, timeout=120)


def test_the_offline_verifier_opens_a_sealed_segment_with_its_key(tmp_path: Path) -> None:
    target = DirTarget(tmp_path / "arch")
    lg, vkey = _archived(tmp_path, target)
    with lg:
        keys = {}
        for seg in (SEG, SEG2):
            manifest, _ = read_segment(target.get, seg)
            data_key = segment_data_key(target.get, seg, manifest, _kms(lg))
            assert data_key is not None
            keys[seg] = tmp_path / f"{seg.rsplit('/', 1)[1]}.segkey"
            keys[seg].write_bytes(segment_key_file(manifest, data_key))
    seg = str(tmp_path / "arch" / SEG) + ".manifest.json"
    r = _verify(seg, "--key", vkey)
    assert r.returncode == 0 and "256 leaves are sealed" in r.stdout and "0 checked" in r.stdout, r.stdout + r.stderr
    r = _verify(seg, "--key", vkey, "--segment-key", str(keys[SEG]))
    assert r.returncode == 0 and "256 checked" in r.stdout and "sealed" not in r.stdout, r.stdout + r.stderr
    r = _verify(seg, "--key", vkey, "--segment-key", str(keys[SEG2]))  # another segment's key
    assert r.returncode == 2 and "the segment key is for" in r.stderr, r.stdout + r.stderr

    # a changed sealed line, caught by the line with the key; a key of the right context but wrong
    manifest, data = read_segment_files(tmp_path / "arch" / SEG)
    lines = zstandard.ZstdDecompressor().stream_reader(data).read().split(b"\n")
    row = json.loads(lines[9])
    row["sealed"] = row["sealed"][:20] + ("A" if row["sealed"][20] != "A" else "B") + row["sealed"][21:]
    lines[9] = json.dumps(row, separators=(",", ":")).encode()
    bad = zstandard.ZstdCompressor().compress(b"\n".join(lines))
    good_key = load_segment_key(keys[SEG].read_bytes(), manifest)
    rep = check_segment(manifest, bad, [vkey], data_key=good_key)
    assert any("line 10 (index 9): the sealed leaf does not open" in f for f in rep.failures), rep.failures
    assert rep.entries == 255
    rep = check_segment(manifest, data, [vkey], data_key=bytes(32))
    assert not rep.ok and rep.entries == 0
    assert any("none of the 256 sealed leaves opens with the key given" in f for f in rep.failures), rep.failures


def _check_all(target: Target, vkey: str, kms: LocalKms) -> None:
    for seg in (SEG, SEG2):
        manifest, data = read_segment(target.get, seg)
        rep = check_segment(manifest, data, [vkey], data_key=segment_data_key(target.get, seg, manifest, kms))
        assert rep.ok and rep.sealed == 0 and rep.entries > 0, rep.failures


def test_rotation_rewraps_the_segment_keys_and_finishes_a_stopped_run(tmp_path: Path) -> None:
    target = DirTarget(tmp_path / "arch")
    lg, vkey = _archived(tmp_path, target)
    new = LocalKms(new_master_key())
    with lg:
        old = _kms(lg)
        # a rotation stopped after its first phase: both master keys open every segment
        assert add_wraps(target, old, new).changed == 2
        for kms in (old, new):
            _check_all(target, vkey, kms)
        manifest = target.get(SEG + ".manifest.json")
        assert manifest is not None and json.loads(manifest)["data"]["sealed"]["master_key"] == old.key_id  # as written
        done = rotate_with_segments(lg, new, ADMIN, target)  # run again: finished
        assert done.keys > 0 and done.added is not None and done.added.changed == 0
        assert done.dropped is not None and done.dropped.changed == 2 and not done.dropped.left
        _check_all(target, vkey, new)
        with pytest.raises(UserError, match="wrapped under master key " + new.key_id):
            segment_data_key(target.get, SEG, manifest, old)
        wraps = json.loads(target.get(key_object_name(SEG)) or b"")["wraps"]
        assert [w["master_key"] for w in wraps] == [new.key_id]
        # the store's keys moved too, and the rotation is in the log
        assert _kms(lg).key_id == new.key_id
        assert lg.record_at(lg.head("default").size - 1).event.action == "auditkeep.encryption.rotated"
        # again with the same key: nothing left to do
        again = rotate_with_segments(lg, new, ADMIN, target)
        assert again.keys == 0 and again.dropped is not None and again.dropped.changed == 0


def test_a_segment_archived_after_the_rotation_needs_no_key_object(tmp_path: Path) -> None:
    target = DirTarget(tmp_path / "arch")
    lg, vkey = _archived(tmp_path, target)
    new = LocalKms(new_master_key())
    with lg:
        rotate_with_segments(lg, new, ADMIN, target)
        fill(lg, 300, start=300)
        done = run_archive(lg, target, [], 256, lg.head("default").received_ns + DAY, older_than_ns=1)
        first, end = done[0].segments[0]
        assert first >= 300
        later = f"default/{first:012d}-{end:012d}"
        manifest, data = read_segment(target.get, later)
        assert target.get(key_object_name(later)) is None
        rep = check_segment(manifest, data, [vkey], data_key=segment_data_key(target.get, later, manifest, new))
        assert rep.ok and rep.entries == end - first


def test_rotation_rewraps_segment_keys_in_a_locked_s3_bucket(s3: S3Endpoint, tmp_path: Path) -> None:
    bucket = s3.new_bucket()
    target = S3Target(bucket, "audit/", s3.url, "us-east-1", 1, "COMPLIANCE")
    lg, vkey = _archived(tmp_path, target)
    new = LocalKms(new_master_key())
    with lg:
        done = rotate_with_segments(lg, new, ADMIN, target)
        assert done.dropped is not None and done.dropped.changed == 2
    _check_all(target, vkey, new)
    client = s3.client()
    name = "audit/" + key_object_name(SEG)
    assert "ObjectLockMode" not in client.head_object(Bucket=bucket, Key=name)  # rewritable: not locked
    versions = [v for v in client.list_object_versions(Bucket=bucket, Prefix=name).get("Versions", []) if v["Key"] == name]
    assert len(versions) == 1  # the wrap under both keys (phase one) is gone
    manifest = "audit/" + SEG + ".manifest.json"
    assert client.head_object(Bucket=bucket, Key=manifest)["ObjectLockMode"] == "COMPLIANCE"  # segments stay locked
