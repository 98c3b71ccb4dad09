"""Retention in the background of ``auditkeep serve``: one runner per store, by the store lease.

Every ``interval`` seconds the worker takes the ``retention`` lease (a file lock on SQLite, an
advisory lock on PostgreSQL); a node that cannot get it skips that round, so several nodes on
one database never run retention at once. A run stops between chunks when the server stops
and the next one resumes where it was.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from auditkeep.ledger.ledger import Ledger
from auditkeep.retention.policy import Policy
from auditkeep.retention.run import run_retention
from auditkeep.store.base import Head

log = logging.getLogger("auditkeep.retention")
LEASE = "retention"


class RetentionWorker:
    def __init__(
        self, ledger: Ledger, policies: list[Policy], interval: float,
        archive: Callable[[Head], object] | None = None,
    ) -> None:
        self.ledger = ledger
        self.archive = archive  # archives a tenant's ready entries before its deletions
        self.policies = policies
        self.interval = interval
        self.runs = 0  # rounds in which this worker held the lease and ran
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not any(p.delete_after_ns is not None or p.archive_after_ns is not None for p in self.policies):
            return  # nothing could ever be due
        self._thread = threading.Thread(target=self._loop, name="auditkeep-retention", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)

    def run_once(self) -> bool:
        """One round, if this process can take the lease; True when it ran."""
        lease = self.ledger.store.lease(LEASE)
        if lease is None:
            return False
        try:
            plans = run_retention(self.ledger, self.policies, stop=self._stop.is_set, archive=self.archive)
        finally:
            lease.release()
        self.runs += 1
        done = sum(p.due for p in plans)
        if done:
            log.info("retention expired %d events in %d tenant logs", done, sum(1 for p in plans if p.due))
        return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception as exc:  # keep going: the next round retries, and resumes
                log.warning("retention run failed: %s", exc)
            self._stop.wait(self.interval)
