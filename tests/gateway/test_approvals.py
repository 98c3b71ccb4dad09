"""Approval requests in the store: states, self-approval, races, waiting, audit events —
on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
import time

import pytest

from auditkeep.gateway.approvals import (
    APPROVED,
    EXPIRED,
    REJECTED,
    REQUESTED,
    ApprovalBook,
    ApprovalConflict,
    ApprovalNotFound,
    SelfApproval,
    same_identity,
)
from auditkeep.ledger import Ledger
from auditkeep.model.errors import ValidationError


def _file(book: ApprovalBook, tenant: str = "acme", timeout: float = 60, requester: str = "alice") -> str:
    return book.request(tenant, gateway="postgres", requester=requester, action="db.query",
                        summary="DELETE FROM invoices", rule="review-deletes", timeout=timeout).id


def _actions(ledger: Ledger, tenant: str = "acme") -> list[str]:
    return [r.event.action for r in ledger.records(0, ledger.head(tenant).size, tenant)]


def test_request_then_approve_is_logged_in_order(ledger: Ledger) -> None:
    book = ApprovalBook(ledger)
    aid = _file(book)
    got = book.get(aid, "acme")
    assert got.status == "pending" and got.requester == "alice" and got.rule == "review-deletes"
    done = book.approve(aid, "cli:bob", note="ticket OPS-1")
    assert done.status == "approved" and done.decided_by == "cli:bob" and done.note == "ticket OPS-1"
    assert book.get(aid).status == "approved"
    assert _actions(ledger) == [REQUESTED, APPROVED]
    last = ledger.records(1, 2, "acme")[0].event
    assert last.actor.id == "cli:bob" and last.metadata is not None and last.metadata["note"] == "ticket OPS-1"
    with pytest.raises(ApprovalConflict):
        book.reject(aid, "carol")
    assert _actions(ledger) == [REQUESTED, APPROVED]


def test_self_approval_is_refused(ledger: Ledger) -> None:
    book = ApprovalBook(ledger)
    aid = _file(book)
    for who in ("alice", "cli:alice", "ALICE"):
        with pytest.raises(SelfApproval):
            book.approve(aid, who)
    aid2 = book.request("acme", gateway="postgres", requester="alice", action="db.query", summary="x",
                        timeout=60, requested_by="k1").id
    with pytest.raises(SelfApproval):
        book.reject(aid2, "bob", approver_key="k1")
    assert book.get(aid).status == "pending"
    assert book.reject(aid, "bob").status == "rejected"
    assert _actions(ledger)[-1] == REJECTED


def test_tenants_do_not_see_each_others_requests(ledger: Ledger) -> None:
    book = ApprovalBook(ledger)
    aid = _file(book, "acme")
    with pytest.raises(ApprovalNotFound):
        book.get(aid, "globex")
    with pytest.raises(ApprovalNotFound):
        book.approve(aid, "bob", tenant="globex")
    assert [a.id for a in book.find("globex")[0]] == []
    assert [a.id for a in book.find("acme")[0]] == [aid]
    with pytest.raises(ApprovalNotFound):
        book.get("not-an-id")


def test_wait_times_out_as_expired_and_a_late_approval_is_refused(ledger: Ledger) -> None:
    book = ApprovalBook(ledger)
    aid = _file(book, timeout=0.3)
    got = book.wait(aid, 5)
    assert got.status == "expired"
    with pytest.raises(ApprovalConflict):
        book.approve(aid, "bob")
    assert _actions(ledger) == [REQUESTED, EXPIRED]
    assert [a.id for a in book.find("acme", "expired")[0]] == [aid]
    assert book.find("acme", "pending")[0] == []


def test_a_waiter_is_woken_by_a_decision_in_another_thread(ledger: Ledger) -> None:
    book = ApprovalBook(ledger)
    aid = _file(book)
    result: list[str] = []
    t = threading.Thread(target=lambda: result.append(book.wait(aid, 30).status))
    t.start()
    time.sleep(0.1)
    book.approve(aid, "bob")
    t.join(10)
    assert result == ["approved"]


def test_a_waiter_sees_a_decision_made_through_another_book(ledger: Ledger) -> None:
    """Another process (the CLI) decides through its own book over the same store."""
    waiter, decider = ApprovalBook(ledger), ApprovalBook(ledger)
    aid = _file(waiter)
    result: list[str] = []
    t = threading.Thread(target=lambda: result.append(waiter.wait(aid, 30, poll=0.05).status))
    t.start()
    decider.reject(aid, "bob")
    t.join(10)
    assert result == ["rejected"]


def test_concurrent_deciders_one_wins(ledger: Ledger) -> None:
    book = ApprovalBook(ledger)
    aid = _file(book)
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def decide(i: int) -> None:
        barrier.wait()
        try:
            (book.approve if i % 2 else book.reject)(aid, f"user{i}")
            outcomes.append("won")
        except ApprovalConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=decide, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict", "conflict", "conflict", "won"]
    assert len(_actions(ledger)) == 2


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [("requester", {"requester": ""}), ("timeout", {"timeout": 0}), ("timeout", {"timeout": 10**9}),
     ("gateway", {"gateway": "x" * 201}), ("tenant", {"tenant": "Not A Tenant"})],
)
def test_bad_requests_are_refused(ledger: Ledger, field: str, kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"tenant": "acme", "gateway": "postgres", "requester": "alice", "action": "db.query",
                               "summary": "x", "timeout": 10}
    args.update(kwargs)
    tenant = args.pop("tenant")
    with pytest.raises(ValidationError) as exc:
        ApprovalBook(ledger).request(tenant, **args)  # type: ignore[arg-type]
    assert exc.value.path == field


def test_same_identity() -> None:
    assert same_identity("alice", "cli:Alice")
    assert not same_identity("alice", "bob")
    assert not same_identity("", "")
