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

import logging
import signal
import subprocess
import sys
import threading

import msgspec

from auditkeep.config import Settings, open_store
from auditkeep.ledger.follower import POLL_SECONDS, STANDBY_SECONDS, end_child, follow
from auditkeep.store.base import Store

log = logging.getLogger("auditkeep.server.projection")


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
        end_child(self._proc, timeout)


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


__all__ = ["POLL_SECONDS", "STANDBY_SECONDS", "ProjectionProcess", "follow"]


if __name__ == "__main__":
    main()
