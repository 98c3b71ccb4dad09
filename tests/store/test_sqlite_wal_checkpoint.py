"""The log's WAL is copied into log.db by a thread beside the writer, not inside a commit."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from auditkeep.ledger import Ledger
from auditkeep.store.sqlite_connect import read_only_uri
from auditkeep.store.sqlite_walcheckpoint import BACKSTOP_PAGES


def _checkpointed_entries(log_db: Path) -> int | None:
    """Entries in log.db's own pages, ignoring the WAL (``immutable=1`` reads no WAL); None
    while a checkpoint is half-way through a page the read needs."""
    uri = read_only_uri(log_db).replace("mode=ro", "mode=ro&immutable=1")
    try:
        conn = sqlite3.connect(uri, uri=True)
        try:
            return int(conn.execute("SELECT count(*) FROM entries").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return None


def _events(n: int, start: int = 0) -> list[dict[str, object]]:
    return [{"actor": {"id": f"u{i}"}, "action": "doc.read", "metadata": {"pad": "x" * 400}} for i in range(start, start + n)]


def test_commits_leave_the_copying_to_the_checkpoint_thread(tmp_path: Path) -> None:
    # this store's thread: another test of the same worker process may have left a store open
    before = set(threading.enumerate())
    with Ledger.open(tmp_path / "data", background=False) as lg:
        store = lg.store
        # the writer's own automatic checkpoint is only a far backstop
        assert store._w.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == BACKSTOP_PAGES  # type: ignore[attr-defined]
        for k in range(5):
            lg.append(_events(200, k * 200), "t")
        ours = [t for t in threading.enumerate() if t.name == "auditkeep-wal-checkpoint" and t not in before]
        assert ours
        # without any call of ours, the thread copies the committed frames into log.db
        deadline = time.monotonic() + 60
        while _checkpointed_entries(store.log_path) != 1000 and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.05)
        assert _checkpointed_entries(store.log_path) == 1000  # type: ignore[attr-defined]
        # and the log reads the same through the WAL as from the file
        assert lg.tenants()[0].size == 1000
    assert not any(t.is_alive() for t in ours)


def test_a_reopened_log_holds_every_acknowledged_entry(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Ledger.open(data, background=False) as lg:
        receipts = [r for k in range(4) for r in lg.append(_events(250, k * 250), "t")]
    with Ledger.open(data, background=False) as lg:
        assert lg.tenants()[0].size == 1000
        assert lg.get(receipts[-1].id, "t").index == 999
        assert lg.verify("t").ok


def test_no_checkpoint_of_the_thread_runs_while_paused(tmp_path: Path) -> None:
    """The erasure pauses it around its TRUNCATE checkpoint (which SQLite refuses while
    another checkpoint holds the lock, leaving erased plaintext in the WAL)."""
    with Ledger.open(tmp_path / "data", background=False) as lg:
        lg.append(_events(100), "t")
        wal = lg.store._wal  # type: ignore[attr-defined]
        done: list[tuple[int, int, int]] = []
        with wal.paused():
            t = threading.Thread(target=lambda: done.append(wal.checkpoint()))
            t.start()
            t.join(0.5)
            assert not done and t.is_alive()
            # the TRUNCATE checkpoint the erasure runs here finds the lock free
            busy, _, _ = lg.store._w.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()  # type: ignore[attr-defined]
            assert busy == 0
        t.join()
        assert done and done[0][0] == 0
