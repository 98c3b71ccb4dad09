"""Test helpers: locate the shared test data and turn its raw records into events with the
real source mappers (Kubernetes, CloudTrail, auditd), as the alert engine sees them: a plain
dict of the mapped :class:`~auditkeep.model.Event` with its tenant."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from auditkeep.model import Event
from auditkeep.sources.auditd import decode_log
from auditkeep.sources.base import SourceError
from auditkeep.sources.cloudtrail import map_cloudtrail_record
from auditkeep.sources.kubernetes import map_k8s_record
from testdata_path import require_testdata

REPO = Path(__file__).resolve().parents[2]


def shared_testdata() -> Path:
    """The sample data directory (tests/testdata or ``$AUDITKEEP_TESTDATA``)."""
    return require_testdata()


def as_engine_event(event: Event, tenant: str = "acme") -> dict[str, Any]:
    """A mapped event as the alert engine receives it (``msgspec.to_builtins``)."""
    doc: dict[str, Any] = msgspec.to_builtins(event)
    doc.setdefault("tenant", tenant)
    return doc


def k8s_event(raw: dict[str, Any], tenant: str = "acme") -> dict[str, Any]:
    """A Kubernetes audit event (native, or an EKS/AKS/GKE wrapper) through the real mapper."""
    return as_engine_event(map_k8s_record(raw), tenant)


def cloudtrail_event(raw: dict[str, Any], tenant: str = "acme") -> dict[str, Any]:
    """One CloudTrail record through the real mapper."""
    return as_engine_event(map_cloudtrail_record(raw), tenant)


def auditd_events(path: Path, tenant: str = "acme") -> list[dict[str, Any]]:
    """Every event of an audit.log through the real decoder (parse, group, map)."""
    log = decode_log(path.read_bytes().split(b"\n"))
    return [as_engine_event(e, tenant) for e in log.events]


def jsonl(path: Path) -> Iterator[dict[str, Any]]:
    for line in path.read_text().splitlines():
        if line.strip():
            yield json.loads(line)


def json_lines_or_doc(path: Path) -> list[dict[str, Any]]:
    text = path.read_text()
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if isinstance(doc, dict) and isinstance(doc.get("items"), list):
        return list(doc["items"])
    if isinstance(doc, dict) and isinstance(doc.get("Records"), list):
        return list(doc["Records"])
    return doc if isinstance(doc, list) else [doc]


def panther_events(path: Path) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(test record, event) for each Panther test line that a source maps: CloudTrail
    records through the CloudTrail mapper, Kubernetes events (native, EKS, AKS and GKE
    entries) through the Kubernetes mapper. Lines neither maps (GCP entries of other
    services, made-up partial records) are left out."""
    out = []
    for t in jsonl(path):
        log = t["log"]
        try:
            if "eventSource" in log or "eventName" in log:
                out.append((t, cloudtrail_event(log)))
            else:
                out.append((t, k8s_event(log)))
        except SourceError:
            continue
    return out
