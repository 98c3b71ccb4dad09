"""Shared helpers of the archive tests: a log to archive and the segments' files."""

from __future__ import annotations

from pathlib import Path

from auditkeep.archive.check import SegmentReport, check_segment
from auditkeep.archive.target import Target
from auditkeep.ledger import Ledger
from auditkeep.log.note import NoteVerifier

DAY = 86_400 * 1_000_000_000
MARKER_NAME = "Zq-Marker-Personname-7731"
MARKER_IP = "203.0.113.77"


def fill(lg: Ledger, n: int, tenant: str = "default", action: str = "user.login", start: int = 0) -> None:
    """``n`` events with personal fields (actor name and ip) carrying marker strings."""
    for s in range(start, start + n, 500):
        lg.append(
            [{"actor": {"id": f"u{i % 7}", "name": MARKER_NAME, "ip": MARKER_IP}, "action": action,
              "metadata": {"n": i}} for i in range(s, min(start + n, s + 500))],
            tenant,
        )


def key(lg: Ledger) -> NoteVerifier:
    return NoteVerifier.from_vkey(lg.pubkey())


def check(target: Target, tenant: str, first: int, end: int, k: NoteVerifier) -> SegmentReport:
    stem = f"{tenant}/{first:012d}-{end:012d}"
    manifest, data = target.get(stem + ".manifest.json"), target.get(stem + ".jsonl.zst")
    assert manifest is not None and data is not None, stem
    return check_segment(manifest, data, [k])


def segment_files(root: Path, tenant: str = "default") -> list[str]:
    return sorted(p.name for p in (root / tenant).iterdir())
