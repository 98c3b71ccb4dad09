"""The PostgreSQL writer's pipeline (ledger/staged.py): groups sequenced while the previous
one commits, against a real database. What must hold: every acknowledged event is stored at
the index its receipt names, no gap and no fork, whatever commits fail or whoever else
appends to the same log."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from auditkeep.errors import StoreError
from auditkeep.ledger import Ledger, LedgerConfig
from auditkeep.ledger.datadir import establish
from auditkeep.log.hashing import leaf_hash
from auditkeep.model.wire import Receipt

pg_support = pytest.importorskip("pg_support")

# One batch a group, so that several groups are in flight at once.
CFG = LedgerConfig(max_group_events=50)


@pytest.fixture
def make_pg_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Ledger]]:
    made: list[Ledger] = []

    def factory() -> Ledger:
        store = pg_support.store_for_test(request, tmp_path, CFG)
        identity, _ = establish(store, tmp_path / "data")
        made.append(Ledger(store, identity, CFG, background=False))
        return made[-1]

    yield factory
    for lg in made:
        lg.close()


def _batch(k: int, n: int = 50, chosen_ids: bool = False) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        ev: dict[str, Any] = {
            "actor": {"id": f"user-{(k * n + i) % 37}", "ip": f"10.0.{k % 200}.{i}"},
            "action": "doc.read",
            "resource": {"type": "doc", "id": f"d-{k}-{i}"},
        }
        if chosen_ids:
            ev["id"] = str(uuid.UUID(int=(k << 16) | i, version=4))
        out.append(ev)
    return out


def _check_log(lg: Ledger, tenant: str, receipts: list[Receipt]) -> None:
    """Receipts name distinct indexes, each holding that event; the log verifies."""
    indexes = [r.index for r in receipts]
    assert len(set(indexes)) == len(indexes)
    size = lg.store.tenant(tenant).size  # type: ignore[union-attr]
    assert max(indexes) < size
    for r in receipts[:: max(1, len(receipts) // 40)]:
        assert lg.get(r.id, tenant).index == r.index
    report = lg.verify(tenant)
    assert report.ok, report


def test_many_groups_in_flight_land_in_order(make_pg_ledger: Callable[[], Ledger]) -> None:
    lg = make_pg_ledger()
    futures = [lg.submit(_batch(k, chosen_ids=k % 3 == 0), "acme") for k in range(40)]
    # An idempotent retry of a batch while it may still be in flight: same receipts.
    retry = lg.submit(_batch(3, chosen_ids=True), "acme")
    receipts = [r for f in futures for r in f.result(60)]
    again = retry.result(60)
    assert [r.index for r in again] == [r.index for r in futures[3].result()]
    assert lg.store.tenant("acme").size == 40 * 50  # type: ignore[union-attr]
    # Staging (not only the lock) assigned them: consecutive, in submission order.
    assert [r.index for r in receipts] == list(range(40 * 50))
    _check_log(lg, "acme", receipts)


def test_two_writers_on_one_log_never_fork(make_pg_ledger: Callable[[], Ledger]) -> None:
    """A second ledger (another node) appends to the same log: the first one's staged groups
    find a moved head under the lock and are sequenced again."""
    a, b = make_pg_ledger(), make_pg_ledger()
    results: dict[str, list[Future[list[Receipt]]]] = {"a": [], "b": []}

    def run(lg: Ledger, name: str) -> None:
        for k in range(25):
            results[name].append(lg.submit(_batch(k + (100 if name == "b" else 0)), "shared"))

    threads = [threading.Thread(target=run, args=(lg, n)) for lg, n in ((a, "a"), (b, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    receipts = [r for fs in results.values() for f in fs for r in f.result(60)]
    assert len(receipts) == 50 * 50
    assert sorted(r.index for r in receipts) == list(range(50 * 50))
    _check_log(a, "shared", receipts)


def test_a_failed_commit_fails_its_group_and_later_groups_land(
    make_pg_ledger: Callable[[], Ledger], request: pytest.FixtureRequest
) -> None:
    """A commit that fails (a deferred constraint, checked at COMMIT) fails its group only;
    the groups sequenced on top of it are sequenced again and land with no gap."""
    lg = make_pg_ledger()
    lg.append(_batch(0), "acme")
    poison = _batch(5, chosen_ids=True)
    bad = bytes.fromhex(poison[7]["id"].replace("-", ""))
    with lg.store._conn() as conn:  # type: ignore[attr-defined]
        conn.execute(
            "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN IF NEW.id = '\\x" + bad.hex() + "'::bytea THEN "
            "RAISE EXCEPTION 'poisoned'; END IF; RETURN NULL; END $$"
        )
        conn.execute(
            "CREATE CONSTRAINT TRIGGER refuse_poison AFTER INSERT ON entries "
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_poison()"
        )
    futures = [lg.submit(poison if k == 5 else _batch(k), "acme") for k in range(1, 12)]
    ok: list[Receipt] = []
    for k, f in zip(range(1, 12), futures, strict=True):
        if k == 5:
            with pytest.raises(StoreError):
                f.result(60)
        else:
            ok.extend(f.result(60))
    assert lg.store.tenant("acme").size == 11 * 50  # type: ignore[union-attr]
    assert sorted(r.index for r in ok) == list(range(50, 11 * 50))
    _check_log(lg, "acme", ok)
    # And the writer goes on: the poisoned batch without its poison lands.
    assert len(lg.append([e for i, e in enumerate(poison) if i != 7], "acme")) == 49


CHILD = Path(__file__).with_name("pg_crash_child.py")


def test_sigkill_with_groups_in_flight_loses_nothing_acknowledged(
    make_pg_ledger: Callable[[], Ledger], tmp_path: Path
) -> None:
    lg = make_pg_ledger()  # the schema, and the key the child finds in the same directory
    url = pg_support.url_for_schema(lg.store.schema)  # type: ignore[attr-defined]
    rng = random.Random(77)
    acked: dict[tuple[str, int], str] = {}
    for round_ in range(4):
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), url, str(tmp_path / "data"), str(round_)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()
        time.sleep(rng.uniform(0.0, 0.5))
        proc.send_signal(signal.SIGKILL)
        rest, _ = proc.communicate()
        for line in [first.decode(), *rest.decode().splitlines()]:
            parts = line.split()
            if len(parts) == 3:  # a line cut by the kill is not an acknowledgement
                acked[(parts[0], int(parts[1]))] = parts[2]
        for (tenant, index), lh in acked.items():
            assert leaf_hash(lg.entry(index, tenant).leaf).hex() == lh
        report = lg.verify()
        assert report.ok, report
    assert len(acked) > 4


def test_checkpoints_signed_while_groups_are_in_flight(make_pg_ledger: Callable[[], Ledger]) -> None:
    """sign_now writes the head's checkpoint fields under the lock between two staged
    groups: the later group keeps naming the newest checkpoint, and every note verifies."""
    lg = make_pg_ledger()
    lg.append(_batch(0), "acme")
    futures = []
    for k in range(1, 31):
        futures.append(lg.submit(_batch(k), "acme"))
        if k % 5 == 0:
            lg.checkpoint("acme", new=True)
    receipts = [r for f in futures for r in f.result(60)]
    head = lg.store.tenant("acme")
    assert head is not None and head.size == 31 * 50
    latest = lg.store.latest_checkpoint(head.tenant_id)
    assert latest is not None and head.checkpoint_size == latest.size
    _check_log(lg, "acme", receipts)


def test_new_subjects_in_every_group_are_salted_once_and_open(
    make_pg_ledger: Callable[[], Ledger],
) -> None:
    """Every group brings subjects never seen (their salts are created while the previous
    group commits, without its lock), and a second writer salts some of the same subjects:
    each subject ends with one salt, and every event's personal fields open."""
    a, b = make_pg_ledger(), make_pg_ledger()
    batches = [
        [{"actor": {"id": f"new-{k}-{i}", "ip": f"10.1.{k}.{i}"}, "action": "doc.read"} for i in range(50)]
        for k in range(20)
    ]
    fa = [a.submit(batch, "acme") for batch in batches]
    fb = [b.submit(batch[:10], "acme") for batch in batches[::4]]
    receipts = [r for f in fa + fb for r in f.result(60)]
    assert sorted(r.index for r in receipts) == list(range(len(receipts)))
    for r in receipts[::7]:
        ev = a.get(r.id, "acme").event
        assert ev.actor.ip is not None and ev.actor.ip.startswith("10.1.")
    with a.store._conn() as conn:  # type: ignore[attr-defined]
        rows = conn.execute("SELECT count(*), count(DISTINCT subject) FROM subjects").fetchone()
    assert rows == (20 * 50, 20 * 50)
    _check_log(a, "acme", receipts)
