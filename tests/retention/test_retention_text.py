"""SQLite's contentless full-text index under retention: forgotten row by row when little of
it expires, rebuilt once when most of it does; no expired entry's words stay searchable."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from auditkeep.ledger import Ledger
from auditkeep.ledger.reader import Expired
from auditkeep.ledger.trust import Trust
from auditkeep.log.note import NoteVerifier
from auditkeep.retention import load_policies, run_retention
from auditkeep.retention.run import _text_later
from auditkeep.store.sqlite import SQLiteStore

SECOND = 1_000_000_000


def _batch(word: str, n: int) -> list[dict[str, object]]:
    return [{"actor": {"id": f"u{i % 4}"}, "action": "user.login", "metadata": {"note": f"{word}{i}", "tag": word}}
            for i in range(n)]


def _fts_hits(data: Path, word: str) -> int:
    """Rows of the full-text index itself matching ``word`` (not joined with the search rows)."""
    conn = sqlite3.connect(data / "index.db")
    try:
        return int(conn.execute("SELECT count(*) FROM ev_fts WHERE ev_fts MATCH ?", (word,)).fetchone()[0])
    finally:
        conn.close()


def _setup(tmp_path: Path, old: int, young: int) -> tuple[Ledger, int]:
    lg = Ledger.open(tmp_path / "data", background=False)
    lg.append(_batch("oldword", old), "default")
    cut = lg.head("default").received_ns
    lg.append(_batch("youngword", young), "default")
    lg.sync_projection("default")
    lg.checkpoint("default", new=True)
    return lg, cut


@pytest.mark.parametrize(("old", "young", "later"), [(20, 200, False), (200, 20, True)])
def test_expired_words_leave_the_index_either_way(tmp_path: Path, old: int, young: int, later: bool) -> None:
    lg, cut = _setup(tmp_path, old, young)
    policies = load_policies([{"action": "user.*", "delete_after": "1s"}])
    at = cut + SECOND  # the old batch is due, the young one (received after it) is not
    try:
        store = lg.store
        assert isinstance(store, SQLiteStore)
        assert _text_later(store, lg.head("default"), policies, at) is later
        assert _fts_hits(tmp_path / "data", "oldword") == old
        done = run_retention(lg, policies, at, "default")[0]
        assert done.due == old
        assert not store.text_index_stale()
        assert _fts_hits(tmp_path / "data", "oldword") == 0  # the words are gone, not just hidden
        assert _fts_hits(tmp_path / "data", "youngword") == young
        assert lg.search("default", text="oldword").items == []
        assert len(lg.search("default", text="youngword", limit=1000).items) == young
        with pytest.raises(Expired):
            lg.record_at(0, "default")
        assert lg.record_at(old, "default").event.metadata == {"note": "youngword0", "tag": "youngword"}
        # entries projected after the run are searchable as before
        lg.append(_batch("newerword", 5), "default")
        lg.sync_projection("default")
        assert len(lg.search("default", text="newerword").items) == 5
        assert lg.verify("default", trust=Trust.given([NoteVerifier.from_vkey(lg.pubkey())])).ok
    finally:
        lg.close()


def test_a_stale_mark_left_by_a_killed_run_is_rebuilt_by_the_next(tmp_path: Path) -> None:
    """As a run killed after expiring a chunk and before its rebuild leaves it: search rows
    and payloads gone, full-text rows still there, the mark set."""
    lg, cut = _setup(tmp_path, 200, 20)
    policies = load_policies([{"action": "user.*", "delete_after": "1s"}])
    try:
        store = lg.store
        assert isinstance(store, SQLiteStore)
        store.expire(lg.tenant_id("default"), list(range(100)), {}, text_later=True)
        assert store.text_index_stale()
        assert _fts_hits(tmp_path / "data", "oldword") == 200  # still in the index ...
        assert sorted(r.index for r in lg.search("default", text="oldword", limit=1000).items) == list(range(100, 200))
        # ... the next run (here one that expires nothing) rebuilds it
        assert run_retention(lg, policies, cut - SECOND, "default")[0].due == 0
        assert not store.text_index_stale()
        assert _fts_hits(tmp_path / "data", "oldword") == 100
        assert _fts_hits(tmp_path / "data", "youngword") == 20
    finally:
        lg.close()
