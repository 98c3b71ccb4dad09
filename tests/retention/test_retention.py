"""Retention on both stores: payloads go, every checkpoint and proof stays valid."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from auditkeep.ledger import Ledger
from auditkeep.ledger.reader import Expired
from auditkeep.ledger.trust import Trust
from auditkeep.log.checkpoint import verify_checkpoint
from auditkeep.log.note import NoteVerifier
from auditkeep.log.proofs import verify_consistency
from auditkeep.retention import HoldBook, load_policies, new_hold, plan_retention, run_retention
from auditkeep.retention.run import ACTION, CURSOR
from auditkeep.retention.service import add_hold, release_hold

ROOT = Path(__file__).resolve().parents[2]
DAY = 86_400 * 1_000_000_000
ADMIN = {"id": "test-admin", "type": "user"}
POLICIES = load_policies(
    [
        {"name": "keep-admin", "category": "admin"},  # matched first: kept whatever follows
        {"name": "logins", "action": "user.*", "delete_after": "1d"},
        {"name": "reads", "action": "db.*", "delete_after": "30d"},
    ]
)


def _events(n: int) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for i in range(n):
        kind = i % 4
        action = ("user.login", "user.logout", "db.read", "config.change")[kind]
        out.append(
            {
                "actor": {"id": f"u{i % 5}", "name": f"Person {i}"},
                "action": action,
                "category": "admin" if i % 10 == 0 else "authentication",
                "resource": {"type": "doc", "id": f"d{i % 3}"},
                "metadata": {"n": i, "note": f"retentionmarker{i}"},
            }
        )
    return out


def _run_verifier(tmp_path: Path, vkey: str, proof: dict[str, object], leaf: bytes | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "log.vkey").write_text(vkey + "\n")
    (tmp_path / "proof.json").write_text(json.dumps(proof))
    args = [sys.executable, str(ROOT / "examples" / "verify_proof.py"), str(tmp_path / "log.vkey"), str(tmp_path / "proof.json")]
    if leaf is not None:
        (tmp_path / "leaf").write_bytes(leaf)
        args.append(str(tmp_path / "leaf"))
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def _trust(lg: Ledger) -> Trust:
    return Trust.given([NoteVerifier.from_vkey(lg.pubkey())])


def test_plan_changes_nothing_and_run_expires_exactly_the_plan(make_ledger: Callable[..., Ledger], tmp_path: Path) -> None:
    lg = make_ledger()
    lg.append(_events(300), "default")
    old_note = lg.checkpoint("default", new=True)
    old_size = lg.head("default").size
    later = lg.head("default").received_ns + 2 * DAY

    plans = plan_retention(lg, POLICIES, later, "default")
    again = plan_retention(lg, POLICIES, later, "default")
    assert [p.ranges for p in plans] == [p.ranges for p in again]  # planning changed nothing
    due = {i for a, b in plans[0].ranges for i in range(a, b)}
    expected = {i for i in range(300) if i % 4 in (0, 1) and i % 10 != 0}
    assert due == expected
    assert plans[0].by_policy == {"logins": len(expected)}
    assert all(lg.record_at(i, "default") for i in sorted(due)[:5])

    done = run_retention(lg, POLICIES, later, "default")
    assert done[0].due == len(expected) and done[0].records >= 1
    for i in range(300):
        if i in due:
            with pytest.raises(Expired) as info:
                lg.record_at(i, "default")
            assert info.value.index == i and len(info.value.leaf_hash) == 64
        else:
            assert lg.record_at(i, "default").event.metadata == {"n": i, "note": f"retentionmarker{i}"}
    # the run recorded itself, naming the ranges; nothing personal in it
    records = [r for r in lg.search("default", action=ACTION).items]
    assert records and sum(r.event.metadata["count"] for r in records) == len(expected)  # type: ignore[index]
    named = {i for r in records for a, b in r.event.metadata["ranges"] for i in range(a, b)}  # type: ignore[index]
    assert named == due
    # search no longer finds expired events, by filter or by full text
    assert lg.search("default", text="retentionmarker1").items == []
    assert [r.index for r in lg.search("default", text="retentionmarker2").items] == [2]
    assert all(r.index not in due for r in lg.search("default", limit=1000).items)

    # verify passes and reports the expired ranges
    rep = lg.verify("default", trust=_trust(lg)).tenants[0]
    assert rep.ok, rep.problems
    assert rep.expired == len(expected)
    assert {i for a, b in rep.expired_ranges for i in range(a, b)} == due

    # the old checkpoint still proves an expired entry and a remaining one, and the new one too
    new_note = lg.checkpoint("default", new=True)
    assert new_note != old_note
    vkey = lg.pubkey()
    for index in (min(due), 2):
        for size in (old_size, None):
            proof = lg.prove_inclusion(index, "default", size)
            leaf = None if index in due else lg.entry(index, "default").leaf
            done_proc = _run_verifier(tmp_path, vkey, msgspec.to_builtins(proof), leaf)
            assert done_proc.returncode == 0, done_proc.stdout + done_proc.stderr
    cons = lg.prove_consistency(old_size, None, "default")
    keys = [NoteVerifier.from_vkey(vkey)]
    origin = lg.origin("default")
    verify_consistency(old_size, cons.to, [bytes.fromhex(h) for h in cons.hashes],
                       verify_checkpoint(old_note, keys, origin).root,
                       verify_checkpoint(cons.checkpoint, keys, origin).root)

    # a second run finds nothing left to do
    assert run_retention(lg, POLICIES, later, "default")[0].due == 0


def test_held_events_are_kept_until_released(make_ledger: Callable[..., Ledger]) -> None:
    lg = make_ledger()
    lg.append(_events(80), "default")
    later = lg.head("default").received_ns + 2 * DAY
    hold = add_hold(lg, new_hold("default", "case 7", "test-admin", actor="u1"), ADMIN)
    assert [h.id for h in HoldBook(lg.store).active("default")] == [hold.id]
    done = run_retention(lg, POLICIES, later, "default")[0]
    assert done.held > 0 and done.holds == {hold.id: done.held}
    for i in range(80):
        if i % 5 == 1 and i % 4 in (0, 1) and i % 10 != 0:
            assert lg.record_at(i, "default").event.actor.id == "u1"  # held: still there
    release_hold(lg, hold.id, ADMIN, "case closed")
    assert HoldBook(lg.store).active("default") == []
    assert run_retention(lg, POLICIES, later, "default")[0].due == done.held
    actions = [r.event.action for r in lg.search("default", action="auditkeep.hold.*", order="oldest").items]
    assert actions == ["auditkeep.hold.added", "auditkeep.hold.released"]
    # the hold records themselves are never expired
    assert plan_retention(lg, load_policies([{"delete_after": "1s"}]), later + DAY, "default")[0].due > 0
    run_retention(lg, load_policies([{"delete_after": "1s"}]), later + DAY, "default")
    assert len(lg.search("default", action="auditkeep.hold.*").items) == 2
    assert lg.search("default", action=ACTION).items
    assert lg.verify("default", trust=_trust(lg)).ok


def test_payload_deleted_without_a_record_fails_verify(make_ledger: Callable[..., Ledger]) -> None:
    lg = make_ledger()
    lg.append(_events(40), "default")
    lg.checkpoint("default", new=True)
    tid = lg.tenant_id("default")
    lg.store.expire(tid, [7, 8], {})  # as an attacker with write access could
    rep = lg.verify("default", trust=_trust(lg)).tenants[0]
    assert not rep.ok
    assert rep.first is not None and rep.first.index == 7 and rep.first.kind == "missing"


def test_cursor_skips_the_expired_prefix(make_ledger: Callable[..., Ledger]) -> None:
    lg = make_ledger()
    lg.append([{"actor": {"id": "a"}, "action": "user.login"} for _ in range(50)], "default")
    later = lg.head("default").received_ns + 2 * DAY
    run_retention(lg, POLICIES, later, "default")
    tid = lg.tenant_id("default")
    assert lg.store.cursor(CURSOR, tid)[0] == 50
    lg.append([{"actor": {"id": "a"}, "action": "user.login"} for _ in range(5)], "default")
    plan = plan_retention(lg, POLICIES, lg.head("default").received_ns + 2 * DAY, "default")[0]
    assert plan.already_expired == 0 and plan.due == 5


def test_an_evidence_bundle_over_expired_entries_still_verifies(make_ledger: Callable[..., Ledger]) -> None:
    import io

    from auditkeep.evidence.build import build_bundle
    from auditkeep.evidence.bundlecheck import verify_bundle

    lg = make_ledger()
    lg.append(_events(40), "default")
    lg.checkpoint("default", new=True)
    head = lg.head("default")
    run_retention(lg, POLICIES, head.received_ns + 2 * DAY, "default")
    lg.checkpoint("default", new=True)
    buf = io.BytesIO()
    summary = build_bundle(lg, buf, "default", 0, head.received_ns + 1)
    result = verify_bundle(buf.getvalue(), [lg.pubkey()])
    assert result.ok, result.failures
    expired = sum(1 for i in range(40) if i % 4 in (0, 1) and i % 10 != 0)
    assert any(f"{expired} entries of the range expired" in n for n in result.notes), result.notes
    assert summary is not None


def test_followers_step_over_expired_entries(make_ledger: Callable[..., Ledger]) -> None:
    """A consumer that reaches entries after retention expired them (a backtest, a lagging
    runner or forwarder) steps over them instead of stopping or failing."""
    from auditkeep.alerts.backtest import stored_events

    lg = make_ledger()
    lg.append([{"actor": {"id": "a"}, "action": "user.login" if i < 30 else "db.read"} for i in range(40)], "default")
    run_retention(lg, POLICIES, lg.head("default").received_ns + 2 * DAY, "default")
    seen: list[int] = []
    got = [index for _, index, _ev in stored_events(lg, "default", 0, 40, chunk=8, progress=seen.append)]
    assert got == list(range(30, 40))  # the first chunks are wholly expired
    assert sum(seen) == 40
    assert [r.index for r in lg.records(0, 40, "default")] == list(range(30, 40))
