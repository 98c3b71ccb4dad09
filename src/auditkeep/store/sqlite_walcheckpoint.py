"""Copying the log's write-ahead log into ``log.db`` from a thread of its own.

With SQLite's automatic checkpoint, the commit that pushes the WAL past its threshold copies
the whole WAL into the database file (and fsyncs it) before it returns: measured on 1,000-event
batches, one commit in ~35 took 165-320 ms instead of ~14 ms, and every batch queued behind
it waited as long (the HTTP ingest latency's tail). Here the writer connection's automatic
checkpoint is only a far backstop; a passive checkpoint from another connection, at most once
per ``interval`` while commits happen, does the copying beside the writer, which goes on
appending to the WAL meanwhile. Durability is the WAL's (fsynced at each commit); a kill at any
point of a checkpoint loses nothing (SQLite's own guarantee).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("auditkeep.store")

#: The writer connection's own automatic checkpoint (pages): reached only if the thread
#: cannot keep up (a reader holding an old snapshot for long), ~400 MB of WAL.
BACKSTOP_PAGES = 100_000
#: Seconds between passive checkpoints while commits happen.
INTERVAL = 1.0


class WalCheckpointer:
    """Passive checkpoints of ``path``'s WAL, from a thread started at the first commit."""

    def __init__(self, path: Path, synchronous: str, interval: float = INTERVAL) -> None:
        self._path = path
        self._synchronous = synchronous
        self._interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None

    def committed(self) -> None:
        """A commit added frames to the WAL (cheap: called after every commit)."""
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._stop.is_set():
                    self._thread = threading.Thread(target=self._run, name="auditkeep-wal-checkpoint", daemon=True)
                    self._thread.start()
        self._wake.set()

    def checkpoint(self) -> tuple[int, int, int]:
        """One passive checkpoint now: (busy, frames in the WAL, frames copied), as SQLite
        reports them. Never waits for readers or the writer: it copies what it can."""
        with self._lock:
            if self._conn is None:
                conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
                # fsync the WAL before copying and the database file after, as the writer would
                conn.execute(f"PRAGMA synchronous={self._synchronous}")
                self._conn = conn
            row = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No checkpoint of this thread runs meanwhile: the erasure's TRUNCATE checkpoint
        would find SQLite's checkpoint lock taken and leave the WAL, with the erased
        plaintext in its frames, as it is."""
        with self._lock:
            yield

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            if self._stop.is_set():
                return
            self._wake.clear()
            try:
                self.checkpoint()
            except sqlite3.Error as exc:  # the writer's backstop still bounds the WAL
                log.warning("WAL checkpoint of %s failed: %s", self._path, exc)
            # frames committed meanwhile are copied together at the next pass
            self._stop.wait(self._interval)

    def close(self) -> None:
        """Stop the thread (a checkpoint under way finishes first) and close its connection."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join()
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
                self._conn = None
