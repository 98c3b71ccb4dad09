"""Appending: receipts, idempotency, all-or-nothing batches, sealed personal fields."""

from __future__ import annotations

import threading
from collections.abc import Callable

import msgspec
import pytest

from auditkeep.crypto.commit import event_key, open_commitment
from auditkeep.ledger import Ledger, LedgerConfig
from auditkeep.log.hashing import leaf_hash
from auditkeep.model import ConflictError, ValidationError
from auditkeep.model.timefmt import parse_rfc3339


def ev(i: int = 0, **extra: object) -> dict[str, object]:
    base: dict[str, object] = {"actor": {"id": f"u{i % 7}", "name": f"User {i}", "ip": "10.0.0.1"}, "action": "db.query"}
    base.update(extra)
    return base


def test_receipts_are_contiguous_and_hash_the_stored_leaf(ledger: Ledger) -> None:
    receipts = ledger.append([ev(i) for i in range(300)], tenant="acme")
    assert [r.index for r in receipts] == list(range(300))
    receipts += ledger.append([ev(i) for i in range(5)], tenant="acme")
    assert [r.index for r in receipts] == list(range(305))
    entry = ledger.entry(123, "acme")
    assert leaf_hash(entry.leaf).hex() == receipts[123].leaf_hash
    assert ledger.head("acme").size == 305
    times = [parse_rfc3339(r.received_at) for r in receipts]
    assert times == sorted(times)


def test_tenants_have_separate_logs(ledger: Ledger) -> None:
    a = ledger.append([ev(1)], tenant="a")
    b = ledger.append([ev(1), ev(2)], tenant="b")
    assert a[0].index == 0 and [r.index for r in b] == [0, 1]
    assert ledger.head("a").root != ledger.head("b").root


def test_same_id_same_content_returns_original_receipt(ledger: Ledger) -> None:
    first = ledger.append([ev(1, id="0190f5c2-7a1e-7cc0-9d7e-3f1c2b4a5d6e", time="2024-01-01T00:00:00Z")])[0]
    again = ledger.append([ev(1, id="0190F5C2-7A1E-7CC0-9D7E-3F1C2B4A5D6E", time="2024-01-01T00:00:00Z")])[0]
    assert again == first
    assert ledger.head("default").size == 1


def test_same_id_without_time_is_still_idempotent(ledger: Ledger) -> None:
    # time defaults to received_at: a retry must compare against the original's
    first = ledger.append([ev(1, id="0190f5c2-7a1e-7cc0-9d7e-3f1c2b4a5d6f")])[0]
    again = ledger.append([ev(1, id="0190f5c2-7a1e-7cc0-9d7e-3f1c2b4a5d6f")])[0]
    assert again == first


def test_same_id_different_content_is_a_conflict(ledger: Ledger) -> None:
    ledger.append([ev(1, id="0190f5c2-7a1e-7cc0-9d7e-3f1c2b4a5d60", time="2024-01-01T00:00:00Z")])
    with pytest.raises(ConflictError) as info:
        ledger.append([ev(0), ev(2, id="0190f5c2-7a1e-7cc0-9d7e-3f1c2b4a5d60", time="2024-01-01T00:00:00Z")])
    assert info.value.position == 1
    assert ledger.head("default").size == 1  # the whole batch was refused


def test_duplicate_ids_within_one_batch(ledger: Ledger) -> None:
    same = ev(3, id="0190f5c2-7a1e-7cc0-9d7e-3f1c2b4a5d61", time="2024-01-01T00:00:00Z")
    receipts = ledger.append([same, dict(same)])
    assert receipts[0] == receipts[1]
    assert ledger.head("default").size == 1
    with pytest.raises(ConflictError):
        ledger.append([ev(4, id="0190f5c2-7a1e-7cc0-9d7e-3f1c2b4a5d62"), ev(5, id="0190f5c2-7a1e-7cc0-9d7e-3f1c2b4a5d62")])


def test_invalid_event_rejects_the_whole_batch(ledger: Ledger) -> None:
    ledger.append([ev(0)])
    with pytest.raises(ValidationError) as info:
        ledger.append([ev(1), ev(2), {"actor": {"id": "x"}, "action": "bad action"}])
    assert info.value.position == 2
    assert info.value.path == "action"
    assert ledger.head("default").size == 1


def test_oversized_event_is_refused(make_ledger: Callable[..., Ledger]) -> None:
    from auditkeep.model import Limits

    lg = make_ledger(LedgerConfig(limits=Limits(max_event_bytes=2048)))
    with pytest.raises(ValidationError) as info:
        lg.append([ev(0), ev(1, metadata={"blob": "x" * 4000})])
    assert info.value.position == 1
    assert "more than 2048" in info.value.message
    assert lg.head("default").size == 0


def test_personal_fields_are_sealed_in_the_leaf(ledger: Ledger) -> None:
    r = ledger.append([ev(1, metadata={"email": "alice@example.com", "plan": "pro"})])[0]
    entry = ledger.entry(r.index)
    leaf = msgspec.json.decode(entry.leaf)
    assert b"alice@example.com" not in entry.leaf and b"User 1" not in entry.leaf and b"10.0.0.1" not in entry.leaf
    assert set(leaf["sealed"]) == {"actor.name", "actor.ip", "metadata.email"}
    assert leaf["metadata"] == {"plan": "pro"}
    # The plaintext beside the leaf opens the commitments with the subject's salt.
    values = msgspec.json.decode(entry.sealed)
    salt = _salt(ledger, "default", entry.subject)
    key = event_key(salt, r.id)
    for path, value in values.items():
        assert open_commitment(key, path, value, leaf["sealed"][path])
    assert not open_commitment(key, "actor.name", "Mallory", leaf["sealed"]["actor.name"])
    # Readers see the values restored.
    rec = ledger.get(r.id)
    assert rec.event.actor.name == "User 1" and rec.event.metadata == {"plan": "pro", "email": "alice@example.com"}


def _salt(ledger: Ledger, tenant: str, subject: str | None) -> bytes:
    tid = ledger.tenant_id(tenant)
    with ledger.store.append_txn([tid]) as txn:
        return txn.salts(tid, [subject or "_"])[subject or "_"]


def test_erasing_plaintext_keeps_proofs_valid(ledger: Ledger) -> None:
    """The leaf format allows erasure: without plaintext the event reads as erased and verifies."""
    rs = ledger.append([ev(i) for i in range(20)])
    before = ledger.prove_inclusion(5)
    # Erasure deletes only what is kept beside the leaves (a later feature does it per subject).
    if ledger.store.dialect == "sqlite":
        ledger.store._w.execute("UPDATE entries SET sealed = NULL")  # type: ignore[attr-defined]
    else:
        with ledger.store._conn() as conn:  # type: ignore[attr-defined]
            conn.execute("UPDATE entries SET sealed = NULL")
    assert ledger.get(rs[5].id).event.actor.name == "[erased]"
    assert ledger.verify().ok
    assert ledger.prove_inclusion(5, size=before.tree_size).hashes == before.hashes


def test_no_personal_fields_configured(make_ledger: Callable[..., Ledger]) -> None:
    lg = make_ledger(LedgerConfig(personal_fields=()))
    r = lg.append([ev(1)])[0]
    entry = lg.entry(r.index)
    assert b"User 1" in entry.leaf and entry.sealed is None


def test_concurrent_appends_are_grouped_and_contiguous(ledger: Ledger) -> None:
    results: list[list[int]] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        for _ in range(5):
            got = ledger.append([ev(i) for i in range(n)], tenant="busy")
            with lock:
                results.append([r.index for r in got])

    threads = [threading.Thread(target=worker, args=(k,)) for k in (1, 7, 50, 200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    indexes = sorted(i for batch in results for i in batch)
    assert indexes == list(range(len(indexes)))
    for batch in results:  # each caller's batch is one contiguous run
        assert batch == list(range(batch[0], batch[0] + len(batch)))
    assert ledger.verify("busy").ok


def test_record_and_record_many(ledger: Ledger) -> None:
    r = ledger.record(actor={"id": "svc"}, action="job.run", outcome="success")
    assert r.index == 0 and r.tenant == "default"
    rs = ledger.record_many([ev(1), ev(2)], tenant="default")
    assert [x.index for x in rs] == [1, 2]


def test_record_merges_the_active_context(ledger: Ledger) -> None:
    import auditkeep

    with auditkeep.context(actor="alice", request_id="r-9", metadata={"tenant_plan": "pro"}):
        r = ledger.record(action="doc.read", metadata={"doc": 7})
        rs = ledger.record_many([{"action": "doc.write", "actor": {"id": "bob"}}])
    a = ledger.get(r.id).event
    assert a.actor.id == "alice" and a.source is not None and a.source.request_id == "r-9"
    assert a.metadata == {"tenant_plan": "pro", "doc": 7}
    assert ledger.get(rs[0].id).event.actor.id == "bob"  # explicit fields win
