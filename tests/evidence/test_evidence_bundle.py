"""Evidence bundles built from a real log (both stores) and checked by the bundle checker."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import pytest
from bundle_edit import Parts  # type: ignore[import-not-found]
from evidence_support import SECOND, EvidenceLog  # type: ignore[import-not-found]

from auditkeep.evidence import build_bundle, verify_bundle
from auditkeep.evidence.build import BundleSummary
from auditkeep.ledger.reader import NotFound
from auditkeep.model.errors import ValidationError
from auditkeep.query.filters import Filters


def bundle(log: EvidenceLog, since: int, until: int, **kw: Any) -> tuple[bytes, BundleSummary]:
    buf = io.BytesIO()
    summary = build_bundle(log.ledger, buf, "default", since, until, **kw)
    return buf.getvalue(), summary


def key(log: EvidenceLog) -> str:
    return log.ledger.pubkey()


def test_window_of_middle_batches_is_bounded_by_entries_outside(five_batches: EvidenceLog) -> None:
    log = five_batches
    data, s = bundle(log, log.times[1], log.times[3])
    result = verify_bundle(data, [key(log)])
    assert result.ok, result.failures
    parts = Parts.read(data)
    kinds = [r.kind for r in parts.rows]
    assert kinds == ["before"] + ["event"] * 20 + ["after"]
    assert [r.index for r in parts.rows] == list(range(log.batches[1][0] - 1, log.batches[3][0] + 1))
    events = [json.loads(r.leaf) for r in parts.rows if r.kind == "event"]  # type: ignore[arg-type]
    assert [e["metadata"]["batch"] for e in events] == [1] * 10 + [2] * 10
    # Personal fields are left out: the leaves hold commitments only.
    assert all("ip" not in e["actor"] and "name" not in e["actor"] for e in events)
    assert all(set(e["sealed"]) == {"actor.ip", "actor.name", "metadata.email"} for e in events)
    assert "reveal.jsonl" not in parts.files
    # The earliest checkpoint holding the entry after the window proves it; the consistency
    # proof ties it to the newest (50).
    sizes = [c.size for c in log.ledger.store.checkpoints(log.ledger.tenant_id("default"))]
    assert (s.checkpoint_size, s.latest_size, s.open_end) == (min(x for x in sizes if x >= 31), 50, False)
    assert s.checkpoint_size < 50
    assert result.summary["events"] == 20 and result.summary["first"] == 9 and result.summary["end"] == 31


def test_window_at_the_log_start_and_past_its_end(five_batches: EvidenceLog) -> None:
    log = five_batches
    data, s = bundle(log, log.times[0] - SECOND, log.times[4] + 10 * SECOND)
    result = verify_bundle(data, [key(log)])
    assert result.ok, result.failures
    kinds = [r.kind for r in Parts.read(data).rows]
    assert kinds == ["event"] * 50  # nothing before index 0; the log ends inside the window
    assert s.open_end and result.summary["open_end"]
    assert any("complete up to that checkpoint" in n for n in result.notes)


def test_empty_window_is_proven_empty_by_its_neighbours(five_batches: EvidenceLog) -> None:
    log = five_batches
    data, s = bundle(log, log.times[2] + 1, log.times[3])
    result = verify_bundle(data, [key(log)])
    assert result.ok, result.failures
    assert [r.kind for r in Parts.read(data).rows] == ["before", "after"]
    assert s.events == 0


def test_filters_keep_matching_events_and_hash_the_rest(five_batches: EvidenceLog) -> None:
    log = five_batches
    data, s = bundle(log, log.times[1], log.times[3], filters=Filters(action="doc.read", outcome="denied"))
    result = verify_bundle(data, [key(log)])
    assert result.ok, result.failures
    rows = Parts.read(data).rows
    shown = [json.loads(r.leaf) for r in rows if r.kind == "event"]  # type: ignore[arg-type]
    assert shown and all(e["action"] == "doc.read" and e["outcome"] == "denied" for e in shown)
    hashed = [r for r in rows if r.kind == "hashed"]
    assert len(shown) + len(hashed) == 20 and s.hashed == len(hashed)
    # The checker recomputes what it can of the filters from the leaves.
    parts = Parts.read(data)
    parts.manifest["filters"] = {"action": "user.login"}
    assert any("does not match the bundle's filters" in f for f in verify_bundle(parts.write(), [key(log)]).failures)


def test_reveal_subject_opens_only_that_subjects_fields(five_batches: EvidenceLog) -> None:
    log = five_batches
    data, s = bundle(log, log.times[0], log.times[2], reveal_subject="u-1")
    result = verify_bundle(data, [key(log)])
    assert result.ok, result.failures
    parts = Parts.read(data)
    revealed = [json.loads(line) for line in parts.files["reveal.jsonl"].splitlines()]
    by_index = {r.index: json.loads(r.leaf) for r in parts.rows if r.kind == "event"}  # type: ignore[arg-type]
    assert revealed and s.revealed == len(revealed) == result.summary["revealed"]
    assert all(by_index[x["index"]]["actor"]["id"] == "u-1" for x in revealed)
    assert sum(e["actor"]["id"] == "u-1" for e in by_index.values()) == len(revealed)
    assert all(x["values"]["actor.name"].startswith("Person ") for x in revealed)
    # A revealed value that is not the committed one fails, naming the field.
    revealed[0]["values"]["actor.ip"] = "192.0.2.1"
    parts.files["reveal.jsonl"] = "".join(json.dumps(x) + "\n" for x in revealed).encode()
    failures = verify_bundle(parts.write(), [key(log)]).failures
    assert failures == [f"index {revealed[0]['index']}: revealed actor.ip differs from the value committed in the leaf"]


def test_a_bundle_checked_with_another_key_fails(make_evidence_log: Any) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from auditkeep.log.note import NoteSigner

    log = make_evidence_log()
    log.add_batch(5)
    log.add_batch(5, tenant="other", at=log.times[-1])
    log.ledger.checkpoint("default", new=True)
    data, _ = bundle(log, log.times[0], log.times[0] + 1)
    assert verify_bundle(data, [key(log)]).ok
    other = NoteSigner("auditkeep.local/someone-else", Ed25519PrivateKey.generate()).verifier_key()
    assert any("no valid signature" in f for f in verify_bundle(data, [other]).failures)


def test_bounds_and_errors(five_batches: EvidenceLog, make_evidence_log: Any) -> None:
    log = five_batches
    with pytest.raises(ValidationError, match="more than the 5 allowed"):
        bundle(log, log.times[1], log.times[3], max_entries=5)
    with pytest.raises(ValidationError, match="until must be after since"):
        bundle(log, log.times[1], log.times[1])
    with pytest.raises(ValidationError, match="cannot hold filter 'submitter'"):
        bundle(log, log.times[1], log.times[3], filters=Filters(submitter="key"))
    with pytest.raises(NotFound):
        build_bundle(log.ledger, io.BytesIO(), "nobody", log.times[0], log.times[1])


def test_report_is_self_contained_html_with_counts(five_batches: EvidenceLog) -> None:
    log = five_batches
    data, _ = bundle(log, log.times[1], log.times[3])
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        html = zf.read("report.html").decode()
        readme = zf.read("README.txt").decode()
    assert "<svg" in html and "<script" not in html and "http://" not in html and "https://" not in html
    assert html.count("<rect") == 48
    # 20 events: per batch of 10, i % 4 == 0 (0, 4, 8) are denied.
    assert ">denied</td><td class=\"n\">6<" in html and ">success</td><td class=\"n\">14<" in html
    assert "indices 9 to 30" in readme and "verify-bundle" in readme


def test_the_earliest_checkpoint_holding_the_range_is_found_in_the_store(five_batches: EvidenceLog) -> None:
    store = five_batches.ledger.store
    tid = five_batches.ledger.tenant_id("default")
    sizes = [c.size for c in store.checkpoints(tid)]
    for need in range(0, 52):
        got = store.checkpoint_from(tid, need)
        expected = min((s for s in sizes if s >= need), default=None)
        assert (got.size if got else None) == expected
