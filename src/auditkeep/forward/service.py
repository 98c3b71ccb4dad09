"""The forwarder as ``auditkeep serve`` runs it: every ``[[forward]]`` target, under the
store's ``forwarder`` lease (a file lock for the embedded store, an advisory lock on
PostgreSQL), so of several servers on one store exactly one forwards; the others stand by
and take over when it stops or dies."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from auditkeep.config import ConfigError, Settings
from auditkeep.forward.forwarder import Target, TargetStats, check_targets
from auditkeep.forward.sinks import build_sink
from auditkeep.ledger.ledger import Ledger
from auditkeep.store.base import Lease

log = logging.getLogger(__name__)

LEASE = "forwarder"
STANDBY_RETRY = 5.0


class ForwardService:
    def __init__(self, ledger: Ledger, settings: Settings, *, validate: bool = True) -> None:
        self.ledger = ledger
        self.settings = settings.forward
        if validate:
            try:
                check_targets(self.settings)
                for t in self.settings:  # a missing secret or bad URL stops `serve` before it listens
                    if t.type != "file":
                        build_sink(t).close()
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        self.targets: list[Target] = []
        self._lease: Lease | None = None
        self._standby: threading.Thread | None = None
        self._standby_stop = threading.Event()
        self._lock = threading.Lock()
        ledger.on_commit(self._on_commit)

    def _on_commit(self, tenant_ids: set[int]) -> None:
        for t in self.targets:
            t.wake()

    def start(self) -> bool:
        """Start every target if the lease is free; False when another forwarder holds it."""
        with self._lock:
            if self.targets or not self.settings:
                return True
            lease = self.ledger.store.lease(LEASE)
            if lease is None:
                return False
            self._lease = lease
            self.targets = [Target(t, self.ledger) for t in self.settings]
            for target in self.targets:
                target.start()
            log.info("forwarder started: %s", ", ".join(t.settings.name for t in self.targets))
            return True

    def start_or_stand_by(self) -> None:
        if not self.settings or self.start():
            return
        log.info("another forwarder holds this store: standing by")
        self._standby_stop.clear()
        self._standby = threading.Thread(target=self._stand_by, name="auditkeep-forward-standby", daemon=True)
        self._standby.start()

    def _stand_by(self) -> None:
        while not self._standby_stop.wait(STANDBY_RETRY):
            try:
                if self.start():
                    log.info("forwarder took over the lease")
                    return
            except Exception as exc:  # the store is down: try again later
                log.warning("standby forwarder: %s", exc)

    def stop(self) -> None:
        self._standby_stop.set()
        if self._standby is not None:
            self._standby.join(STANDBY_RETRY * 2)
            self._standby = None
        with self._lock:
            targets, self.targets = self.targets, []
            for t in targets:
                t.stop()
            if self._lease is not None:
                self._lease.release()
                self._lease = None

    def stats(self) -> dict[str, TargetStats]:
        return {t.settings.name: t.stats for t in self.targets}


class ForwardMetrics(Collector):
    """``auditkeep_forward_lag``, ``auditkeep_forward_sent``, ``auditkeep_forward_failures`` per target."""

    def __init__(self, service: ForwardService) -> None:
        self.service = service

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        lag = GaugeMetricFamily("auditkeep_forward_lag", "Committed entries a forward target has not passed yet", labels=["target"])
        sent = CounterMetricFamily("auditkeep_forward_sent", "Events a forward target's receiver took", labels=["target"])
        failures = CounterMetricFamily("auditkeep_forward_failures", "Failed sends to a forward target", labels=["target"])
        for name, st in self.service.stats().items():
            lag.add_metric([name], st.lag)
            sent.add_metric([name], st.sent)
            failures.add_metric([name], st.failures)
        yield lag
        yield sent
        yield failures
