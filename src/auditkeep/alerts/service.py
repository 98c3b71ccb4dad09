"""The alert layer as the faces use it: the alert book, the rule catalog, and the runner
when this process runs one.

Only one runner should consume a data directory at a time: two would each evaluate every
event (their results are idempotent, but deliveries queued again after a dead letter could
go out twice). A lock file in the data directory keeps a second runner on the same machine
from starting; nodes sharing a PostgreSQL database set ``alerts.run_in_server = false`` on
all but one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

from auditkeep.alerts.catalog import RuleCatalog
from auditkeep.alerts.config import build_notifiers, check_timings, retry_policy
from auditkeep.alerts.notify import Notifier
from auditkeep.alerts.runner import AlertRunner, Notifications
from auditkeep.alerts.state import AlertBook
from auditkeep.config import Settings
from auditkeep.ledger.ledger import Ledger

log = logging.getLogger(__name__)

LOCK_FILE = "alerts-runner.lock"


class RunnerBusy(RuntimeError):
    """Another alert runner holds this data directory."""


class AlertService:
    """``validate`` builds the notifiers at once, so a bad ``[alerts]`` table is reported
    before a server starts rather than when the first alert fires."""

    def __init__(
        self,
        ledger: Ledger,
        settings: Settings,
        *,
        env: Mapping[str, str] | None = None,
        validate: bool = False,
        clock: Callable[[], int] | None = None,
    ) -> None:
        check_timings(settings.alerts)
        self.ledger = ledger
        self.settings = settings
        self.env = env
        self.book = AlertBook(ledger)
        self.catalog = RuleCatalog(ledger.store, settings.rules_dir, settings.alerts.max_rule_bytes)
        self.runner: AlertRunner | None = None
        self._clock = clock
        self._lock: IO[bytes] | None = None
        self._notifiers: list[Notifier] | None = build_notifiers(settings.alerts, env) if validate else None

    def notifiers(self) -> list[Notifier]:
        if self._notifiers is None:
            self._notifiers = build_notifiers(self.settings.alerts, self.env)
        return self._notifiers

    def make_runner(self) -> AlertRunner:
        a = self.settings.alerts
        notifications = Notifications(self.notifiers(), self.book, retry_policy(a), a.default_notify)
        kwargs = {"clock": self._clock} if self._clock is not None else {}
        return AlertRunner(self.ledger, self.book, self.catalog, notifications, a, **kwargs)

    def _acquire(self) -> None:
        import fcntl

        directory = Path(self.settings.data)
        directory.mkdir(parents=True, exist_ok=True)
        fh = open(directory / LOCK_FILE, "ab")  # noqa: SIM115 - held until stop()
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            raise RunnerBusy(f"another alert runner is using {directory} (lock {LOCK_FILE})") from None
        fh.truncate(0)
        fh.write(f"{os.getpid()}\n".encode())
        fh.flush()
        self._lock = fh

    def start(self) -> AlertRunner:
        """Start a runner in a background thread; ``RunnerBusy`` when another one runs."""
        if self.runner is not None:
            return self.runner
        self._acquire()
        try:
            runner = self.make_runner()
            runner.start()
        except BaseException:
            self._release()
            raise
        self.runner = runner
        rules = self.catalog.file_rules
        errors = self.catalog.file_errors
        log.info("alert runner started: %d rules from %s, %d refused", len(rules), self.settings.rules_dir or "(no rules_dir)", len(errors))
        return runner

    def stop(self) -> None:
        runner, self.runner = self.runner, None
        try:
            if runner is not None:
                runner.stop()
        finally:
            self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the descriptor drops the lock
            self._lock = None
