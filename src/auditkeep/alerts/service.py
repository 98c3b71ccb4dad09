"""The alert layer as the faces use it: the alert book, the rule catalog, and the runner
when this process runs one.

Only one runner should consume a store at a time: two would each evaluate every event
(their results are idempotent, but deliveries could go out twice). The runner holds the
store's ``alerts-runner`` lease — a file lock for the embedded store, an advisory lock on a
shared PostgreSQL database — so of several servers on one store exactly one evaluates
alerts; the others wait as standbys and take over when it stops or dies.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

from auditkeep.alerts.catalog import RuleCatalog
from auditkeep.alerts.config import build_notifiers, check_timings, retry_policy
from auditkeep.alerts.notify import Notifier
from auditkeep.alerts.runner import AlertRunner, Notifications
from auditkeep.alerts.state import AlertBook
from auditkeep.config import Settings
from auditkeep.errors import UserError
from auditkeep.ledger.ledger import Ledger
from auditkeep.store.base import Lease

log = logging.getLogger(__name__)

LEASE = "alerts-runner"
STANDBY_RETRY = 5.0  # seconds between a standby's attempts to take the lease


class RunnerBusy(UserError, RuntimeError):
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
        self._lease: Lease | None = None
        self._standby: threading.Thread | None = None
        self._standby_stop = threading.Event()
        self._notifiers: list[Notifier] | None = build_notifiers(settings.alerts, env) if validate else None
        # wakes a runner of another process (the child of `serve`) when none runs here
        self.remote_wake: Callable[[], None] | None = None

    def wake(self) -> None:
        """Have the runner look at the log now (a dead letter was requeued, say)."""
        if self.runner is not None:
            self.runner.wake()
        elif self.remote_wake is not None:
            self.remote_wake()

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
        lease = self.ledger.store.lease(LEASE)
        if lease is None:
            raise RunnerBusy("another alert runner holds this store (lease alerts-runner)")
        self._lease = lease

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

    def start_or_stand_by(self) -> None:
        """Start a runner now if the lease is free; otherwise wait for it in a thread and
        start one when it is (the holder stopped or its process died)."""
        try:
            self.start()
            return
        except RunnerBusy:
            log.info("another alert runner holds this store: standing by")
        self._standby_stop.clear()
        self._standby = threading.Thread(target=self._stand_by, name="auditkeep-alerts-standby", daemon=True)
        self._standby.start()

    def _stand_by(self) -> None:
        while not self._standby_stop.wait(STANDBY_RETRY):
            try:
                self.start()
            except RunnerBusy:
                continue
            except Exception as exc:  # the store is down: try again later
                log.warning("standby alert runner: %s", exc)
                continue
            log.info("alert runner took over the lease")
            return

    def stop(self) -> None:
        self._standby_stop.set()
        if self._standby is not None:
            self._standby.join(STANDBY_RETRY * 2)
            self._standby = None
        runner, self.runner = self.runner, None
        try:
            if runner is not None:
                runner.stop()
        finally:
            self._release()

    def _release(self) -> None:
        if self._lease is not None:
            self._lease.release()
            self._lease = None
