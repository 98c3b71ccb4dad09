"""kill -9 in the middle of an archive upload to S3: nothing is lost, the next run completes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from archive_support import DAY, S3Endpoint, check, fill, key

from auditkeep.archive.run import archived_to, run_archive
from auditkeep.archive.target import S3Target
from auditkeep.ledger import Ledger

HERE = Path(__file__).parent
N = 1500
SEGMENTS = [(0, 256), (256, 512), (512, 768), (768, 1024), (1024, 1280), (1280, 1500)]


@pytest.mark.parametrize("pause_after", [
    ".jsonl.zst",  # the data stored, its manifest not yet
    ".manifest.json",  # the segment stored, the cursor not yet moved
])
def test_kill_9_mid_upload_loses_nothing_and_the_next_run_completes(
    s3: S3Endpoint, tmp_path: Path, pause_after: str
) -> None:
    data = tmp_path / "data"
    with Ledger.open(data) as lg:
        fill(lg, N)
        lg.checkpoint("default", new=True)
        at = lg.head("default").received_ns + DAY
    bucket = s3.new_bucket()
    child = subprocess.Popen(
        [sys.executable, str(HERE / "archive_child.py"), str(data), s3.url, bucket,
         "default/000000000512-000000000768.", pause_after, str(at)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert child.stdout is not None and child.stderr is not None
    try:
        while True:
            line = child.stdout.readline()
            assert line.startswith("stored "), line + child.stderr.read()
            if line.startswith("stored default/000000000512-000000000768.") and line.strip().endswith(pause_after):
                break
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(30)
        child.stdout.close()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL

    target = S3Target(bucket, "", s3.url, "us-east-1", 1, "COMPLIANCE")
    with Ledger.open(data, create=False) as lg:
        tid = lg.tenant_id("default")
        assert archived_to(lg.store, tid) == 512  # the killed segment is not recorded as archived
        done = run_archive(lg, target, [], 256, at, "default", older_than_ns=1)[0]
        assert done.segments == SEGMENTS[2:]
        assert done.adopted == (1 if pause_after.endswith(".manifest.json") else 0)
        assert archived_to(lg.store, tid) == N
        k = key(lg)
        for first, end in SEGMENTS:
            rep = check(target, "default", first, end, k)
            assert rep.ok and rep.entries == end - first, rep.failures
    # no object was written twice: one version of each, the manifest and the data it names
    versions = s3.client().list_object_versions(Bucket=bucket)["Versions"]
    want = []
    for a, b in SEGMENTS:
        stem = f"default/{a:012d}-{b:012d}"
        manifest = target.get(stem + ".manifest.json")
        assert manifest is not None
        want += [stem + ".manifest.json", "default/" + json.loads(manifest)["data"]["name"]]
    assert sorted(v["Key"] for v in versions) == sorted(want)
