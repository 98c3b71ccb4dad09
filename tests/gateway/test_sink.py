"""Gateway events reach the embedded ledger through the policy, in order, with ids that
make a resend idempotent; a closed store keeps them in the spool until it is back."""

from __future__ import annotations

from pathlib import Path

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
