"""The single writer: group commit of concurrent batches, and timed checkpoints.

Callers hand batches over and wait on a future; the writer thread (or a blocking caller
when no commit is under way) commits whatever is queued in one transaction (one fsync for many requests), resolves the futures only after
the commit is durable, and signs a checkpoint of each grown log at most once per interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from auditkeep.errors import ClosedError
from auditkeep.ledger.append import Pending, Sequencer
from auditkeep.store.base import Store

log = logging.getLogger("auditkeep.ledger")


class Writer:
    def __init__(
        self,
        store: Store,
        sequencer: Sequencer,
        max_group_events: int,
        on_commit: Callable[[set[int]], None] | None = None,
    ) -> None:
        self._store = store
        self._seq = sequencer
        self._max = max_group_events
        self._listeners: list[Callable[[set[int]], None]] = [on_commit] if on_commit is not None else []
        self._queue: deque[Pending] = deque()
        self._cv = threading.Condition()
        self._commit_lock = threading.Lock()
        self._stop = False
        self._idle_check = 0.0
        self._thread = threading.Thread(target=self._run, name="auditkeep-writer", daemon=True)
        self._thread.start()

    def add_listener(self, listener: Callable[[set[int]], None]) -> None:
        """Call ``listener`` with the tenant ids that grew, after each durable commit."""
        self._listeners.append(listener)

    def submit(self, p: Pending, inline: bool = False) -> None:
        """Queue ``p`` for the writer thread; with ``inline`` (a caller that is about to
        block on the result anyway) commit it in the calling thread when no commit is under
        way: two thread hand-offs fewer per batch, which on a loaded machine cost more than
        the commit (each waits for the scheduler)."""
        with self._cv:
            if self._stop:
                raise ClosedError("ledger is closed")
            self._queue.append(p)
            if not inline:
                self._cv.notify()
                return
        if not self._commit_lock.acquire(blocking=False):
            with self._cv:  # a commit is under way: the writer thread takes it from there
                self._cv.notify()
            return
        try:
            while not p.future.done():
                with self._cv:
                    group = self._take()
                if not group:
                    break
                self._commit(group)
        finally:
            self._commit_lock.release()
        with self._cv:
            if self._queue:
                self._cv.notify()

    def close(self, timeout: float = 30.0) -> None:
        """Finish what is queued, sign the final checkpoints, stop."""
        with self._cv:
            self._stop = True
            self._cv.notify()
        self._thread.join(timeout)

    def _take(self) -> list[Pending]:
        group: list[Pending] = []
        count = 0
        while self._queue and (not group or count + len(self._queue[0].events) <= self._max):
            p = self._queue.popleft()
            group.append(p)
            count += len(p.events)
        return group

    def _run(self) -> None:
        interval = self._seq.cfg.checkpoint_interval
        while True:
            with self._cv:
                if not self._queue and not self._stop:
                    self._cv.wait(timeout=min(interval / 2, 0.25))
            # Groups are taken and committed under the commit lock, which an inline caller
            # (see submit) holds while it commits.
            with self._commit_lock:
                with self._cv:
                    group = self._take()
                    stopping = self._stop and not self._queue
                if group:
                    self._commit(group)
            if stopping:
                self._checkpoint_all(force=True)
                return
            now = time.monotonic()
            if now - self._idle_check >= interval / 2:
                self._idle_check = now
                self._checkpoint_all(force=False)

    def _commit(self, group: list[Pending]) -> None:
        # One commit for every tenant in the group on SQLite (one fsync; there is one writer
        # anyway). On a shared database, one transaction per tenant, so a node never holds
        # other tenants' locks while it sequences: nodes then append to different tenants
        # in parallel.
        if self._store.dialect == "sqlite":
            self._commit_group(group)
            return
        by_tenant: dict[int, list[Pending]] = {}
        for p in group:
            by_tenant.setdefault(p.tenant_id, []).append(p)
        for part in by_tenant.values():
            self._commit_group(part)

    def _commit_group(self, group: list[Pending]) -> None:
        tenant_ids = sorted({p.tenant_id for p in group})
        try:
            with self._store.append_txn(tenant_ids) as txn:
                work = self._seq.run(txn, group)
        except BaseException as exc:  # the transaction rolled back: nothing of it is durable
            for p in group:
                p.receipts = None
                if not p.future.done():
                    p.future.set_exception(exc)
            self._seq.rollback(tenant_ids)
            if not isinstance(exc, Exception):
                raise
            log.warning("append failed: %s", exc)
            return
        self._seq.commit_done(work, group)
        if self._listeners:
            self.notify({tid for tid, w in work.items() if w.grew})

    def notify(self, grew: set[int], skip: Callable[[set[int]], None] | None = None) -> None:
        """Call the commit listeners (but ``skip``) with the tenant ids that grew."""
        for listener in self._listeners:
            if listener != skip:
                listener(grew)

    def _checkpoint_all(self, force: bool) -> None:
        """Sign a checkpoint for every log that grew past its last one (including appends made
        by other processes on the same store) once the interval has passed, or now if forced."""
        try:
            heads = self._store.heads()
        except Exception as exc:
            log.warning("checkpoint check failed: %s", exc)
            return
        now = self._seq.now_ns()
        due = [
            h.tenant_id
            for h in heads
            if h.size > h.checkpoint_size
            and (force or now - h.checkpoint_ns >= self._seq.cfg.checkpoint_interval * 1e9)
        ]
        for tid in due:
            try:
                self.sign_now(tid)
            except Exception as exc:
                log.warning("checkpoint failed for tenant %s: %s", tid, exc)

    def sign_now(self, tenant_id: int) -> None:
        """Sign the current head of a log (inside its append lock) unless already signed."""
        with self._store.append_txn([tenant_id]) as txn:
            head = txn.head(tenant_id)
            if head.size == 0 or head.size == head.checkpoint_size:
                return
            cp = self._seq.sign(head, self._seq.now_ns())
            head.checkpoint_size, head.checkpoint_ns = cp.size, cp.signed_ns
            txn.write(tenant_id, [], {}, head, cp)
