"""The single writer: group commit of concurrent batches, and timed checkpoints.

Callers hand batches over and wait on a future; the writer thread (or a blocking caller
when no commit is under way) commits whatever is queued in one transaction (one fsync for
many requests), resolves the futures only after the commit is durable, and signs a
checkpoint of each grown log at most once per interval.

On a store with :class:`StageReads` (PostgreSQL) the writer is a pipeline: the writer thread
sequences the next group (CPU) while a committer thread commits the previous one (the
database's work and its fsync), see ``ledger/staged.py``. Futures still resolve only after
their own commit; a group that fails, or finds under the lock a head other than the one it
was sequenced on, takes every later group of its log back to sequencing under the lock.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable

from auditkeep.errors import ClosedError, StoreUnavailable
from auditkeep.ledger.append import Pending, Sequencer
from auditkeep.ledger.grouping import Groups
from auditkeep.ledger.staged import Item, StagedTxn, chosen_ids
from auditkeep.store.base import Head, StageReads, Store

log = logging.getLogger("auditkeep.ledger")

# Parts handed to the committer and not yet committed, at most: one committing while the next
# waits, sequenced. More would only hold more callers' batches on a failure's path.
DEPTH = 2
# After its head moved under a staged group (another node appends to the same log, an
# erasure), a log's groups are sequenced under the lock for this long: staging them would
# mostly be work done twice.
COOLDOWN = 1.0
# The interpreter's switch interval with a pipeline (seconds). Each wait of the committer for
# the server (psycopg waits ~17 times in a commit, pipeline mode included) gives up the
# interpreter lock, and taking it back from the sequencing thread takes up to one interval:
# at CPython's 5 ms a commit's waits cost more than sequencing the next group (a 1,000-entry
# commit took 60 ms alone and 200-265 ms beside a busy thread; 110-190 ms at 1 ms).
SWITCH_INTERVAL = 0.001


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
        self._groups = Groups(max_group_events)
        self._listeners: list[Callable[[set[int]], None]] = [on_commit] if on_commit is not None else []
        self._queue: deque[Pending] = deque()
        self._cv = threading.Condition()
        self._commit_lock = threading.Lock()
        self._stop = False
        self._idle_check = 0.0
        # The pipeline (None: every group is sequenced and committed in one step).
        self._reads = store if isinstance(store, StageReads) and store.dialect != "sqlite" else None
        self._seq_lock = threading.Lock()  # the sequencer and _tips; taken after _commit_lock
        self._inflight: deque[Item] = deque()  # handed to the committer, in commit order (under _cv)
        self._staging = False  # the writer thread holds a group it is staging (under _cv)
        self._tips: dict[int, Head] = {}  # a log's head once every part handed over commits
        self._cooldown: dict[int, float] = {}
        self._committer: threading.Thread | None = None
        if self._reads is not None:
            if sys.getswitchinterval() > SWITCH_INTERVAL:  # process-wide; never raised
                sys.setswitchinterval(SWITCH_INTERVAL)
            self._committer = threading.Thread(target=self._commit_loop, name="auditkeep-committer", daemon=True)
            self._committer.start()
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
        p.thread = threading.get_ident()
        with self._cv:
            if self._stop:
                raise ClosedError("ledger is closed")
            self._queue.append(p)
            # notify_all: with a pipeline the committer waits on the same condition, and a
            # notify() that woke it left the writer thread asleep until its idle timeout
            # (0.25 s): every batch handed to an idle PostgreSQL writer waited that long.
            if not inline:
                self._cv.notify_all()
                return
        if not self._commit_lock.acquire(blocking=False):
            with self._cv:  # a commit is under way: the writer thread takes it from there
                self._cv.notify_all()
            return
        try:
            while not p.future.done():
                with self._cv:
                    # With parts in the pipeline, the writer thread takes this one after them.
                    group = [] if self._inflight or self._staging else self._take()
                if not group:
                    break
                with self._seq_lock:
                    self._commit(group)
        finally:
            self._commit_lock.release()
        with self._cv:
            if self._queue:
                self._cv.notify_all()

    def close(self, timeout: float = 30.0) -> None:
        """Finish what is queued, sign the final checkpoints, stop."""
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        self._thread.join(timeout)
        if self._committer is not None:
            self._committer.join(timeout)

    def _take(self) -> list[Pending]:
        return self._groups.take(self._queue)

    def _run(self) -> None:
        interval = self._seq.cfg.checkpoint_interval
        while True:
            if self._reads is not None:
                stopping = self._stage_next(min(interval / 2, 0.25))
            else:
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
                        with self._seq_lock:
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

    def _commit_group(self, group: list[Pending], item: Item | None = None) -> None:
        """Sequence and commit ``group`` in one transaction (under ``_seq_lock``); ``item``:
        the pipeline's part it is, still first in ``_inflight``."""
        tenant_ids = sorted({p.tenant_id for p in group})
        if not tenant_ids:
            return
        try:
            with self._store.append_txn(tenant_ids) as txn:
                work = self._seq.run(txn, group)
        except BaseException as exc:  # the transaction rolled back: nothing of it is durable
            self._fail(group, exc)
            self._seq.rollback(tenant_ids)
            for tid in tenant_ids:
                self._tips.pop(tid, None)
            if not isinstance(exc, Exception):
                raise
            log.warning("append failed: %s", exc)
            return
        self._seq.commit_done(work, group)
        if self._reads is not None:
            with self._cv:
                behind = {i.tenant_id for i in self._inflight if i is not item}
            for tid, w in work.items():
                if tid in behind:  # parts sequenced under the lock follow: the head is theirs
                    self._tips.pop(tid, None)
                else:
                    self._tips[tid] = w.head
        if self._listeners:
            self.notify({tid for tid, w in work.items() if w.grew})

    @staticmethod
    def _fail(group: list[Pending], exc: BaseException) -> None:
        for p in group:
            p.receipts = None
            if not p.future.done():
                p.future.set_exception(exc)

    # the pipeline (a store with StageReads) --------------------------------------------------

    def _stage_next(self, idle: float) -> bool:
        """Take the next group, sequence each tenant's part of it ahead of its commit where
        it can be, and hand the parts to the committer. True once stopped and drained."""
        with self._cv:
            if not self._ready():
                if self._stop and not self._queue:
                    while self._inflight:
                        self._cv.wait()
                    return True
                self._cv.wait(timeout=idle)  # (also while stopping, until a part commits)
                if not self._ready():
                    return False
            group = self._take()
            self._staging = True
        by_tenant: dict[int, list[Pending]] = {}
        for p in group:
            by_tenant.setdefault(p.tenant_id, []).append(p)
        try:
            for tid, part in by_tenant.items():
                # Handed over under the sequencer's lock: a failure's restage sees every part
                # sequenced on the state it forgets.
                with self._seq_lock:
                    item = self._stage(tid, part)
                    with self._cv:
                        self._inflight.append(item)
                        self._cv.notify_all()
                by_tenant[tid] = []
        except BaseException as exc:  # never leave callers waiting on a group nobody holds
            self._fail([p for part in by_tenant.values() for p in part], exc)
            if not isinstance(exc, Exception):
                raise
            log.exception("staging failed")
        finally:
            with self._cv:
                self._staging = False
                self._cv.notify_all()
        return False

    def _ready(self) -> bool:
        return bool(self._queue) and len(self._inflight) < DEPTH

    def _stage(self, tid: int, part: list[Pending]) -> Item:
        """``part`` sequenced on the head its log will have once the parts before it commit,
        or left for the committer to sequence under the lock when that head is not known or
        its chosen ids may be in a part not yet committed (under ``_seq_lock``)."""
        ids = chosen_ids(part)
        with self._cv:
            ahead = [i for i in self._inflight if i.tenant_id == tid]
        item = Item(tid, part, None, ids)
        head = self._tips.get(tid)
        if (
            (head is None and ahead)  # parts sequenced under the lock are ahead: head unknown
            or time.monotonic() < self._cooldown.get(tid, 0.0)
            or (ids and any(not ids.isdisjoint(i.ids) for i in ahead))
        ):
            self._tips.pop(tid, None)  # and the parts after this one wait for its head too
            return item
        assert self._reads is not None
        try:
            if head is None:
                # (A frontier the sequencer cached is a committed one here, and a log only
                # grows: if its size is this head's, so is its content.)
                head = self._reads.committed_head(tid)
                if head is None:
                    return item
            staged = StagedTxn(self._reads, {tid: head})
            work = self._seq.run(staged, part)
        except Exception as exc:  # a read failed: nothing was written; try under the lock
            self._seq.rollback([tid])
            self._tips.pop(tid, None)
            item.unstage()
            if isinstance(exc, StoreUnavailable):
                # The read already waited the pool's timeout for the database: answer now
                # (HTTP 503, retry later) rather than wait as long again under the lock.
                log.warning("sequencing ahead failed: %s", exc)
                self._fail(part, exc)
                return item
            log.warning("sequencing ahead failed, retrying under the lock: %s", exc)
            return item
        w = work.get(tid)
        if w is not None:
            self._seq.frontiers[tid] = w.frontier
            self._tips[tid] = dataclasses.replace(staged.writes[-1][3]) if staged.writes else w.head
        # Salts created while staging are stored already (StagedTxn.salts): cached now.
        self._seq.commit_done({}, [])
        item.staged = staged
        return item

    def _commit_loop(self) -> None:
        while True:
            with self._cv:
                while not self._inflight and not (self._stop and not self._queue and not self._staging):
                    self._cv.wait()
                if not self._inflight:
                    return
                item = self._inflight[0]
            try:
                with self._commit_lock:
                    self._commit_item(item)
            except BaseException as exc:  # never leave the callers waiting on a dead thread
                self._fail(item.group, exc)
                log.exception("committer failed")
            finally:
                with self._cv:
                    self._inflight.popleft()
                    self._cv.notify_all()

    def _commit_item(self, item: Item) -> None:
        staged = item.staged
        if staged is None:
            with self._seq_lock:
                self._commit_group([p for p in item.group if not p.future.done()], item)
            return
        try:
            with self._store.append_txn([item.tenant_id]) as txn:
                moved = not staged.holds(txn)
                if not moved:
                    staged.replay(txn)
        except BaseException as exc:  # rolled back: this part fails, later ones are sequenced again
            self._restage(item, exc)
            if not isinstance(exc, Exception):
                raise
            log.warning("append failed: %s", exc)
            return
        if moved:
            self._restage(item, None)
            return
        for p in item.group:
            if p.receipts is not None and not p.future.done():
                p.future.set_result(p.receipts)
        if self._listeners:
            self.notify(staged.grew())

    def _restage(self, item: Item, failed: BaseException | None) -> None:
        """``item`` did not commit as staged: forget the state sequenced on top of it and
        sequence the log's later parts again under the lock; ``item`` itself fails with
        ``failed``, or (its head moved) is sequenced again too."""
        tid = item.tenant_id
        with self._seq_lock:
            self._seq.rollback([tid])
            self._tips.pop(tid, None)
            with self._cv:
                for later in self._inflight:
                    if later is not item and later.tenant_id == tid and later.staged is not None:
                        later.unstage()
            if failed is not None:
                self._fail(item.group, failed)
                return
            self._cooldown[tid] = time.monotonic() + COOLDOWN
            item.unstage()
            self._commit_group([p for p in item.group if not p.future.done()], item)

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
