"""A tenant whose first policy matches every category and action: retention decides its
entries without decoding them (a leaf without the bytes of an ``auditkeep.`` action cannot
carry a protected one), and must decide exactly as the decoding path does: the log's own
retention records stay, an event that merely mentions such an action in its metadata goes."""

from __future__ import annotations

from collections.abc import Callable

from auditkeep.ledger import Ledger
from auditkeep.retention import load_policies, plan_retention, run_retention
from auditkeep.retention.run import ACTION

DAY = 86_400 * 1_000_000_000
CATCH_ALL = load_policies([{"name": "all", "delete_after": "1d"}])
# the same decisions, but not a catch-all by its globs: every leaf is decoded
DECODED = load_policies([{"name": "all", "action": "?*", "delete_after": "1d"}])


def _fill(lg: Ledger, start: int, n: int) -> None:
    lg.append([{"actor": {"id": f"u{i % 3}"}, "action": "doc.read",
                # nested: the bytes '"action":"auditkeep.' occur in the leaf, the event's action is not protected
                "metadata": {"action": "auditkeep.retention.deleted", "n": i} if i % 7 == 0 else {"n": i}}
               for i in range(start, start + n)])


def test_a_catch_all_policy_decides_as_decoding_does(make_ledger: Callable[..., Ledger]) -> None:
    lg = make_ledger()
    _fill(lg, 0, 60)
    at = lg.head("default").received_ns + 2 * DAY
    first = run_retention(lg, CATCH_ALL, at)[0]
    assert first.due == 60 and first.records >= 1
    _fill(lg, 60, 40)  # after the first run's records: the log now holds own records among events
    head = lg.head("default")
    at = head.received_ns + 2 * DAY
    [fast] = plan_retention(lg, CATCH_ALL, at)
    [slow] = plan_retention(lg, DECODED, at)
    assert (fast.ranges, fast.due, fast.scanned, fast.already_expired) == (slow.ranges, slow.due, slow.scanned, slow.already_expired)
    assert fast.due == 40 and fast.scanned == 41  # from the cursor: the record at 60, then the 40 events
    ran = run_retention(lg, CATCH_ALL, at)[0]
    assert ran.due == 40
    kept = [e.index for e in lg.store.entries(lg.tenant_id("default"), 0, head.size) if e.leaf]
    assert kept == [60]  # only the first run's retention record kept its payload
    assert lg.record_at(60).event.action == ACTION
    assert lg.verify().ok


def test_whole_blocks_under_a_catch_all_policy(make_ledger: Callable[..., Ledger]) -> None:
    """Blocks of entries none of which is the log's own or expired are taken whole: the plan
    is the decoding path's, also when only part of the log is old enough."""
    lg = make_ledger()
    lg.append([{"actor": {"id": f"u{i % 3}"}, "action": "doc.read", "metadata": {"n": i}} for i in range(50)], "t2")
    tid = lg.tenant_id("t2")
    received = [e.received_ns for e in lg.store.entries(tid, 0, 50)]
    for at in (received[24] + DAY, received[-1] + 2 * DAY, received[0] + DAY - 1):
        [fast] = plan_retention(lg, CATCH_ALL, at, "t2")
        [slow] = plan_retention(lg, DECODED, at, "t2")
        assert (fast.ranges, fast.due, fast.scanned) == (slow.ranges, slow.due, slow.scanned)
        assert fast.due == sum(r <= at - DAY for r in received)
    ran = run_retention(lg, CATCH_ALL, received[-1] + 2 * DAY, "t2")[0]
    assert ran.due == 50 and ran.ranges == [(0, 50)]
    assert not any(e.leaf for e in lg.store.entries(tid, 0, 50))
    assert lg.verify().ok
