"""Pipeline: capture policy then redaction, from one policy file; the documented example."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from auditkeep.model import Event, convert_event, validate_event
from auditkeep.policy import CapturePolicy, Pipeline, PolicyError, Redactor

DOCS = Path(__file__).resolve().parents[2] / "docs" / "policy.md"


def _ev(action: str, **meta: Any) -> Event:
    return convert_event({"actor": {"id": "u1"}, "action": action, "metadata": meta or None})


def test_policy_then_redaction() -> None:
    p = Pipeline.from_dict(
        {
            "capture": {
                "rules": [
                    {"level": "none", "actions": ["health.*"]},
                    {"level": "request", "actions": ["api.*"]},
                ]
            },
            "redaction": {
                "fields": [{"path": "metadata.request.headers.cookie", "action": "drop"}]
            },
        }
    )
    assert p.process(_ev("health.check"), "api") is None
    ev = _ev(
        "api.call",
        request={"body": "password=x", "headers": {"cookie": "c=1"}},
        response={"body": "secret"},
    )
    out = p.process(ev, "api")
    assert out is not None and out.metadata is not None
    validate_event(out)
    assert out.metadata["request"] == {"body": "password=[REDACTED:password]", "headers": {}}
    assert "response" in out.metadata and "body" not in out.metadata["response"]
    assert out.metadata["_dropped"] == ["metadata.response.body"]
    assert out.metadata["_redacted"] == ["metadata.request.body", "metadata.request.headers.cookie"]


def test_batch_and_extra_processors() -> None:
    seen: list[str] = []

    def tag(ev: Event, source: str) -> Event | None:
        seen.append(source)
        return None if ev.action == "drop.me" else ev

    p = Pipeline(CapturePolicy(), [Redactor(), tag])
    kept = p.process_batch([_ev("a.b"), _ev("drop.me"), _ev("c.d")], "otlp")
    assert [e.action for e in kept] == ["a.b", "c.d"]
    assert seen == ["otlp"] * 3


def test_default_and_redaction_off() -> None:
    d = Pipeline.default()
    out = d.process(_ev("a.b", note="AKIAIOSFODNN7EXAMPLE"), "api")
    assert out is not None and out.metadata is not None
    assert out.metadata["note"] == "[REDACTED:aws_access_key]"
    off = Pipeline.from_dict({"redaction": False})
    kept = off.process(_ev("a.b", note="AKIAIOSFODNN7EXAMPLE"), "api")
    assert kept is not None and kept.metadata == {"note": "AKIAIOSFODNN7EXAMPLE"}


def test_errors() -> None:
    with pytest.raises(PolicyError, match="unknown section"):
        Pipeline.from_dict({"capture": {}, "alerts": {}})
    with pytest.raises(PolicyError):
        Pipeline.from_dict([])  # type: ignore[arg-type]


def test_documented_example_loads_and_behaves(tmp_path: Path) -> None:
    text = DOCS.read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    example = next(b for b in blocks if b.lstrip().startswith("capture:"))
    path = tmp_path / "policy.yaml"
    path.write_text(example)
    p = Pipeline.load(path)
    secret = convert_event(
        {
            "actor": {"id": "alice"},
            "action": "k8s.secrets.get",
            "metadata": {
                "k8s": {"stage": "ResponseComplete", "responseObject": {"data": {"x": "eA=="}}}
            },
        }
    )
    out = p.process(secret, "kubernetes")
    assert (
        out is not None and out.metadata is not None and "responseObject" not in out.metadata["k8s"]
    )
    early = convert_event(
        {
            "actor": {"id": "alice"},
            "action": "k8s.pods.get",
            "metadata": {"k8s": {"stage": "RequestReceived"}},
        }
    )
    assert p.process(early, "kubernetes") is None


def test_process_kept_gives_the_positions_of_the_kept_events() -> None:
    p = Pipeline.from_dict({"capture": {"rules": [{"level": "none", "actions": ["health.*"]}]}})
    evs = [_ev("health.a"), _ev("api.call", note="password=x"), _ev("health.b"), _ev("db.read", note="ok")]
    kept, positions = p.process_kept(evs, "api")
    assert positions == [1, 3]
    assert [e.action for e in kept] == ["api.call", "db.read"]
    assert kept[0].metadata == {"note": "password=[REDACTED:password]", "_redacted": ["metadata.note"]}
    assert kept[1].metadata == {"note": "ok"}
