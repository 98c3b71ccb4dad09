"""Shared helpers of the archive tests: a log to archive and the segments' files."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditkeep.archive.check import SegmentReport, check_segment, read_segment
from auditkeep.archive.target import Target
from auditkeep.ledger import Ledger

DAY = 86_400 * 1_000_000_000
MARKER_NAME = "Zq-Marker-Personname-7731"
MARKER_IP = "203.0.113.77"
REGION = "us-east-1"


@dataclass
class S3Endpoint:
    url: str

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.url, region_name=REGION,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def new_bucket(self, lock: bool = True) -> str:
        """A bucket of its own (Object Lock enabled, as a WORM archive needs)."""
        name = f"archive-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name, ObjectLockEnabledForBucket=lock)
        return name


def fill(lg: Ledger, n: int, tenant: str = "default", action: str = "user.login", start: int = 0) -> None:
    """``n`` events with personal fields (actor name and ip) carrying marker strings."""
    for s in range(start, start + n, 500):
        lg.append(
            [{"actor": {"id": f"u{i % 7}", "name": MARKER_NAME, "ip": MARKER_IP}, "action": action,
              "metadata": {"n": i}} for i in range(s, min(start + n, s + 500))],
            tenant,
        )


def key(lg: Ledger) -> str:
    return lg.pubkey()


def check(target: Target, tenant: str, first: int, end: int, k: str) -> SegmentReport:
    return check_segment(*read_segment(target.get, f"{tenant}/{first:012d}-{end:012d}"), [k])


def segment_files(root: Path, tenant: str = "default") -> list[str]:
    return sorted(p.name for p in (root / tenant).iterdir())
