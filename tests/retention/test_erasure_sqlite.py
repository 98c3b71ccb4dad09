"""Erasure on SQLite: how it finds the subject's entries (through the search rows by actor
while every subject is an actor id, below the projection's cursor, the entries from it on
scanned; by a scan of the log otherwise), and a projection left stale by a killed retention
run rebuilt first."""

from __future__ import annotations

from pathlib import Path

from auditkeep.ledger import Ledger, LedgerConfig
from auditkeep.ledger.reader import ERASED
from auditkeep.retention.erase import erase_subject
from auditkeep.store.base import SUBJECTS_ARE_ACTORS

ADMIN = {"id": "test-admin", "type": "user"}


def _events(n: int, start: int = 0) -> list[dict[str, object]]:
    return [{"actor": {"id": f"u-{i % 3}", "name": f"Person {i}"}, "action": "user.login",
             "metadata": {"user": f"m-{i % 2}"}} for i in range(start, start + n)]


def _erased(lg: Ledger, n: int) -> set[int]:
    return {i for i in range(n) if lg.record_at(i, "default").event.actor.name == ERASED}


def test_a_new_log_finds_the_subject_by_actor_projected_or_not(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "data", background=False) as lg:
        assert lg.store.meta(SUBJECTS_ARE_ACTORS) == "1"
        lg.append(_events(30), "default")
        lg.sync_projection("default")
        lg.append(_events(15, 30), "default")  # not projected yet: found by the tail's scan
        tid = lg.tenant_id("default")
        assert lg.store.projection_position(tid) == 30
        by_actor = lg.store.subject_entries(tid, "u-1", by_actor=True)
        assert [e.index for e in by_actor] == [e.index for e in lg.store.subject_entries(tid, "u-1")]
        done = erase_subject(lg, "default", "u-1", "test", ADMIN)
        assert done.events == 15
        assert _erased(lg, 45) == set(range(1, 45, 3))
        rep = lg.verify("default").tenants[0]
        assert rep.ok and rep.erased == 15


def test_another_subject_field_makes_the_erasure_scan(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Ledger.open(data, background=False) as lg:
        lg.append(_events(12), "default")  # subjects are actors so far
        lg.sync_projection("default")
    with Ledger.open(data, LedgerConfig(subject_field="metadata.user"), background=False) as lg:
        assert lg.store.meta(SUBJECTS_ARE_ACTORS) == "0"
        lg.append(_events(12, 12), "default")
        lg.sync_projection("default")
        done = erase_subject(lg, "default", "m-1", "test", ADMIN)
        assert done.events == 6  # m-1's events, whatever their actor; none is an actor id
        assert _erased(lg, 24) == set(range(13, 24, 2))
    with Ledger.open(data, background=False) as lg:  # back to actor.id: still "0", still a scan
        assert lg.store.meta(SUBJECTS_ARE_ACTORS) == "0"
        assert erase_subject(lg, "default", "u-0", "test", ADMIN).events == 4
        assert _erased(lg, 24) == set(range(13, 24, 2)) | {0, 3, 6, 9}


def test_a_stale_projection_is_rebuilt_so_expired_rows_keep_no_personal_words(tmp_path: Path) -> None:
    """A retention run killed before its rebuild leaves the expired entries' full-text rows;
    the subject's among them have no plaintext in the log, so only the rebuild removes them."""
    data = tmp_path / "data"
    marker = "Zqstalemarker"
    with Ledger.open(data, background=False) as lg:
        lg.append([{"actor": {"id": "u-7", "name": marker}, "action": "user.login"} for _ in range(4)], "default")
        lg.append(_events(6), "default")
        lg.sync_projection("default")
        tid = lg.tenant_id("default")
        lg.store.expire(tid, [0, 1], {}, text_later=True)  # as the killed run left it
        assert lg.store.text_index_stale()
        assert erase_subject(lg, "default", "u-7", "test", ADMIN).events == 2
        assert not lg.store.text_index_stale()
        assert lg.search("default", text=marker.lower()).items == []
    found = [f.name for f in data.iterdir() if f.is_file() and marker.lower().encode() in f.read_bytes().lower()]
    assert found == []
