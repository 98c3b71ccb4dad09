"""PostgreSQL: a past month whose entries have (nearly) all expired is compacted, its old
partition detached and dropped, and every checkpoint, proof and "expired" answer stays."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from auditkeep.ledger import Ledger
from auditkeep.ledger.reader import Expired
from auditkeep.ledger.trust import Trust
from auditkeep.log.note import NoteVerifier
from auditkeep.retention import load_policies, new_hold, run_retention
from auditkeep.retention.service import add_hold, release_hold
from auditkeep.store.postgres_lifecycle import COMPACTED_NOTE
from auditkeep.store.postgres_schema import Month

ROOT = Path(__file__).resolve().parents[2]
DAY = 86_400 * 1_000_000_000
ADMIN = {"id": "test-admin", "type": "user"}
POLICIES = load_policies([{"name": "all", "delete_after": "1d"}])


def _partition(store: Any, table: str) -> tuple[int, str | None, int, int]:
    """(rows, the table's comment, its oid, its bytes with indexes) of a partition."""
    with store._conn() as conn:
        rows = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        note, oid, size = conn.execute(
            "SELECT obj_description(to_regclass(%s), 'pg_class'), to_regclass(%s)::oid, "
            "pg_total_relation_size(to_regclass(%s))", (table, table, table)).fetchone()
    return int(rows), note, int(oid), int(size)


@pytest.mark.parametrize("store_kind", ["postgres"])
def test_an_expired_month_is_replaced_by_a_compact_partition(make_ledger: Callable[..., Ledger], tmp_path: Path) -> None:
    lg = make_ledger()
    lg.append(
        [{"actor": {"id": f"u{i % 5}", "name": f"Person {i}"}, "action": "user.login",
          "metadata": {"note": f"partmarker{i}"}} for i in range(300)],
        "default",
    )
    old_note = lg.checkpoint("default", new=True)
    old_size = lg.head("default").size
    ids = {i: lg.entry(i, "default").id for i in range(old_size)}
    month = Month.of(lg.head("default").received_ns)
    later = month.end_ns + 2 * DAY  # the month is over and every event in it is due
    store = lg.store

    # a hold keeps a fifth of the month: too much of it left to compact
    hold = add_hold(lg, new_hold("default", "case 9", "test-admin", actor="u1"), ADMIN)
    run_retention(lg, POLICIES, later, "default")
    rows, note, oid, size = _partition(store, month.table)
    assert note != COMPACTED_NOTE and rows >= old_size
    assert store.compact_expired_months(later) == []  # type: ignore[attr-defined]

    release_hold(lg, hold.id, ADMIN, "case closed")
    run_retention(lg, POLICIES, later, "default")  # expires the rest, then compacts the month
    rows_after, note_after, oid_after, size_after = _partition(store, month.table)
    assert note_after == COMPACTED_NOTE and oid_after != oid  # a new table in place of the old one
    assert size_after < size  # the payloads' bytes and their dead row versions are gone
    assert rows_after >= old_size  # every entry keeps its row (the run's own records too)
    assert store.compact_expired_months(later) == []  # type: ignore[attr-defined]  # once

    # every expired entry still answers "expired", by index and by event id
    for i in (0, 1, 150, 299):
        with pytest.raises(Expired):
            lg.record_at(i, "default")
        e = store.entry_by_id(lg.tenant_id("default"), ids[i])
        assert e is not None and e.index == i and e.leaf == b""
    assert lg.search("default", text="partmarker7").items == []
    rep = lg.verify("default", trust=Trust.given([NoteVerifier.from_vkey(lg.pubkey())])).tenants[0]
    assert rep.ok, rep.problems
    assert rep.expired == old_size
    # the checkpoint signed before still proves an expired entry (independent verifier)
    proof = lg.prove_inclusion(150, "default", old_size)
    (tmp_path / "log.vkey").write_text(lg.pubkey() + "\n")
    (tmp_path / "proof.json").write_text(json.dumps(msgspec.to_builtins(proof)))
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "verify_proof.py"), str(tmp_path / "log.vkey"),
         str(tmp_path / "proof.json")], capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert old_note
    # appends go on into the new partition
    lg.append([{"actor": {"id": "u9"}, "action": "user.logout"}], "default")
    assert lg.record_at(lg.head("default").size - 1, "default").event.action == "user.logout"
