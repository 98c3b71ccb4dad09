"""The writer's groups: small batches go ahead of large ones, once; a thread keeps its order."""

from __future__ import annotations

from collections import deque

from auditkeep.ledger.append import Pending
from auditkeep.ledger.grouping import SMALL_EVENTS, Groups
from auditkeep.model.validate import convert_batch

LARGE = SMALL_EVENTS + 1


def batch(n: int, thread: int) -> Pending:
    events = convert_batch([{"actor": {"id": "u"}, "action": "a"}] * n)
    p = Pending("t", 1, events, [False] * n, [False] * n)
    p.thread = thread
    return p


def test_small_batches_queued_behind_a_large_one_go_first_in_a_group_of_their_own() -> None:
    large, small1, small2 = batch(LARGE, 1), batch(100, 2), batch(5, 3)
    q = deque([large, small1, small2])
    g = Groups(20_000)
    assert g.take(q) == [small1, small2]
    assert g.take(q) == [large]
    assert g.take(q) == []


def test_a_large_batch_is_overtaken_only_once() -> None:
    large = batch(LARGE, 1)
    q = deque([large, batch(10, 2)])
    g = Groups(20_000)
    g.take(q)
    later = batch(10, 3)
    q.append(later)
    assert g.take(q) == [large]  # not overtaken a second time
    assert g.take(q) == [later]


def test_groups_never_mix_small_and_large_batches() -> None:
    small, large1, large2, small2 = batch(10, 1), batch(LARGE, 2), batch(LARGE, 3), batch(10, 4)
    q = deque([small, large1, large2, small2])
    g = Groups(20_000)
    assert g.take(q) == [small, small2]
    assert g.take(q) == [large1, large2]


def test_one_threads_batches_keep_their_order() -> None:
    large, small_same, small_other = batch(LARGE, 1), batch(10, 1), batch(10, 2)
    q = deque([large, small_same, small_other])
    g = Groups(20_000)
    assert g.take(q) == [small_other]  # small_same may not pass its own thread's large batch
    assert g.take(q) == [large]
    assert g.take(q) == [small_same]


def test_a_group_stays_within_its_size() -> None:
    larges = [batch(LARGE, i) for i in range(5)]
    q = deque(larges)
    g = Groups(2 * LARGE)
    assert g.take(q) == larges[:2]
    assert g.take(q) == larges[2:4]
    smalls = [batch(100, 10 + i) for i in range(4)]
    q = deque(smalls)
    g = Groups(250)
    assert g.take(q) == smalls[:2]
    assert g.take(q) == smalls[2:]
    assert g.take(deque([batch(LARGE * 3, 1)])) != []  # a batch larger than a group is a group alone
