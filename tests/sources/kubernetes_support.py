"""Helpers for the Kubernetes source tests: the real samples under tests/testdata/kubernetes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson

from auditkeep.model import Event, validate_event

WRAPPED_FILES = (
    "aws_eks_rules.tests.jsonl",
    "gcp_k8s_rules.tests.jsonl",
    "kubernetes_rules.tests.jsonl",
)


def k8s_dir(testdata: Path) -> Path:
    return testdata / "kubernetes"


def native_lines(testdata: Path) -> list[tuple[str, bytes]]:
    d = k8s_dir(testdata)
    files = [*sorted((d / "falco-traces").glob("*.json")), d / "audit2rbac-demo.log"]
    return [(f.name, line) for f in files for line in f.read_bytes().splitlines() if line.strip()]


def panther_rows(testdata: Path, name: str) -> list[dict[str, Any]]:
    path = k8s_dir(testdata) / name
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def by_test_name(testdata: Path, name: str, test_name: str) -> dict[str, Any]:
    hits = [row["log"] for row in panther_rows(testdata, name) if row["test_name"] == test_name]
    assert hits, f"{test_name!r} not in {name}"
    return hits[0]


def valid(ev: Event) -> Event:
    validate_event(ev)
    return ev


def event_list(items: list[Any], api: str = "audit.k8s.io/v1") -> bytes:
    """A webhook body: an ``EventList`` of ``items``."""
    return orjson.dumps({"kind": "EventList", "apiVersion": api, "metadata": {}, "items": items})
