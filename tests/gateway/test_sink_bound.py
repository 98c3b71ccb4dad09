"""A ledger slower than the gateway: the sink's memory queue stays under its bound, the
spool takes the excess, and every event still reaches the log once, in emit order.

The store is slowed for real: another connection holds SQLite's write lock, so the
ledger's commits wait (busy timeout) until it is released."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import pytest

from auditkeep.gateway.sink import LedgerSink
from auditkeep.ledger import Ledger
from auditkeep.ledger.datadir import establish
from auditkeep.model import Actor, Event
from auditkeep.store.sqlite import SQLiteStore


def _ev(i: int) -> Event:
    return Event(actor=Actor(id="alice", type="user"), action="db.query", metadata={"i": i})


def _lock(data: Path) -> sqlite3.Connection:
    """Another writer on the ledger's database: the ledger's commits wait for it."""
    conn = sqlite3.connect(data / "log.db", isolation_level=None, timeout=30)
    conn.execute("BEGIN IMMEDIATE")
    return conn


def _logged(data: Path) -> list[int]:
    with Ledger.open(data, create=False, background=False) as lg:
        recs = lg.records(0, lg.head("acme").size, "acme")
        return [r.event.metadata["i"] for r in recs if r.event.metadata and "i" in r.event.metadata]


class _Held(Protocol):
    def rollback(self) -> None: ...
    def close(self) -> None: ...


def _emit_while_stalling(sink: LedgerSink, hold: Callable[[], _Held], events: range) -> None:
    """Emit ``events`` while another session takes the store's lock (``hold``) and releases
    it over and over, at about the pace the store commits, so the sink's worker goes back
    and forth between spool and queue."""
    stop = threading.Event()

    def stall() -> None:
        while not stop.is_set():
            c = hold()
            time.sleep(0.02)
            c.rollback()
            c.close()
            time.sleep(0.02)

    t = threading.Thread(target=stall)
    t.start()
    try:
        for i in events:
            sink.emit(_ev(i))
            if i % 50 == 0:
                time.sleep(0.001)
    finally:
        stop.set()
        t.join()


def _first_batch_in_flight(sink: LedgerSink, deadline: float) -> None:
    """Emit events 0..49 and wait until the worker is delivering them (a stalled store keeps
    it there)."""
    for i in range(50):
        sink.emit(_ev(i))
    while sink._in_flight == 0 and time.monotonic() < deadline:
        time.sleep(0.001)


def _ledger(data: Path, busy_timeout: float) -> Ledger:
    """A ledger whose store waits ``busy_timeout`` seconds for SQLite's write lock: with a
    long wait a held lock makes commits slow, with a short one it makes them fail."""
    Ledger.open(data).close()
    store = SQLiteStore(data, busy_timeout=busy_timeout)
    identity, _ = establish(store, data, create=False)
    return Ledger(store, identity, background=False)


@pytest.mark.parametrize("busy_timeout", [30.0, 0.02], ids=["slow-store", "failing-store"])
def test_a_slow_store_sends_the_excess_to_the_spool_in_order(tmp_path: Path, busy_timeout: float) -> None:
    data = tmp_path / "data"
    lg = _ledger(data, busy_timeout)
    bound = 200
    sink = LedgerSink(lg, "acme", "postgres-gateway", spool_dir=tmp_path / "spool", batch_size=50, max_queue=bound,
                      max_backoff=0.05)  # fmt: skip
    n = 6000
    # Phase 1: the store does not commit at all while the events arrive.
    held = _lock(data)
    try:
        for i in range(n):
            sink.emit(_ev(i))
            assert len(sink._queue) <= bound
        assert sink.spilled_total >= n - bound - 50  # all but the queue and one batch in flight
        # pending still counts every event, those on disk included (not 1 for the spool)
        assert n <= sink.pending() <= n + 50
        assert any((tmp_path / "spool" / "overflow").rglob("*.seg"))
    finally:
        held.execute("ROLLBACK")
        held.close()
    # Phase 2: the store stalls and recovers over and over while events keep coming.
    _emit_while_stalling(sink, lambda: _lock(data), range(n, 4 * n))
    assert sink.flush(120)
    assert sink.pending() == 0
    assert sink.max_queue_seen <= bound
    assert sink.spilled_total > n
    sink.close()
    lg.close()
    assert _logged(data) == list(range(4 * n))  # each once, in the order emitted


def test_without_a_spool_directory_the_queue_grows_as_before_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    lg = Ledger.open(data, background=False)
    sink = LedgerSink(lg, "acme", "postgres-gateway", max_queue=1000)
    held = _lock(data)
    try:
        with caplog.at_level(logging.WARNING, logger="auditkeep.gateway"):
            for i in range(4000):
                sink.emit(_ev(i))
        assert sink.max_queue_seen > 1000
        warned = [r for r in caplog.records if "no spool directory" in r.getMessage()]
        assert len(warned) == 1
    finally:
        held.execute("ROLLBACK")
        held.close()
    assert sink.flush(60)
    sink.close()
    lg.close()
    assert _logged(data) == list(range(4000))


def test_the_child_process_sink_bounds_its_memory_on_a_slow_store(tmp_path: Path) -> None:
    """The gateway's own list stays short (the child keeps reading, its excess goes to the
    spool) and pending counts what is on disk."""
    from auditkeep.config import Settings
    from auditkeep.gateway.sink_process import ProcessSink

    data = tmp_path / "data"
    Ledger.open(data).close()
    sink = ProcessSink(Settings(data=str(data), gateway_max_queue=2000), "acme", "postgres-gateway",
                       spool_dir=tmp_path / "spool")  # fmt: skip
    n = 20_000
    held = _lock(data)
    try:
        for i in range(n):
            sink.emit(_ev(i))
        deadline = time.monotonic() + 60
        while sink._received < n and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sink._received == n  # the child read everything while the store was stuck
        assert sink.pending() >= n  # queue + spool, counted by event
        assert any((tmp_path / "spool" / "overflow").rglob("*.seg"))
    finally:
        held.execute("ROLLBACK")
        held.close()
    assert sink.flush(120)
    sink.close()
    assert _logged(data) == list(range(n))


def test_a_batch_that_fails_stays_ahead_of_events_spilled_while_it_was_tried(tmp_path: Path) -> None:
    """The batch in flight fails after newer events went to the spool meanwhile: it is
    still delivered before them."""
    data = tmp_path / "data"
    lg = _ledger(data, 1.0)  # a commit waits 1 s for the lock, then fails
    sink = LedgerSink(lg, "acme", "postgres-gateway", spool_dir=tmp_path / "spool", batch_size=50, max_queue=100,
                      max_backoff=0.05)  # fmt: skip
    held = _lock(data)
    try:
        deadline = time.monotonic() + 30
        _first_batch_in_flight(sink, deadline)
        assert sink._in_flight == 50 and sink.failures == 0  # 0..49 are being committed
        for i in range(50, 450):
            sink.emit(_ev(i))
        assert sink.spilled_total >= 300  # newer events went to the spool during that commit
        while sink.failures == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sink.failures >= 1
    finally:
        held.execute("ROLLBACK")
        held.close()
    assert sink.flush(60)
    sink.close()
    lg.close()
    assert _logged(data) == list(range(450))


@pytest.mark.parametrize("store_kind", ["postgres"])
def test_a_postgres_store_locked_by_another_session(tmp_path: Path, make_ledger: Callable[..., Ledger]) -> None:
    """The same on PostgreSQL: another session holds a lock on the log's table, so the
    ledger's inserts wait; the excess goes to the spool and everything lands in order."""
    import psycopg

    import pg_support  # type: ignore[import-not-found]

    lg = make_ledger(background=False)
    schema = lg.store.schema  # type: ignore[attr-defined]
    bound = 200

    def hold() -> psycopg.Connection[object]:
        c: psycopg.Connection[object] = psycopg.connect(pg_support.base_url())
        c.execute(f'LOCK TABLE "{schema}".entries IN EXCLUSIVE MODE')
        return c

    sink = LedgerSink(lg, "acme", "postgres-gateway", spool_dir=tmp_path / "spool", batch_size=50,
                      max_queue=bound, max_backoff=0.05)  # fmt: skip
    n = 3000
    held = hold()
    try:
        for i in range(n):
            sink.emit(_ev(i))
            assert len(sink._queue) <= bound
        assert sink.spilled_total >= n - bound - 50
        assert n <= sink.pending() <= n + 50
    finally:
        held.rollback()
        held.close()
    _emit_while_stalling(sink, hold, range(n, 3 * n))
    assert sink.flush(120)
    assert sink.pending() == 0 and sink.max_queue_seen <= bound
    sink.close()
    recs = lg.records(0, lg.head("acme").size, "acme")
    assert [r.event.metadata["i"] for r in recs if r.event.metadata] == list(range(3 * n))


def test_what_a_closed_sink_left_on_disk_goes_first_after_a_restart(tmp_path: Path) -> None:
    """A sink closed while the store is stuck leaves its events in the spool; the next one
    delivers them before its own, and counts them as pending meanwhile."""
    data = tmp_path / "data"
    lg = _ledger(data, 0.02)
    sink = LedgerSink(lg, "acme", "postgres-gateway", spool_dir=tmp_path / "spool", batch_size=50, max_queue=100,
                      max_backoff=0.05)  # fmt: skip
    held = _lock(data)
    try:
        for i in range(1000):
            sink.emit(_ev(i))
        sink.close(timeout=0.2)  # the store still refuses: the rest goes to the spool
        assert not sink._queue and sink.pending() > 0
    finally:
        held.execute("ROLLBACK")
        held.close()
    lg.close()
    lg = _ledger(data, 30.0)
    held = _lock(data)
    try:
        again = LedgerSink(lg, "acme", "postgres-gateway", spool_dir=tmp_path / "spool", batch_size=50,
                           max_queue=100, max_backoff=0.05)  # fmt: skip
        assert again.pending() >= 1  # what the first one left
        for i in range(1000, 1500):
            again.emit(_ev(i))
        assert again.pending() >= 501
    finally:
        held.execute("ROLLBACK")
        held.close()
    assert again.flush(60)
    assert again.pending() == 0
    again.close()
    lg.close()
    assert _logged(data) == list(range(1500))


@pytest.mark.parametrize("after_close", ["commits", "fails"])
def test_closing_while_a_delivery_waits_for_the_store(
    tmp_path: Path, after_close: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """close() with the worker stuck in a delivery longer than its timeout: the batch in
    flight is spooled with the queue, the worker (whether its delivery then commits or
    fails) leaves the closed spool alone, and the next sink logs every event once, in order."""
    raised: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: raised.append(args.exc_value))
    data = tmp_path / "data"
    lg = _ledger(data, busy_timeout=1.5)
    sink = LedgerSink(lg, "acme", "postgres-gateway", spool_dir=tmp_path / "spool", batch_size=50, max_queue=100,
                      max_backoff=0.05)  # fmt: skip
    held = _lock(data)
    try:
        _first_batch_in_flight(sink, time.monotonic() + 30)
        assert sink._in_flight == 50  # the worker is inside a delivery, waiting for the lock
        for i in range(50, 300):  # more than the bound: some go to overflow
            sink.emit(_ev(i))
        sink.close(0.2)
        assert sink._thread.is_alive()
        if after_close == "commits":
            held.execute("ROLLBACK")
        sink._thread.join(10)  # its delivery commits, or gives up after the busy timeout
        assert not sink._thread.is_alive()
    finally:
        if held.in_transaction:
            held.execute("ROLLBACK")
        held.close()
    assert raised == []
    again = LedgerSink(lg, "acme", "postgres-gateway", spool_dir=tmp_path / "spool")
    assert again.flush(60)
    again.close()
    lg.close()
    assert _logged(data) == list(range(300))  # the batch sent twice is stored once
