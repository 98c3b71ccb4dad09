"""The producer side shared by both clients: the bounded queue, its policy, the worker.

``record()`` lands in :meth:`Pipeline.put`: a ``deque.append`` and a length check. The
queue holds at most ``max_queue`` events; past that the ``on_full`` policy decides:

- ``"block"``: wait up to ``block_timeout`` seconds for room, then drop the event;
- ``"drop_newest"``: drop the new event at once.

A dropped event is counted and handed to ``on_drop``; nothing is raised into the caller.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

from auditkeep.client.errors import Undelivered
from auditkeep.client.spool import Spool
from auditkeep.client.transport import Answer, post_batch
from auditkeep.client.worker import Flush, Item, Worker, event_id, report

__all__ = ["OnFull", "Pipeline", "Stats"]

log = logging.getLogger("auditkeep.client")

OnFull = Literal["block", "drop_newest"]


@dataclass(frozen=True)
class Stats:
    """A snapshot of a client's delivery."""

    queued: int  # events in memory, not yet sent or spooled
    delivered: int  # events the server acknowledged (this process)
    spooled: int  # events written to the spool (this process)
    spool_bytes: int  # bytes in the spool not yet delivered (all processes' batches)
    dropped: int  # events given up by the full-queue policy or at close
    rejected: int  # events the server refused (see on_reject)
    retries: int  # failed delivery attempts
    corrupt_bytes: int  # damaged spool bytes skipped
    failing: bool  # the last attempt failed and a retry is pending
    last_error: str


class Pipeline:
    """Queue, policy, spool and worker of one client."""

    def __init__(
        self,
        http: httpx.Client,
        *,
        spool_dir: str | Path | None,
        spool_max_bytes: int,
        batch_size: int,
        max_batch_bytes: int,
        flush_interval: float,
        max_queue: int,
        on_full: OnFull,
        block_timeout: float,
        on_drop: Callable[[Undelivered], None] | None,
        on_reject: Callable[[Undelivered], None] | None,
        close_timeout: float,
        source: str | None = None,
    ) -> None:
        if on_full not in ("block", "drop_newest"):
            raise ValueError("on_full must be 'block' or 'drop_newest'")
        if batch_size < 1 or max_queue < 1:
            raise ValueError("batch_size and max_queue must be at least 1")
        self.queue: deque[Item] = deque()
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.on_full = on_full
        self.block_timeout = block_timeout
        self.on_drop = on_drop
        self.close_timeout = close_timeout
        self.dropped = 0
        self._drop_lock = threading.Lock()
        self.closed = False
        self._http = http
        self.spool = Spool(spool_dir, spool_max_bytes) if spool_dir is not None else None

        def send(tenant: str | None, events: list[bytes]) -> Answer:
            return post_batch(http, tenant, events, source)

        self.worker = Worker(
            self.queue,
            send,
            self.spool,
            batch_size=batch_size,
            max_batch_bytes=max_batch_bytes,
            flush_interval=flush_interval,
            on_reject=on_reject,
            on_drop=on_drop,
        )
        self.wake = self.worker.wake
        self.worker.start()
        # At interpreter exit, deliver (or spool) what is queued — also for a client the
        # application dropped without closing: its worker thread is still running anyway.
        atexit.register(self._at_exit)
        self.forked = False
        ref = weakref.ref(self)  # fork hooks cannot be unregistered: do not pin the client

        def in_child() -> None:
            me = ref()
            if me is not None:
                me.after_fork()

        os.register_at_fork(after_in_child=in_child)

    def _at_exit(self) -> None:
        self.close(self.close_timeout)

    def after_fork(self) -> None:
        """In a forked child: the worker thread, the connections and the spool's lock all
        belong to the parent. Stop here, loudly, rather than queue into nothing."""
        self.forked = True
        self.closed = True
        atexit.unregister(self._at_exit)

    # -- the caller's path --------------------------------------------------------------------

    def put(self, eid: str, item: Item) -> None:
        q = self.queue
        if len(q) >= self.max_queue and not self._room(eid, item):
            return
        q.append(item)
        if len(q) >= self.batch_size and not self.wake.is_set():
            self.wake.set()

    def _room(self, eid: str, item: Item) -> bool:
        if self.on_full == "block":
            deadline = time.monotonic() + self.block_timeout
            space = self.worker.space
            while len(self.queue) >= self.max_queue:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.drop(eid, item, "timeout")
                    return False
                space.clear()
                self.wake.set()
                # Short waits: a wake-up lost between the check and clear() costs 50 ms at most.
                space.wait(min(left, 0.05))
            return True
        self.drop(eid, item, "queue_full")
        return False

    def drop(self, eid: str, item: Item, reason: str) -> None:
        with self._drop_lock:
            self.dropped += 1
            first = self.dropped == 1
        if first:
            log.error("auditkeep queue is full: dropping events (%s)", reason)
        data = item if isinstance(item, bytes) else item[1] if isinstance(item, tuple) else b""
        report(self.on_drop, Undelivered(eid or event_id(data), data, reason))

    # -- flushing and closing ------------------------------------------------------------------

    def flush_marker(self) -> Flush:
        marker = Flush()
        if self.closed or not self.worker.is_alive():
            marker.resolve(not self.queue and (self.spool is None or self.spool.empty()))
            return marker
        self.queue.append(marker)
        self.wake.set()
        return marker

    def close(self, timeout: float) -> None:
        if self.closed:
            return
        self.closed = True
        atexit.unregister(self._at_exit)
        self.worker.stop(timeout)
        # A request in flight at the deadline is allowed to finish (bounded by the HTTP timeout).
        http_timeout = self._http.timeout.read or 30.0
        self.worker.join(timeout + http_timeout + 5.0)
        if self.worker.is_alive():
            log.error("auditkeep delivery worker did not stop; undelivered events may be lost")
            return
        # A record() racing with close() may have queued after the worker's last look.
        while self.queue:
            item = self.queue.popleft()
            if isinstance(item, Flush):
                item.resolve(False)
            else:
                self.drop("", item, "closed")
        if self.spool is not None:
            self.spool.close()

    def stats(self) -> Stats:
        w = self.worker
        spool = self.spool
        return Stats(
            queued=len(self.queue),
            delivered=w.delivered,
            spooled=spool.spooled_events if spool is not None else 0,
            spool_bytes=w.spool_bytes,
            dropped=self.dropped + w.lost_at_close,
            rejected=w.rejected,
            retries=w.retries,
            corrupt_bytes=spool.corrupt_bytes if spool is not None else 0,
            failing=w.failing,
            last_error=w.last_error,
        )
