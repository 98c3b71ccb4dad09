"""kill -9 in the middle of a retention run: the next run finishes it and nothing is lost."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from auditkeep.ledger import Ledger
from auditkeep.ledger.reader import Expired
from auditkeep.ledger.trust import Trust
from auditkeep.log.note import NoteVerifier
from auditkeep.retention import load_policies, run_retention
from auditkeep.retention.run import ACTION

DAY = 86_400 * 1_000_000_000
HERE = Path(__file__).parent


def test_kill_9_mid_run_resumes_and_loses_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    n = 6000
    with Ledger.open(data) as lg:
        for start in range(0, n, 1000):
            lg.append(
                [{"actor": {"id": f"u{i % 9}"}, "action": "user.login" if i % 3 else "db.read", "metadata": {"n": i}}
                 for i in range(start, start + 1000)],
                "default",
            )
        lg.checkpoint("default", new=True)
        later = lg.head("default").received_ns + 2 * DAY
        leaves = {e.index: e.leaf for e in lg.store.entries(lg.tenant_id("default"), 0, n)}

    child = subprocess.Popen(
        [sys.executable, str(HERE / "retention_child.py"), str(data), str(later)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert child.stdout is not None and child.stderr is not None
    try:
        for _ in range(4):  # a few chunks done, the next one under way
            line = child.stdout.readline()
            assert line.startswith("chunk"), line + child.stderr.read()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(30)
        child.stdout.close()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL

    policies = load_policies([{"action": "user.*", "delete_after": "1d"}])
    with Ledger.open(data, create=False) as lg:
        run_retention(lg, policies, later, "default")
        for i in range(n):
            if i % 3:
                try:
                    lg.record_at(i, "default")
                    raise AssertionError(f"entry {i} is due and was not expired")
                except Expired:
                    pass
            else:
                assert lg.entry(i, "default").leaf == leaves[i]  # kept byte for byte
        rep = lg.verify("default", trust=Trust.given([NoteVerifier.from_vkey(lg.pubkey())])).tenants[0]
        assert rep.ok, rep.problems
        assert rep.expired == sum(1 for i in range(n) if i % 3)
        assert lg.search("default", action=ACTION, limit=1000).items
    # the killed run left the full-text index to a rebuild at its end; the resumed run did it
    conn = sqlite3.connect(data / "index.db")
    try:
        hits = {w: conn.execute("SELECT count(*) FROM ev_fts WHERE ev_fts MATCH ?", (w,)).fetchone()[0]
                for w in ("login", "read")}
        stale = conn.execute("SELECT count(*) FROM proj_state WHERE key='text_stale'").fetchone()[0]
    finally:
        conn.close()
    assert hits == {"login": 0, "read": n // 3} and stale == 0
