"""The intake step over a real ledger: the policy inside Ledger.submit, refused events and
records to quarantine, lost counts as source.dropped, retries, the formats registry."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from auditkeep.config import DEFAULT_POLICY, load_settings, open_ledger
from auditkeep.ledger.ledger import Ledger
from auditkeep.model import Event
from auditkeep.model.errors import ConflictError, ValidationError
from auditkeep.policy import Pipeline
from auditkeep.sources.base import SourceError
from auditkeep.sources.formats import FORMATS, SOURCE_FORMATS, ParseOptions, RefusedRecords, reparse
from auditkeep.sources.intake import DROPPED_ACTION, Intake, derived_event_id, retry
from auditkeep.sources.quarantine import Quarantine, reason_class
from auditkeep.sources.service import CollectedBatch, SourceOptions, SourceService

POLICY = {
    "capture": {"rules": [{"level": "none", "actions": ["noise.*"]}]},
    "redaction": DEFAULT_POLICY["redaction"],
}


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    lg = open_ledger(load_settings(env={}, overrides={"data": str(tmp_path / "data")}))
    lg.pipeline = Pipeline.from_dict(POLICY)
    yield lg
    lg.close()


def _ev(action: str, **kw: object) -> Event:
    return msgspec.convert({"actor": {"id": "alice"}, "action": action, **kw}, Event)


def _stored(lg: Ledger, tenant: str) -> list[Event]:
    return [r.event for r in lg.records(0, lg.head(tenant).size, tenant)]


def test_submit_applies_the_policy_only_with_a_source(ledger: Ledger) -> None:
    batch = [_ev("a.b", reason="token=abc123secret"), _ev("noise.tick"), _ev("c.d")]
    receipts = ledger.append(batch, "t", source="api")
    assert [r.index for r in receipts] == [0, 1]  # one per kept event
    kept = _stored(ledger, "t")
    assert [e.action for e in kept] == ["a.b", "c.d"]
    assert kept[0].reason == "token=[REDACTED:password]" and kept[0].metadata == {"_redacted": ["reason"]}
    # The server's own events (no source) pass untouched.
    ledger.append([_ev("noise.tick", reason="token=abc123secret")], "t")
    assert _stored(ledger, "t")[-1].reason == "token=abc123secret"


def test_error_positions_are_the_callers(ledger: Ledger) -> None:
    bad = _ev("x.y", reason="x" * 9000)  # longer than max_string: refused by validation
    with pytest.raises(ValidationError) as info:
        ledger.submit([_ev("noise.a"), _ev("noise.b"), bad], "t", source="api")
    assert info.value.position == 2
    eid = "0190f5c2-0000-7000-8000-000000000001"
    ledger.append([_ev("x.y", id=eid)], "t", source="api")
    with pytest.raises(ConflictError) as conflict:
        ledger.append([_ev("noise.a"), _ev("x.z", id=eid)], "t", source="api")
    assert conflict.value.position == 1


def test_deliver_quarantines_what_the_ledger_refuses(ledger: Ledger) -> None:
    q = Quarantine(ledger.store)
    intake = Intake(ledger, q)
    eid = "0190f5c2-0000-7000-8000-000000000002"
    intake.deliver("kubernetes", "k", [_ev("k8s.pods.get", id=eid)])
    too_long = _ev("k8s.pods.list", reason="x" * 9000)
    batch = [_ev("k8s.pods.create"), too_long, _ev("k8s.pods.get", id=eid, reason="other content"), _ev("noise.x")]
    errors = [SourceError("kubernetes", "malformed JSON: oops", b"{oops")]
    got = intake.deliver("kubernetes", "k", batch, errors)
    assert len(got.receipts) == 1 and got.filtered == 1
    reasons = sorted(r.reason_class for r in got.quarantined)
    assert reasons == ["conflict", "malformed", "too_large"], [r.reason for r in got.quarantined]
    refused = [r for r in got.quarantined if r.context == {"form": "event"}]
    assert len(refused) == 2 and all(r.reason.startswith("refused by the ledger") for r in refused)
    # Resending the same refused records adds nothing to the quarantine.
    again = intake.deliver("kubernetes", "k", [], errors)
    assert again.quarantined[0].id == got.quarantined[0].id and q.count() == 3


def test_lost_records_become_one_source_dropped_event(ledger: Ledger) -> None:
    intake = Intake(ledger, Quarantine(ledger.store))
    lost_id = derived_event_id("h", "auditd", "dropped", "c1:7")
    first = intake.deliver("auditd", "h", [], lost=5, lost_reason="kernel backlog", lost_id=lost_id)
    second = intake.deliver("auditd", "h", [], lost=5, lost_reason="kernel backlog", lost_id=lost_id)
    assert first.dropped_event is not None and second.dropped_event is not None
    assert first.dropped_event.index == second.dropped_event.index  # the resend is the same event
    other = intake.deliver("auditd", "h", [], lost=7, lost_reason="kernel backlog", lost_id=lost_id)
    assert other.dropped_event is not None and other.dropped_event.index != first.dropped_event.index
    events = [e for e in _stored(ledger, "h") if e.action == DROPPED_ACTION]
    assert [e.metadata["count"] for e in events if e.metadata] == [5, 7]
    # A policy that drops everything never hides a loss.
    ledger.pipeline = Pipeline.from_dict({"capture": {"default": "none"}})
    intake.deliver("syslog", "h", [_ev("any.thing")], lost=2)
    assert _stored(ledger, "h")[-1].action == DROPPED_ACTION


def test_retry(ledger: Ledger) -> None:
    q = Quarantine(ledger.store, max_bytes=64)
    intake = Intake(ledger, q)
    line = b'{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"r1","verb":"get","user":{"username":"u"}}'
    rec = q.put([SourceError("kubernetes", "kubernetes was down", line[:60])], "k")[0]
    assert not retry(intake, rec).ok and q.get(rec.id) is not None and q.get(rec.id).attempts == 1  # type: ignore[union-attr]
    big = q.put([SourceError("kubernetes", "too long", line)], "k")[0]
    assert big.truncated
    out = retry(intake, big)
    assert not out.ok and "cannot be read again" in out.reason
    q.max_bytes = 1 << 20
    good = q.put([SourceError("kubernetes", "an old parser refused it", line)], "k")[0]
    done = retry(intake, good)
    assert done.ok and done.result is not None and len(done.result.receipts) == 1
    assert q.get(good.id) is None and _stored(ledger, "k")[0].action == "k8s.nonresource.get"


def test_formats_registry() -> None:
    assert {"kubernetes", "cloudtrail", "auditd", "otlp-json", "otlp-protobuf", "syslog"} <= set(FORMATS)
    with pytest.raises(RefusedRecords, match="1 record"):
        FORMATS["cloudtrail"](b"not json at all")
    assert FORMATS["cloudtrail"](b"") == []
    stages = b"\n".join(
        b'{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"s1","stage":"%s","verb":"get",'
        b'"user":{"username":"u"},"requestURI":"/api"}' % s
        for s in (b"RequestReceived", b"ResponseComplete")
    )
    final = SOURCE_FORMATS["kubernetes"].parse(stages)
    assert len(final.events) == 1 and final.events[0].metadata["k8s"]["stage"] == "ResponseComplete"  # type: ignore[index]
    both = SOURCE_FORMATS["kubernetes"].parse(stages, ParseOptions(kubernetes_stages="all"))
    assert len(both.events) == 2
    with pytest.raises(ValueError):
        reparse("nosuch", b"", {})
    assert reason_class("record is 9 bytes, more than 1") == "too_large"
    assert reason_class("apiVersion 'x' is not audit.k8s.io/v1") == "unsupported"


def test_service_holds_stages_and_releases_them(ledger: Ledger) -> None:
    svc = SourceService(ledger, SourceOptions(kubernetes_stage_timeout=0.2))
    body = (b'{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{"auditID":"h1","stage":"RequestReceived",'
            b'"verb":"get","user":{"username":"u"},"requestURI":"/api"}]}')
    got = svc.kubernetes(body, "k")
    assert got.held == 1 and not got.result.receipts and not got.refused
    assert svc.release_stages() == 0
    time.sleep(0.25)
    assert svc.release_stages() == 1
    assert _stored(ledger, "k")[0].metadata["final_stage_missing"] is True  # type: ignore[index]
    refused = svc.kubernetes(b'{"kind":"EventList","apiVersion":"v2","items":[]}', "k")
    assert refused.refused and refused.result.quarantined
    batch = CollectedBatch(events=[_ev("auditd.syscall.execve")], lost=3, batch="c:1")
    assert svc.collected("auditd", batch, "h").result.lost == 3


def test_held_stages_survive_a_restart(ledger: Ledger) -> None:
    """A stage held after its batch was answered is durable: a new service on the same store
    (a restart, or a server killed with kill -9) holds it again and merges its final stage."""
    stage = (b'{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{"auditID":"r1","stage":"%s",'
             b'"verb":"get","user":{"username":"u"},"requestURI":"/api","responseStatus":{"code":200}}]}')
    first = SourceService(ledger, SourceOptions(kubernetes_stage_timeout=60))
    assert first.kubernetes(stage % b"RequestReceived", "k").held == 1
    del first  # gone without a shutdown
    second = SourceService(ledger, SourceOptions(kubernetes_stage_timeout=60))
    assert second.restore_held() == 1
    got = second.kubernetes(stage % b"ResponseComplete", "k")
    assert got.held == 0 and len(got.result.receipts) == 1
    stored = _stored(ledger, "k")
    assert len(stored) == 1 and stored[0].metadata["k8s"]["stage"] == "ResponseComplete"  # type: ignore[index]
    assert ledger.store.doc_count("k8s_held_stages") == 0
    third = SourceService(ledger, SourceOptions(kubernetes_stage_timeout=60))
    assert third.restore_held() == 0
