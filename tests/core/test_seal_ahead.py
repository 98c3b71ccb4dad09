"""Personal fields sealed before a batch queues (Sequencer.seal_ahead) give the leaves that
sealing under the append lock gives, and are set aside when an erasure came in between."""

from __future__ import annotations

import time
from typing import Any

import pytest

from auditkeep.ledger import Ledger
from auditkeep.ledger.append import MISSING, Pending
from auditkeep.model.event import Submitter
from auditkeep.model.ids import uuid7_batch
from auditkeep.model.validate import convert_batch
from auditkeep.model.validate_batch import validate_batch
from auditkeep.retention.erase import erase_subject
from auditkeep.store.base import Entry


def ev(i: int, actor: str | None = None) -> dict[str, Any]:
    return {
        "actor": {"id": actor or f"u{i % 5}", "name": f"User {i}", "ip": "10.0.0.1"},
        "action": "db.query",
        "metadata": {"email": f"u{i}@example.com", "n": i},
    }


def pending(ledger: Ledger, events: list[dict[str, Any]], ids: list[str] | None = None) -> Pending:
    evs = convert_batch(events)
    exact = validate_batch(evs, ledger.config.limits, "acme")
    for e, i in zip(evs, ids or uuid7_batch(len(evs)), strict=True):
        e.id = i
    return Pending("acme", ledger.tenant_id("acme"), evs, exact, [False] * len(evs), Submitter("embedded"))


class _Undo(Exception):
    pass


def sequenced(ledger: Ledger, p: Pending) -> list[Entry]:
    """``p``'s entries as the writer's sequencing makes them, in a transaction rolled back."""
    seq = ledger._seq
    tid = p.tenant_id
    out: list[Entry] = []
    with pytest.raises(_Undo), ledger.store.append_txn([tid]) as txn:
        out.extend(seq.run(txn, [p])[tid].entries)
        raise _Undo
    seq.rollback([tid])
    return out


def test_sealed_ahead_leaves_are_those_sealed_under_the_lock(ledger: Ledger) -> None:
    ledger.append([ev(i) for i in range(10)], "acme")  # u0..u4 have salts now, cached
    stamp = time.time_ns() + 10**9
    ledger._seq.now_ns = lambda: stamp  # both sequencings receive at the same instant
    batch = [ev(i) for i in range(40)] + [{"actor": {"id": "u1"}, "action": "x"}]
    ids = uuid7_batch(len(batch))
    under_lock = pending(ledger, batch, ids)
    ahead = pending(ledger, batch, ids)
    ledger._seq.seal_ahead(ahead)
    assert ahead.ahead is not None and ahead.ahead.missing == 0
    assert ahead.ahead.parts[-1] is None  # nothing personal in the last event
    got = [(e.leaf, e.sealed, e.subject) for e in sequenced(ledger, ahead)]
    assert got == [(e.leaf, e.sealed, e.subject) for e in sequenced(ledger, under_lock)]


def test_subjects_without_a_cached_salt_are_sealed_under_the_lock(ledger: Ledger) -> None:
    ledger.append([ev(i) for i in range(5)], "acme")
    p = pending(ledger, [ev(1), ev(2, actor="new-subject"), ev(3)])
    ledger._seq.seal_ahead(p)
    assert p.ahead is not None and p.ahead.missing == 1 and p.ahead.parts[1] is MISSING
    ledger._writer.submit(p)
    receipts = p.future.result(10)
    assert ledger.get(receipts[1].id, "acme").event.actor.name == "User 2"
    assert ledger.get(receipts[0].id, "acme").event.actor.name == "User 1"
    assert ledger.verify().ok


def test_an_erasure_after_sealing_ahead_has_the_batch_sealed_again(ledger: Ledger) -> None:
    ledger.append([ev(i) for i in range(5)], "acme")
    p = pending(ledger, [ev(1), ev(2)])
    ledger._seq.seal_ahead(p)  # u1's salt, cached, is in p.ahead
    assert p.ahead is not None and p.ahead.missing == 0
    erase_subject(ledger, "acme", "u1", "test", {"id": "tester", "type": "user"})
    ledger._writer.submit(p)
    receipts = p.future.result(10)
    # Sealed with u1's new salt: the destroyed one would leave its commitments unopenable.
    assert ledger.get(receipts[0].id, "acme").event.actor.name == "User 1"
    assert ledger.verify().ok
