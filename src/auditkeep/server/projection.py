"""The query projection, followed in a child process of the server.

In the server's own process the projector thread competes for the GIL with the event loop
and the writer, and every I/O wait of theirs then costs a GIL hand-off (measured with
``benchmarks/bench_http.py``: p99 of a 100-event ingest under half load fell from ~240 ms
to ~30 ms once the projection moved out). The store is built for several processes (the
projection cursor moves atomically and skips rows another process already wrote), and
``Ledger.search`` still catches the projection up before it answers, so results stay exact.

The child exits when its standard input closes, so it never outlives the server, even
after a ``kill -9``.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import sys
import threading

import msgspec

from auditkeep.config import Settings, open_store
from auditkeep.ledger.projector import Projector
from auditkeep.store.base import Store

log = logging.getLogger("auditkeep.server.projection")

POLL_SECONDS = 0.2


STANDBY_SECONDS = 5.0


def follow(store: Store, stop: threading.Event) -> None:
    """Project every log up to its head, again and again, until ``stop``.

    Several servers on one database would each do the same projection work (only one
    write of each row is kept), so the follower holds the store's ``projection`` lease;
    the others stand by and take over when its holder goes away."""
    projector = Projector(store, lambda: [(h.tenant_id, h.size) for h in store.heads()])
    lease = None
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
            try:
                for head in store.heads():
                    projector.sync(head.tenant_id, head.size)
            except Exception as exc:  # keep following; the next round retries
                log.warning("projection failed: %s", exc)
            stop.wait(POLL_SECONDS)
    finally:
        if lease is not None:
            lease.release()


class ProjectionProcess:
    """Starts and stops the child that follows the projection."""

    def __init__(self, settings: Settings) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "auditkeep.server.projection"],
            stdin=subprocess.PIPE,
        )
        assert self._proc.stdin is not None
        self._proc.stdin.write(msgspec.json.encode(settings) + b"\n")
        self._proc.stdin.flush()

    def stop(self, timeout: float = 10.0) -> None:
        if self._proc.stdin is not None:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the server, which closes the pipe
    settings = msgspec.json.decode(sys.stdin.buffer.readline(), type=Settings)
    store: Store = open_store(settings, create=False)
    stop = threading.Event()
    worker = threading.Thread(target=follow, args=(store, stop), name="auditkeep-projection", daemon=True)
    worker.start()
    sys.stdin.buffer.read()  # returns at EOF: the server closed the pipe or is gone
    stop.set()
    worker.join(30)
    store.close()


if __name__ == "__main__":
    main()
