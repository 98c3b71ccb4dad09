"""The delivery worker: one thread that turns the in-memory queue into requests.

Order of work, each time round:

1. While the server is failing, or the spool already holds older batches, queued events
   are written to the spool (one fsync'd record per batch), so they survive a crash and
   stay behind what was spooled before them.
2. While a retry is not due, sleep (waking up to spool new events).
3. Otherwise send one batch: the one that failed last time, else the oldest spooled one,
   else a fresh one from memory (by size, or after ``flush_interval``).

Nothing here raises into the application: failures become retries, spool records, or
reports through the callbacks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from auditkeep.client.backoff import Backoff
from auditkeep.client.delivery import Send, deliver
from auditkeep.client.errors import Undelivered
from auditkeep.client.spool import Position, Spool, SpoolRecord
from auditkeep.client.transport import Kind

__all__ = ["Flush", "Item", "Worker", "event_id"]

log = logging.getLogger("auditkeep.client")

STUCK_DELAY = 10.0  # seconds between attempts while the set-up is wrong (bad key, wrong URL)


class Flush:
    """A marker in the queue: resolved once everything queued before it is delivered."""

    __slots__ = ("done", "ok")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.ok = False

    def resolve(self, ok: bool) -> None:
        self.ok = ok
        self.done.set()


Item = bytes | tuple[str, bytes] | Flush
"""A queued event (its JSON; with its tenant when not the client's) or a flush marker."""


class _Id(msgspec.Struct):
    id: str = ""


_read_id = msgspec.json.Decoder(_Id).decode


def event_id(data: bytes) -> str:
    try:
        return _read_id(data).id
    except msgspec.DecodeError:
        return ""


def report(callback: Callable[[Undelivered], None] | None, what: Undelivered) -> None:
    """Tell the application about an event that will not arrive; its errors stay here."""
    if callback is None:
        return
    try:
        callback(what)
    except Exception:
        log.exception("auditkeep callback failed for event %s", what.id)


@dataclass
class _Work:
    tenant: str | None
    events: list[bytes]
    markers: list[Flush] = field(default_factory=list)
    record: SpoolRecord | None = None  # acknowledged in the spool once delivered


class Worker(threading.Thread):
    """Delivers queued events; see the module docstring."""

    def __init__(
        self,
        queue: deque[Item],
        send: Send,
        spool: Spool | None,
        *,
        batch_size: int,
        max_batch_bytes: int,
        flush_interval: float,
        on_reject: Callable[[Undelivered], None] | None,
        on_drop: Callable[[Undelivered], None] | None,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(name="auditkeep-delivery", daemon=True)
        self.queue = queue
        self.send = send
        self.spool = spool
        self.batch_size = batch_size
        self.max_batch_bytes = max_batch_bytes
        self.flush_interval = flush_interval
        self.on_reject = on_reject
        self.on_drop = on_drop
        self.backoff = backoff or Backoff()
        self.wake = threading.Event()  # new work, a flush, or close
        self.space = threading.Event()  # the queue shrank (for blocked producers)
        self._deadline: float | None = None  # set by close()
        self._inflight: _Work | None = None
        self._retry_at = 0.0
        self._parked: list[tuple[Position | None, Flush]] = []
        # Counters, written by this thread only.
        self.delivered = 0
        self.rejected = 0
        self.retries = 0
        self.lost_at_close = 0
        self.spool_bytes = spool.pending_bytes if spool is not None else 0
        self.last_error = ""
        self._outage = False  # failing since the last success

    # -- control from other threads ------------------------------------------------------------

    def stop(self, timeout: float) -> None:
        """Deliver what is queued for up to ``timeout`` seconds, spool the rest, then end."""
        self._deadline = time.monotonic() + max(0.0, timeout)
        self.wake.set()

    @property
    def failing(self) -> bool:
        return self._retry_at > time.monotonic()

    # -- the loop ------------------------------------------------------------------------------

    def run(self) -> None:
        while True:
            try:
                if self._step():
                    break
            except Exception:
                # A bug must not end delivery for good: note it and carry on after a pause.
                log.exception("auditkeep delivery worker error")
                self._retry_at = time.monotonic() + self.backoff.next_delay()
                if self._deadline is not None:
                    break
        try:
            self._finish()
        except Exception:
            log.exception("auditkeep delivery worker error while closing")

    def _step(self) -> bool:
        """One round; True when the worker is done."""
        now = time.monotonic()
        closing = self._deadline is not None
        failing = self._retry_at > now
        spool = self.spool
        if spool is not None and (failing or self._inflight is not None or not spool.empty()):
            self._to_spool()
        self._settle()
        if closing:
            if self._inflight is None and not self.queue:
                return True
            assert self._deadline is not None
            if now >= self._deadline:
                if spool is not None:
                    self._to_spool()
                return True
        if failing:
            wait = self._retry_at - now
            if closing:
                assert self._deadline is not None
                wait = min(wait, max(0.0, self._deadline - now))
            self.wake.wait(min(wait, self.flush_interval))
            self.wake.clear()
            return False
        work = self._next(closing)
        if work is not None:
            self._send(work)
        if spool is not None:
            self.spool_bytes = spool.pending_bytes
        return False

    def _next(self, closing: bool) -> _Work | None:
        if self._inflight is not None:
            return self._inflight
        if self.spool is not None:
            rec = self.spool.peek()
            if rec is not None:
                return _Work(rec.tenant, rec.events, [], rec)
        if not closing and len(self.queue) < self.batch_size:
            self.wake.wait(self.flush_interval)
            self.wake.clear()
        work = self._take()
        if work is None:
            return None
        if not work.events:
            self._park(work.markers)
            return None
        return work

    def _take(self) -> _Work | None:
        """The next batch from memory: one tenant, up to the size limits, up to a marker."""
        q = self.queue
        if not q:
            return None
        events: list[bytes] = []
        markers: list[Flush] = []
        tenant: str | None = None
        size = 0
        while q:
            item = q[0]
            if isinstance(item, Flush):
                q.popleft()
                markers.append(item)
                break
            t: str | None
            if isinstance(item, bytes):
                t, data = None, item
            else:
                t, data = item
            if events and (t != tenant or len(events) >= self.batch_size or size + len(data) > self.max_batch_bytes):
                break
            q.popleft()
            events.append(data)
            tenant = t
            size += len(data) + 1
        self.space.set()
        return _Work(tenant, events, markers)

    # -- sending -------------------------------------------------------------------------------

    def _send(self, work: _Work) -> None:
        out = deliver(self.send, work.tenant, work.events)
        self.delivered += out.delivered
        for data, answer in out.refused:
            self.rejected += 1
            eid = event_id(data)
            log.error("auditkeep server refused event %s (HTTP %s): %s", eid, answer.status, answer.detail)
            report(self.on_reject, Undelivered(eid, data, "rejected", answer.status, answer.detail))
        failure = out.failure
        if failure is None:
            if self._outage:
                log.info("auditkeep delivery resumed after %d failed attempts", self.backoff.attempt)
                self._outage = False
            self.backoff.reset()
            self._retry_at = 0.0
            self._inflight = None
            if work.record is not None and self.spool is not None:
                self.spool.ack(work.record)
            self._park(work.markers)
            return
        self.retries += 1
        delay = self.backoff.next_delay(failure.retry_after)
        what = f"HTTP {failure.status}" if failure.status else "network error"
        self.last_error = f"{what}: {failure.detail}".strip()
        # One line when an outage starts, not one per retry; the stats keep counting.
        quiet = logging.DEBUG if self._outage else None
        if failure.kind is Kind.STUCK:
            delay = max(delay, STUCK_DELAY)
            log.log(quiet or logging.ERROR, "auditkeep cannot deliver (%s); keeping events and retrying", self.last_error)
        else:
            log.log(quiet or logging.WARNING, "auditkeep delivery failed (%s); retrying in %.1fs", self.last_error, delay)
        self._outage = True
        self._retry_at = time.monotonic() + delay
        if work.record is not None and len(out.remaining) == len(work.events):
            self._inflight = None  # the spool record itself is retried
        else:
            self._inflight = _Work(work.tenant, out.remaining, work.markers, work.record)

    # -- spooling ------------------------------------------------------------------------------

    def _to_spool(self) -> None:
        """Write the failed batch and everything queued to the spool, while it has room."""
        spool = self.spool
        assert spool is not None
        w = self._inflight
        if w is not None and w.record is None:
            if not spool.append(w.tenant, w.events):
                return  # full: keep it in memory, and let the queue push back
            self._inflight = None
            self._park(w.markers)
        while self.queue:
            work = self._take()
            if work is None:
                break
            if work.events and not spool.append(work.tenant, work.events):
                self._untake(work)
                break
            self._park(work.markers)
        self.spool_bytes = spool.pending_bytes

    def _untake(self, work: _Work) -> None:
        """Put a batch back at the head of the queue, as it was."""
        t = work.tenant
        items: list[Item] = [d if t is None else (t, d) for d in work.events]
        items.extend(work.markers)
        self.queue.extendleft(reversed(items))

    # -- flush markers -------------------------------------------------------------------------

    def _park(self, markers: list[Flush]) -> None:
        """Markers whose earlier events are all delivered or on disk: wait for the spool."""
        if not markers:
            return
        if self._inflight is not None and self._inflight.record is None:
            self._inflight.markers.extend(markers)
            return
        pos = self.spool.tail() if self.spool is not None else None
        self._parked.extend((pos, m) for m in markers)
        self._settle()

    def _settle(self) -> None:
        if not self._parked:
            return
        spool = self.spool
        waiting: list[tuple[Position | None, Flush]] = []
        for pos, m in self._parked:
            if pos is None or spool is None or spool.reached(pos):
                m.resolve(True)
            else:
                waiting.append((pos, m))
        self._parked = waiting

    def _finish(self) -> None:
        """At close: account for what could not be delivered or spooled."""
        self._settle()
        for _, m in self._parked:
            m.resolve(False)
        self._parked = []
        leftovers: list[bytes] = []
        if self._inflight is not None and self._inflight.record is None:
            leftovers.extend(self._inflight.events)
            for m in self._inflight.markers:
                m.resolve(False)
        self._inflight = None
        spool_done = self.spool is None or self.spool.empty()
        while self.queue:
            item = self.queue.popleft()
            if isinstance(item, Flush):
                item.resolve(spool_done and not leftovers)
            else:
                leftovers.append(item if isinstance(item, bytes) else item[1])
        self.space.set()
        for data in leftovers:
            self.lost_at_close += 1
            report(self.on_drop, Undelivered(event_id(data), data, "closed"))
        if leftovers:
            log.error("auditkeep closed with %d undelivered events and nowhere to keep them", len(leftovers))
        if self.spool is not None:
            self.spool_bytes = self.spool.pending_bytes
