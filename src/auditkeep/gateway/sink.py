"""Where a gateway's events go: the embedded ledger or a remote server, without ever making
the traffic the gateway carries wait for the log.

- :class:`LedgerSink` (``--data DIR`` / ``--db URL``): a thread hands batches to
  :class:`~auditkeep.sources.intake.Intake` under the gateway's source name, so the capture
  policy and redaction apply as for every source and an event the ledger refuses lands in
  the quarantine. While the store fails (PostgreSQL down), batches are kept — in the spool
  directory when one is given (fsync'd, survives a restart), in memory otherwise — and
  retried with backoff, oldest first. Events carry their ids from the start, so a batch
  sent twice is stored once. The memory queue is bounded (``max_queue``): past it, the
  oldest events go to the spool's ``overflow/`` directory in batches, and the worker
  delivers them before anything newer; without a spool directory the queue is not bounded
  (a warning is logged once when it passes ``max_queue``).
- :class:`ClientSink` (``--server URL --key KEY``): :class:`auditkeep.Client` with its spool;
  the server applies the gateway source's policy (``?source=``).

:meth:`emit` is a ``deque.append`` under a lock (past the bound, one spool write per
``batch_size`` events); it never waits for the store and never raises for delivery.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import Protocol

import msgspec

from auditkeep.client.spool import Position, Spool, SpoolRecord
from auditkeep.ledger.ledger import Ledger
from auditkeep.model.event import Event
from auditkeep.model.ids import uuid7
from auditkeep.sources.intake import Intake
from auditkeep.sources.quarantine import Quarantine

log = logging.getLogger("auditkeep.gateway")

_encode = msgspec.json.Encoder()
_decode_event = msgspec.json.Decoder(Event)
SPOOL_MAX_BYTES = 1 << 30
MAX_QUEUE = 50_000  # events held in memory before the oldest go to the spool


class EventSink(Protocol):
    def emit(self, event: Event) -> None:
        """Queue ``event`` (its ``id`` is set here when missing); never blocks."""
        ...

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything emitted so far is durable; False on timeout."""
        ...

    def close(self, timeout: float = 5.0) -> None: ...

    def pending(self) -> int:
        """Events emitted and not yet durable in the log."""
        ...


class _Disk:
    """One of the sink's two spools (``spool``, ``overflow``) and what this process knows of
    it: the events it wrote there and has not delivered yet, counted by record (where each
    record ends), and whether it still holds batches an earlier process left (those are not
    counted by event: 1 stands for them until one of ours is delivered or the spool is empty).
    Used with the sink's lock held."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self.events = 0
        self.ends: deque[Position] = deque()
        self.old = not spool.empty()

    def add(self, tenant: str, batch: list[Event]) -> bool:
        """Write ``batch``; False when the spool is full (nothing written)."""
        if not self.spool.append(tenant, [_encode.encode(e) for e in batch]):
            return False
        self.events += len(batch)
        self.ends.append(self.spool.tail())
        return True

    def delivered(self, rec: SpoolRecord, n: int) -> None:
        """``rec`` (``n`` events) is in the log: it leaves the spool."""
        self.spool.ack(rec)
        if self.ends and rec.end == self.ends[0]:
            self.ends.popleft()
            self.events -= n
            self.old = False
        self.old = self.old and not self.spool.empty()

    def pending(self) -> int:
        return self.events + int(self.old)


class LedgerSink:
    """See the module docstring."""

    def __init__(
        self,
        ledger: Ledger,
        tenant: str,
        source: str,
        *,
        spool_dir: str | Path | None = None,
        batch_size: int = 500,
        flush_interval: float = 0.05,
        max_backoff: float = 5.0,
        max_queue: int = MAX_QUEUE,
    ) -> None:
        self.ledger = ledger
        self.tenant = tenant
        self.source = source
        self.intake = Intake(ledger, Quarantine(ledger.store))
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_backoff = max_backoff
        self.max_queue = max(max_queue, batch_size)
        # Two spools, delivered in this order: ``spool`` takes a batch whose delivery failed
        # (at most one at a time, see _run); ``overflow`` takes the oldest queued events past
        # ``max_queue``. Every event in ``spool`` is older than every event in ``overflow``,
        # and those are older than the queue's.
        self.spool = _Disk(Spool(spool_dir, SPOOL_MAX_BYTES)) if spool_dir is not None else None
        self.overflow = _Disk(Spool(Path(spool_dir) / "overflow", SPOOL_MAX_BYTES)) if spool_dir is not None else None
        self._queue: deque[Event] = deque()
        # emit() and the worker run on different threads: this lock covers the queue, the
        # overflow spool (a Spool is not thread-safe) and the counts below.
        self._lock = threading.Lock()
        self.spilled_total = 0  # events that went through ``overflow`` (for tests, metrics)
        self.max_queue_seen = 0
        self._warned_unbounded = False
        self._warned_overflow_full = False
        self._held: deque[list[Event]] = deque()  # failed batches, when there is no spool
        self._wake = threading.Event()
        self._first_at = 0.0  # when the oldest queued event came (monotonic; 0: deliver it now)
        self._flushing = 0  # flush() calls under way: the worker does not wait for a fuller batch
        self._idle = threading.Condition()
        self._stop = False
        self.delivered = 0
        self.failures = 0
        self.last_error = ""
        self._in_flight = 0
        self._flight: list[Event] = []  # the batch being delivered from the queue
        self._closed = False  # close() has taken over the spools: the worker leaves them alone
        self._thread = threading.Thread(target=self._run, name=f"auditkeep-{source}-sink", daemon=True)
        self._thread.start()

    def emit(self, event: Event) -> None:
        if event.id is None:
            event.id = uuid7()
        with self._lock:
            if len(self._queue) >= self.max_queue:
                self._spill()
            elif not self._queue:
                self._first_at = time.monotonic()
            self._queue.append(event)
            n = len(self._queue)
            if n > self.max_queue_seen:
                self.max_queue_seen = n
        if n >= self.batch_size:
            self._wake.set()

    def _spill(self) -> None:
        """The queue is at its bound: move its oldest ``batch_size`` events to ``overflow``
        (called with ``_lock`` held)."""
        if self.overflow is None:
            if not self._warned_unbounded:
                self._warned_unbounded = True
                log.warning("gateway events are arriving faster than the ledger commits them: %d wait in "
                            "memory and there is no spool directory to hold the excess", len(self._queue))  # fmt: skip
            return
        q = self._queue
        batch = [q[i] for i in range(min(self.batch_size, len(q)))]
        if not self.overflow.add(self.tenant, batch):
            if not self._warned_overflow_full:
                self._warned_overflow_full = True
                log.warning("the gateway's spool is full: events past %d wait in memory", self.max_queue)
            return
        for _ in batch:
            q.popleft()
        self.spilled_total += len(batch)
        self._wake.set()

    def pending(self) -> int:
        with self._lock:
            held = sum(len(b) for b in self._held)
            disks = sum(d.pending() for d in (self.spool, self.overflow) if d is not None)
            return len(self._queue) + held + self._in_flight + disks

    def flush(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._flushing += 1
        try:
            self._wake.set()
            with self._idle:
                while self.pending():
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    self._wake.set()
                    self._idle.wait(0.05 if left is None else min(0.05, left))
            return True
        finally:
            with self._lock:
                self._flushing -= 1

    def close(self, timeout: float = 5.0) -> None:
        self.flush(timeout)
        self._stop = True
        self._wake.set()
        self._thread.join(timeout)
        with self._lock:
            # A worker still inside a delivery (a store slower than ``timeout``) no longer
            # touches the spools; its batch is spooled here too (if the delivery then
            # succeeds, the copy is sent again later and stored once: same ids).
            self._closed = True
        if self.pending() and self.overflow is not None:
            self._spool_rest()
        for disk in (self.spool, self.overflow):
            if disk is not None:
                disk.spool.close()

    # -- the worker --------------------------------------------------------------------

    def _take(self) -> list[Event]:
        out: list[Event] = []
        q = self._queue
        while q and len(out) < self.batch_size:
            out.append(q.popleft())
        if q:  # more than a batch was waiting: the rest goes next, without waiting
            self._first_at = 0.0
        return out

    def _deliver(self, events: list[Event], tenant: str | None = None) -> bool:
        try:
            self.intake.deliver(self.source, tenant or self.tenant, events)
        except Exception as exc:  # the store is down or closing: keep the batch, retry later
            self.failures += 1
            if not self.last_error:
                log.error("gateway events are waiting: the ledger failed: %s", exc)
            self.last_error = f"{type(exc).__name__}: {exc}"[:500]
            return False
        if self.last_error:
            log.info("gateway events flow again into the ledger")
        self.last_error = ""
        self.delivered += len(events)
        return True

    def _backlog(self) -> bool:
        """Deliver what failed before, oldest first; True when nothing is left behind."""
        while self._held:
            if not self._deliver(self._held[0]):
                return False
            self._held.popleft()
        return all(self._drain(d) for d in (self.spool, self.overflow) if d is not None)

    def _drain(self, disk: _Disk) -> bool:
        """Deliver ``disk``'s records in order; False when one fails or close() took over."""
        while True:
            with self._lock:  # emit() may be appending to ``overflow``
                rec = disk.spool.peek()
            if rec is None:
                return True
            events = [_decode_event.decode(raw) for raw in rec.events]
            # A record goes to the tenant it was written for: a slot adopted from another
            # gateway's process (a shared data directory) may hold another tenant's events.
            if not self._deliver(events, rec.tenant):
                return False
            with self._lock:
                if self._closed:  # left on disk: sent again (and stored once) later
                    return False
                disk.delivered(rec, len(events))

    def _keep(self, batch: list[Event]) -> None:
        with self._lock:
            if self._closed:  # close() spooled this batch
                return
            if self.spool is not None and self.spool.add(self.tenant, batch):
                return
        self._held.append(batch)

    def _gather(self) -> None:
        """Wait for a batch worth a commit: ``batch_size`` events, or the oldest queued one
        having waited ``flush_interval`` — an event that comes to an idle sink waited that
        long before too, so no event waits longer than it did — or a flush, or close. A
        commit costs about 0.5 ms of CPU besides each event's own ~45 µs: delivered as they
        trickle in (a few at a time while the previous commit runs), events cost the ledger
        two to three times what they cost in batches of 100 (benchmarks/RESULTS.md)."""
        if not self._queue:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
        while not (self._stop or self._flushing):
            with self._lock:
                n, first = len(self._queue), self._first_at
            left = first + self.flush_interval - time.monotonic()
            if n == 0 or n >= self.batch_size or left <= 0:
                return
            self._wake.wait(left)
            self._wake.clear()

    def _run(self) -> None:
        backoff = 0.0
        while True:
            if backoff:
                self._wake.wait(backoff)
            else:
                self._gather()
            self._wake.clear()
            # Order: what waits on disk (and a held batch) is older than the queue, so the
            # backlog goes first and a batch is taken from the queue only when the backlog is
            # empty. emit() may spill to ``overflow`` at any moment (it runs on another thread),
            # so the check that ``overflow`` is empty and the take are one step under _lock: a
            # spill after the check moves events newer than the batch, and the batch goes first.
            # If the batch then fails, it goes to ``spool`` (empty, as the backlog was), which
            # is delivered before ``overflow`` — so it stays ahead of anything spilled meanwhile.
            ok = self._backlog()
            batch: list[Event] = []
            if ok:
                with self._lock:
                    if self.overflow is None or self.overflow.spool.empty():
                        batch = self._take()
                        self._in_flight = len(batch)
                        self._flight = batch
                    else:  # spilled since _backlog looked: deliver that first
                        self._wake.set()
            if batch:
                if not self._deliver(batch):
                    self._keep(batch)
                    ok = False
                with self._lock:
                    self._in_flight = 0
                    self._flight = []
            backoff = 0.0 if ok else min(self.max_backoff, max(0.1, backoff * 2))
            with self._idle:
                self._idle.notify_all()
            if self._stop and (not self._queue or not ok):
                return

    def _spool_rest(self) -> None:
        """At close: a batch the worker still delivers goes to ``spool`` (delivered first:
        it is older than anything spilled), the queue (the newest events) after everything
        already in ``overflow``."""
        assert self.overflow is not None and self.spool is not None
        with self._lock:
            flight, self._flight = self._flight, []
            if flight:
                self.spool.add(self.tenant, flight)
            while self._queue:
                batch = self._take()
                if not self.overflow.add(self.tenant, batch):
                    self._queue.extendleft(reversed(batch))
                    log.error("the gateway's spool is full: %d events are lost at close", len(self._queue))
                    return


class ClientSink:
    """Events to a server through :class:`auditkeep.Client` (its queue, spool, retries)."""

    def __init__(self, url: str, api_key: str, tenant: str, source: str, *, spool_dir: str | Path | None = None,
                 tls_verify: bool | str = True) -> None:  # fmt: skip
        from auditkeep.client.client import Client

        self.client = Client(url, api_key, tenant, spool_dir=spool_dir, source=source, max_queue=100_000,
                             tls_verify=tls_verify)  # fmt: skip

    def emit(self, event: Event) -> None:
        if event.id is None:
            event.id = uuid7()
        try:
            self.client.record_many([event])
        except Exception as exc:  # an event that does not validate is a bug of the gateway
            log.error("gateway event not recorded: %s", exc)

    def flush(self, timeout: float | None = None) -> bool:
        return self.client.flush(timeout)

    def pending(self) -> int:
        st = self.client.stats()
        return st.queued + (1 if st.spool_bytes else 0)

    def close(self, timeout: float = 5.0) -> None:
        self.client.close(timeout)


__all__ = ["ClientSink", "EventSink", "LedgerSink"]
