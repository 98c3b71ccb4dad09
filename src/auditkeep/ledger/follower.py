"""The search projection, followed outside the appending interpreter.

A projector thread in the process that appends competes with it for the interpreter lock:
measured with ``benchmarks/bench_headline.py``, ``record_many`` of 1,000-event batches ran
~40 % slower with the thread than without any projection. So an embedded ledger follows
its projection in a child process (:class:`FollowerProcess`, started on the first commit),
as ``auditkeep serve`` does; the projection lands in ``index.db``, a file of its own, so
the child never takes the log's write lock. A search still catches the projection up
before it answers, so results are exact whatever the child's progress.

The child exits when its standard input closes, so it never outlives its parent, even
after a ``kill -9``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path

import msgspec

from auditkeep.crypto.atrest import EncryptionSettings
from auditkeep.ledger.projector import CHUNK, Projector
from auditkeep.store.base import Store

log = logging.getLogger("auditkeep.ledger.follower")

POLL_SECONDS = 0.2  # while every log is projected to its head
BUSY_POLL_SECONDS = 0.05  # while entries wait for more to join them
STANDBY_SECONDS = 5.0
NICE = 10
# The follower projects a tenant once this many entries wait, once its head stopped moving
# (waiting would not make the transaction larger), or once the oldest has waited
# MAX_WAIT_SECONDS. Small transactions cost more an event (projector.CHUNK): at a high ingest
# rate the follower lets a full one gather (10,000 at 35,000 events/s: ~0.3 s) and, once the
# appends stop, projects what is left at the next busy poll; at a low rate the projection
# lags by at most MAX_WAIT_SECONDS more, and a search still catches it up before answering.
# After a projection the follower looks again at once: the head moved while it ran.
MIN_BATCH = CHUNK
MAX_WAIT_SECONDS = 0.4


def follow(store: Store, stop: threading.Event) -> None:
    """Project every log up to its head, again and again, until ``stop``.

    Several processes on one store would each do the same projection work (only one write
    of each row is kept), so the follower holds the store's ``projection`` lease; the
    others stand by and take over when its holder goes away."""
    projector = Projector(store, lambda: [(h.tenant_id, h.size) for h in store.heads()])
    lease = None
    waiting: dict[int, float] = {}  # tenant -> when entries were first seen waiting
    seen: dict[int, int] = {}  # tenant -> its head's size at the last look
    try:
        while not stop.is_set():
            if lease is None:
                try:
                    lease = store.lease("projection")
                except Exception as exc:  # the store is down: try again later
                    log.warning("projection lease: %s", exc)
                if lease is None:
                    stop.wait(STANDBY_SECONDS)
                    continue
            pause = POLL_SECONDS
            try:
                now = time.monotonic()
                for head in store.heads():
                    tid = head.tenant_id
                    moving = seen.get(tid) != head.size
                    seen[tid] = head.size
                    pending = head.size - store.projection_position(tid)
                    if pending <= 0:
                        waiting.pop(tid, None)
                        continue
                    since = waiting.setdefault(tid, now)
                    if pending < MIN_BATCH and moving and now - since < MAX_WAIT_SECONDS:
                        pause = min(pause, BUSY_POLL_SECONDS)
                        continue
                    projector.sync(tid, head.size)
                    waiting.pop(tid, None)
                    pause = 0.0
            except Exception as exc:  # keep following; the next round retries
                log.warning("projection failed: %s", exc)
                pause = POLL_SECONDS
            if pause:
                stop.wait(pause)
    finally:
        if lease is not None:
            lease.release()


class _Spec(msgspec.Struct):
    directory: str
    durability: str
    encryption: EncryptionSettings | None = None  # where the master key is (never the key)


class FollowerProcess:
    """A child process that follows the projection of the embedded store in ``directory``;
    :meth:`start` is cheap to call again (one child at most), :meth:`stop` waits for it."""

    def __init__(self, directory: Path, durability: str, encryption: EncryptionSettings | None = None) -> None:
        self._spec = msgspec.json.encode(_Spec(str(directory), durability, encryption)) + b"\n"
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopped = False

    def start(self) -> None:
        if self._proc is not None or self._stopped:
            return
        with self._lock:
            if self._proc is not None or self._stopped:
                return
            # The child imports this very package, wherever it was loaded from.
            root = str(Path(__file__).resolve().parents[2])
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-c", "from auditkeep.ledger.follower import main; main()"],
                    stdin=subprocess.PIPE,
                    env=env,
                )
                assert proc.stdin is not None
                proc.stdin.write(self._spec)
                proc.stdin.flush()
            except OSError as exc:  # searches still catch the projection up themselves
                log.warning("projection follower did not start: %s", exc)
                self._stopped = True
                return
            self._proc = proc
            # A ledger dropped without close() still ends its child.
            self._finalizer = weakref.finalize(self, end_child, proc, 10.0)

    def stop(self, timeout: float = 10.0) -> None:
        with self._lock:
            self._stopped = True
            proc, self._proc = self._proc, None
        if proc is not None:
            self._finalizer.detach()
            end_child(proc, timeout)


def end_child(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Close a child's standard input (the projection and alert children end when it
    closes) and wait for it, killing it after ``timeout`` seconds; True when it had to be
    killed."""
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return True
    return False


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which closes the pipe
    # Appends come first: on a busy machine the projection takes the CPU they leave (a
    # search catches it up anyway); on an idle one it runs on a core of its own.
    with contextlib.suppress(OSError):
        os.nice(NICE)
    from auditkeep.store.sqlite import SQLiteStore

    spec = msgspec.json.decode(sys.stdin.buffer.readline(), type=_Spec)
    store: Store = SQLiteStore(spec.directory, durability=spec.durability)
    if spec.encryption is not None:
        from auditkeep.ledger.atrest import at_rest

        store = at_rest(store, spec.encryption, Path(spec.directory))
    stop = threading.Event()
    worker = threading.Thread(target=follow, args=(store, stop), name="auditkeep-projection", daemon=True)
    worker.start()
    sys.stdin.buffer.read()  # returns at EOF: the parent closed the pipe or is gone
    stop.set()
    worker.join(30)
    store.close()

