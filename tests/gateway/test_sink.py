"""Gateway events reach the embedded ledger through the policy, in order, with ids that
make a resend idempotent; a closed store keeps them in the spool until it is back."""

from __future__ import annotations

import struct
import time
from pathlib import Path

from auditkeep.gateway.postgres.events import Run, SessionInfo
from auditkeep.gateway.postgres.sql import Statement
from auditkeep.gateway.sink import LedgerSink
from auditkeep.ledger import Ledger
from auditkeep.model import Actor, Event
from auditkeep.policy import Pipeline


def _ev(i: int, sql: str = "SELECT 1") -> Event:
    return Event(actor=Actor(id="alice", type="user"), action="db.query", metadata={"i": i, "sql": sql})


def test_events_pass_the_policy_in_order(ledger: Ledger) -> None:
    ledger.pipeline = Pipeline.default()  # what `auditkeep gateway postgres` opens the ledger with
    sink = LedgerSink(ledger, "acme", "postgres-gateway")
    for i in range(1200):
        sink.emit(_ev(i, "SELECT 'password=hunter2'" if i == 7 else "SELECT 1"))
    assert sink.flush(30)
    sink.close()
    recs = ledger.records(0, ledger.head("acme").size, "acme")
    assert [r.event.metadata["i"] for r in recs if r.event.metadata] == list(range(1200))
    leaked = [r for r in recs if "hunter2" in str(r.event.metadata)]
    assert not leaked  # the redactor ran (source postgres-gateway)


def test_failed_batches_wait_in_the_spool_and_are_sent_once(tmp_path: Path) -> None:
    lg = Ledger.open(tmp_path / "data")
    sink = LedgerSink(lg, "acme", "postgres-gateway", spool_dir=tmp_path / "spool", max_backoff=0.1)
    sink.emit(_ev(0))
    assert sink.flush(10)
    real = sink.intake.deliver
    calls = {"n": 0}

    def failing(*args: object, **kw: object) -> object:
        calls["n"] += 1
        if calls["n"] <= 3:
            raise OSError("store unreachable")
        return real(*args, **kw)  # type: ignore[arg-type]

    sink.intake.deliver = failing  # type: ignore[method-assign]
    for i in range(1, 50):
        sink.emit(_ev(i))
    assert sink.flush(20)
    assert sink.failures == 3
    sink.close()
    recs = lg.records(0, lg.head("acme").size, "acme")
    assert [r.event.metadata["i"] for r in recs if r.event.metadata] == list(range(50))
    lg.close()


def test_the_child_process_sink_delivers_in_order_and_survives_its_child(tmp_path: Path) -> None:
    """ProcessSink (what `auditkeep gateway postgres --data` uses): the ledger's work in a
    child process over the same store; the policy applies there; a killed child is replaced."""
    from auditkeep.config import Settings
    from auditkeep.gateway.sink_process import ProcessSink

    data = tmp_path / "data"
    Ledger.open(data).close()  # the signing key and store exist before the child opens them
    sink = ProcessSink(Settings(data=str(data)), "acme", "postgres-gateway")
    try:
        for i in range(1500):
            sink.emit(_ev(i, "SELECT 'password=hunter2'" if i == 7 else "SELECT 1"))
        assert sink.flush(60)
        assert sink.pending() == 0
        first = sink._proc
        assert first is not None
        first.kill()
        first.wait()
        for i in range(1500, 1600):
            sink.emit(_ev(i))
        # a statement goes as it is: the child builds its event and reads its Bind parameters
        info = SessionInfo("s1", "alice", "app", "psql", "127.0.0.1", started_ns=time.time_ns())
        bind = b"\x00\x00" + struct.pack("!hhi", 0, 1, 5) + b"hello" + struct.pack("!h", 0)
        st = Statement("SELECT $1", "select", "SelectStmt")
        sink.emit_query(info, Run(1, st, "extended", time.time_ns(), 0.0, bind=bind, rows=1), 0.0015)
        sink.emit_query(info, Run(2, st, "extended", time.time_ns(), 0.0, bind=b"\x00"), 0.001)
        assert sink.flush(60)
        assert sink.restarts == 1 and sink._proc is not first
    finally:
        sink.close()
    assert sink._proc is not None and sink._proc.returncode == 0  # it ended on its own, after the flush
    with Ledger.open(data, create=False, background=False) as lg:
        recs = lg.records(0, lg.head("acme").size, "acme")
        got = [r.event.metadata["i"] for r in recs if r.event.metadata and "i" in r.event.metadata]
        queries = [r.event.metadata["db"] for r in recs if r.event.action == "db.query" and "db" in (r.event.metadata or {})]
        assert not [r for r in recs if "hunter2" in str(r.event.metadata)]
    assert got == list(range(1600))
    assert [(q["seq"], q["params"], q["duration_us"]) for q in queries] == [(1, ["hello"], 1500), (2, ["<malformed Bind>"], 1000)]


def test_closing_the_child_process_sink_keeps_a_backlog(tmp_path: Path) -> None:
    """A close that comes while the child is behind (its flush times out) still ends with
    every event in the log: the child delivers what it holds before it exits."""
    from auditkeep.config import Settings
    from auditkeep.gateway.sink_process import ProcessSink

    data = tmp_path / "data"
    Ledger.open(data).close()
    sink = ProcessSink(Settings(data=str(data)), "acme", "postgres-gateway", spool_dir=tmp_path / "spool")
    for i in range(5000):
        sink.emit(_ev(i))
    sink.close(timeout=0.01)
    assert sink._proc is not None and sink._proc.returncode == 0
    with Ledger.open(data, create=False, background=False) as lg:
        recs = lg.records(0, lg.head("acme").size, "acme")
        assert [r.event.metadata["i"] for r in recs if r.event.metadata] == list(range(5000))


def test_spooled_events_go_to_the_tenant_they_were_written_for(tmp_path: Path) -> None:
    """A gateway of another tenant that adopts a spool slot left behind (a shared data
    directory) delivers its events to their own tenant's log."""
    import sqlite3

    from auditkeep.ledger.datadir import establish
    from auditkeep.store.sqlite import SQLiteStore

    data = tmp_path / "data"
    Ledger.open(data).close()
    # A store that gives up on a held write lock at once: the sink's worker fails fast and
    # stops at close, rather than still waiting for the lock when the spool is closed.
    store = SQLiteStore(data, busy_timeout=0.02)
    lg = Ledger(store, establish(store, data, create=False)[0], background=False)
    sink = LedgerSink(lg, "acme", "mcp-gateway", spool_dir=tmp_path / "spool", batch_size=10, max_queue=10,
                      max_backoff=0.05)  # fmt: skip
    held = sqlite3.connect(data / "log.db", isolation_level=None, timeout=30)
    held.execute("BEGIN IMMEDIATE")  # nothing commits: at close the queue goes to the spool
    try:
        for i in range(30):
            sink.emit(_ev(i))
        assert sink.spilled_total > 0
        sink.close(0.5)
    finally:
        held.execute("ROLLBACK")
        held.close()
    assert lg.store.tenant("acme") is None  # all of it waits on disk
    other = LedgerSink(lg, "globex", "mcp-gateway", spool_dir=tmp_path / "spool")
    other.emit(_ev(100))
    assert other.flush(30)
    other.close()
    acme = lg.records(0, lg.head("acme").size, "acme")
    assert [r.event.metadata["i"] for r in acme if r.event.metadata] == list(range(30))
    globex = lg.records(0, lg.head("globex").size, "globex")
    assert [r.event.metadata["i"] for r in globex if r.event.metadata] == [100]
    lg.close()
