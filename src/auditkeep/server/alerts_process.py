"""The alert runner of ``auditkeep serve``, run in a child process.

As a thread of the server, the runner (reading the log, evaluating rules, delivering) shared
the interpreter lock with the event loop and the writer, so every rule cost ingest time. The
child is what ``auditkeep alerts run`` is, with its own ledger on the same store (which is
built for several processes; the runner's lease keeps one runner per store), tied to the
server by two pipes:

- the server writes a byte to the child's standard input after each of its commits and when
  a dead letter is requeued, which wakes the runner at once (without it, the runner would
  look at the log every ``alerts.poll_interval``); the child stops when that pipe closes,
  so it never outlives the server, even after a ``kill -9``;
- the child writes one line of tenant ids to its standard output after each of its own
  commits (alert and state-change events), which the server hands to its commit listeners:
  live tails and forwarders see those events as soon as they would have before.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from typing import IO

import msgspec

from auditkeep.config import Settings
from auditkeep.ledger.follower import end_child
from auditkeep.ledger.ledger import Ledger
from auditkeep.model.event import Submitter

log = logging.getLogger("auditkeep.server.alerts")

_Start = tuple[Settings, str]
_tenant_ids = msgspec.json.Decoder(list[int])
STOP_SECONDS = 60.0  # the runner saves its cursors and finishes deliveries in this


class AlertProcess:
    """Starts, wakes and stops the child that runs the alert runner for ``ledger``'s store."""

    def __init__(self, settings: Settings, ledger: Ledger) -> None:
        self._ledger = ledger
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "auditkeep.server.alerts_process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        level = logging.getLevelName(logging.getLogger("auditkeep").getEffectiveLevel())
        self._proc.stdin.write(msgspec.json.encode((settings, level)) + b"\n")
        self._proc.stdin.flush()
        self._fd: int | None = self._proc.stdin.fileno()
        os.set_blocking(self._fd, False)  # a wake never blocks a commit; a full pipe is awake anyway
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._relay, args=(self._proc.stdout,), name="auditkeep-alerts-relay", daemon=True)
        self._reader.start()
        ledger.on_commit(self.committed)

    def committed(self, tenant_ids: set[int]) -> None:
        """The server committed (a ledger listener: runs in the committing thread)."""
        if tenant_ids:
            self.wake()

    def wake(self) -> None:
        with self._lock:
            if self._fd is None:
                return
            with contextlib.suppress(BlockingIOError, BrokenPipeError):
                os.write(self._fd, b"w")

    def _relay(self, out: IO[bytes]) -> None:
        """The child's commits, to the server's commit listeners."""
        for line in out:
            try:
                tids = _tenant_ids.decode(line)
            except msgspec.DecodeError:
                continue  # not ours (something printed): ignore it
            self._ledger.committed_elsewhere(set(tids), skip=self.committed)
        # EOF: the child ended; unless the server is stopping it, alerts have stopped too
        if self._fd is not None:
            log.warning("the alert runner process ended (exit code %s): no alerts are evaluated", self._proc.wait())

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        with self._lock:
            self._fd = None  # no wake is written after this, so the pipe can be closed
        if end_child(self._proc, timeout):
            log.warning("the alert runner did not stop within %.0f s: killed", timeout)
        self._reader.join(5)
        if self._proc.stdout is not None:
            self._proc.stdout.close()


def main() -> None:
    from auditkeep.alerts.service import AlertService
    from auditkeep.config import open_ledger
    from auditkeep.server.collector import settle as settle_collector

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the server, which closes the pipe
    settings, level = msgspec.json.decode(sys.stdin.buffer.readline(), type=_Start)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
    logger = logging.getLogger("auditkeep")
    logger.addHandler(handler)
    logger.setLevel(level)
    out = sys.stdout.buffer
    out_lock = threading.Lock()

    def committed(tenant_ids: set[int]) -> None:
        if tenant_ids:
            with out_lock, contextlib.suppress(OSError):
                out.write(msgspec.json.encode(sorted(tenant_ids)) + b"\n")
                out.flush()

    lg = open_ledger(settings, create=False, background=False)
    lg.submitter = Submitter("server")  # as the server's own events name it
    lg.on_commit(committed)
    svc = AlertService(lg, settings)
    settle_collector()  # as the server does: the runner decodes thousands of events a pass
    try:
        svc.start_or_stand_by()
        stdin = sys.stdin.buffer.fileno()
        while os.read(stdin, 4096):  # b"" at EOF: the server closed the pipe or is gone
            svc.wake()
    finally:
        svc.stop()
        lg.close()


if __name__ == "__main__":
    main()
