"""Where a gateway's events go: the embedded ledger or a remote server, without ever making
the traffic the gateway carries wait for the log.

- :class:`LedgerSink` (``--data DIR`` / ``--db URL``): a thread hands batches to
  :class:`~auditkeep.sources.intake.Intake` under the gateway's source name, so the capture
  policy and redaction apply as for every source and an event the ledger refuses lands in
  the quarantine. While the store fails (PostgreSQL down), batches are kept — in the spool
  directory when one is given (fsync'd, survives a restart), in memory otherwise — and
  retried with backoff, oldest first. Events carry their ids from the start, so a batch
  sent twice is stored once.
- :class:`ClientSink` (``--server URL --key KEY``): :class:`auditkeep.Client` with its spool;
  the server applies the gateway source's policy (``?source=``).

:meth:`emit` is a ``deque.append``; it never blocks and never raises for delivery.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import Protocol

import msgspec

from auditkeep.client.spool import Spool
from auditkeep.ledger.ledger import Ledger
from auditkeep.model.event import Event
from auditkeep.model.ids import uuid7
from auditkeep.sources.intake import Intake
from auditkeep.sources.quarantine import Quarantine

log = logging.getLogger("auditkeep.gateway")

_encode = msgspec.json.Encoder()
_decode_event = msgspec.json.Decoder(Event)
SPOOL_MAX_BYTES = 1 << 30


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
    ) -> None:
        self.ledger = ledger
        self.tenant = tenant
        self.source = source
        self.intake = Intake(ledger, Quarantine(ledger.store))
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_backoff = max_backoff
        self.spool = Spool(spool_dir, SPOOL_MAX_BYTES) if spool_dir is not None else None
        self._queue: deque[Event] = deque()
        self._held: deque[list[Event]] = deque()  # failed batches, when there is no spool
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._stop = False
        self.delivered = 0
        self.failures = 0
        self.last_error = ""
        self._in_flight = 0
        self._thread = threading.Thread(target=self._run, name=f"auditkeep-{source}-sink", daemon=True)
        self._thread.start()

    def emit(self, event: Event) -> None:
        if event.id is None:
            event.id = uuid7()
        self._queue.append(event)
        if len(self._queue) >= self.batch_size:
            self._wake.set()

    def pending(self) -> int:
        held = sum(len(b) for b in self._held)
        spooled = 0 if self.spool is None or self.spool.empty() else 1
        return len(self._queue) + held + self._in_flight + spooled

    def flush(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        self._wake.set()
        with self._idle:
            while self.pending():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._wake.set()
                self._idle.wait(0.05 if left is None else min(0.05, left))
        return True

    def close(self, timeout: float = 5.0) -> None:
        self.flush(timeout)
        self._stop = True
        self._wake.set()
        self._thread.join(timeout)
        if self.pending() and self.spool is not None:
            self._spool_rest()
        if self.spool is not None:
            self.spool.close()

    # -- the worker --------------------------------------------------------------------

    def _take(self) -> list[Event]:
        out: list[Event] = []
        q = self._queue
        while q and len(out) < self.batch_size:
            out.append(q.popleft())
        return out

    def _deliver(self, events: list[Event]) -> bool:
        try:
            self.intake.deliver(self.source, self.tenant, events)
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
        if self.spool is not None:
            while (rec := self.spool.peek()) is not None:
                events = [_decode_event.decode(raw) for raw in rec.events]
                if not self._deliver(events):
                    return False
                self.spool.ack(rec)
        return True

    def _keep(self, batch: list[Event]) -> None:
        if self.spool is not None and self.spool.append(self.tenant, [_encode.encode(e) for e in batch]):
            return
        self._held.append(batch)

    def _run(self) -> None:
        backoff = 0.0
        while True:
            if backoff:
                self._wake.wait(backoff)
            elif not self._queue:
                self._wake.wait(self.flush_interval)
            self._wake.clear()
            batch = self._take()
            self._in_flight = len(batch)
            ok = self._backlog()
            if batch:
                if ok and self._deliver(batch):
                    pass
                else:
                    self._keep(batch)
                    ok = False
            self._in_flight = 0
            backoff = 0.0 if ok else min(self.max_backoff, max(0.1, backoff * 2))
            with self._idle:
                self._idle.notify_all()
            if self._stop and (not self._queue or not ok):
                return

    def _spool_rest(self) -> None:
        while self._queue:
            self._keep(self._take())


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
