"""Prometheus metrics of one server (its own registry, so several apps can share a process)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from auditkeep.store.base import Head

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _CheckpointAge(Collector):
    """Seconds since each tenant's latest signed checkpoint, read at scrape time."""

    def __init__(self, heads: Callable[[], list[Head]]) -> None:
        self._heads = heads

    def collect(self) -> Iterator[GaugeMetricFamily]:
        age = GaugeMetricFamily(
            "auditkeep_checkpoint_age_seconds", "Seconds since the latest signed checkpoint", labels=["tenant"]
        )
        behind = GaugeMetricFamily(
            "auditkeep_log_unsigned_entries", "Entries appended since the latest checkpoint", labels=["tenant"]
        )
        try:
            heads = self._heads()
        except Exception:  # the store may be down; /readyz reports that
            heads = []
        now = time.time_ns()
        for h in heads:
            if h.checkpoint_ns:
                age.add_metric([h.tenant], (now - h.checkpoint_ns) / 1e9)
            behind.add_metric([h.tenant], float(h.size - h.checkpoint_size))
        yield age
        yield behind


class _QuarantineSize(Collector):
    def __init__(self, counts: Callable[[], dict[str, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        g = GaugeMetricFamily("auditkeep_quarantine_records", "Records held in quarantine, by source", labels=["source"])
        try:
            counts = self._counts()
        except Exception:  # the store may be down; /readyz reports that
            counts = {}
        for source, n in sorted(counts.items()):
            g.add_metric([source], float(n))
        yield g


class _SyslogLost(Collector):
    """Syslog messages lost, by cause, read from the listeners at scrape time (each loss
    also becomes a ``source.dropped`` event within a second)."""

    def __init__(self, lost: Callable[[], dict[str, int]]) -> None:
        self._lost = lost

    def collect(self) -> Iterator[CounterMetricFamily]:
        c = CounterMetricFamily(
            "auditkeep_syslog_lost_messages",
            "Syslog messages lost: kernel (UDP receive buffer full), queue (receive queue full), shutdown",
            labels=["cause"],
        )
        for cause, n in sorted(self._lost().items()):
            c.add_metric([cause], float(n))
        yield c


class _WitnessProgress(Collector):
    """Per witness and tenant: the size it cosigned last and how far the log's newest
    checkpoint is ahead of it, read from the witness submitter at scrape time."""

    def __init__(
        self, progress: Callable[[], list[tuple[str, str, Any]]], witnessed: Callable[[], dict[str, int]]
    ) -> None:
        self._progress = progress
        self._witnessed = witnessed

    def collect(self) -> Iterator[GaugeMetricFamily]:
        quorum = GaugeMetricFamily(
            "auditkeep_witnessed_size", "Size of the newest checkpoint with witness_quorum cosignatures", labels=["tenant"]
        )
        for tenant, n in sorted(self._witnessed().items()):
            quorum.add_metric([tenant], float(n))
        yield quorum
        labels = ["witness", "tenant"]
        size = GaugeMetricFamily("auditkeep_witness_cosigned_size", "Tree size the witness cosigned last", labels=labels)
        lag = GaugeMetricFamily(
            "auditkeep_witness_lag_entries", "Entries of the newest checkpoint the witness has not cosigned yet", labels=labels
        )
        failures = GaugeMetricFamily(
            "auditkeep_witness_failures", "Failed submissions to the witness since its last cosignature", labels=labels
        )
        for witness, tenant, p in self._progress():
            cosigned = p.cosigned_size or 0
            size.add_metric([witness, tenant], float(cosigned))
            lag.add_metric([witness, tenant], float(max(0, p.checkpoint_size - cosigned)))
            failures.add_metric([witness, tenant], float(p.failures))
        yield size
        yield lag
        yield failures


class Metrics:
    def __init__(self, heads: Callable[[], list[Head]]) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "auditkeep_http_requests", "HTTP requests by route and status", ["route", "method", "status"], registry=r
        )
        self.request_seconds = Histogram(
            "auditkeep_http_request_seconds", "HTTP request latency", ["route"], buckets=_LATENCY_BUCKETS, registry=r
        )
        self.ingest_events = Counter("auditkeep_ingest_events", "Events accepted over HTTP", ["tenant"], registry=r)
        self.ingest_requests = Counter("auditkeep_ingest_requests", "Ingest requests accepted", registry=r)
        self.batch_size = Histogram(
            "auditkeep_ingest_batch_events", "Events per ingest request", buckets=_BATCH_BUCKETS, registry=r
        )
        self.commit_seconds = Histogram(
            "auditkeep_commit_seconds",
            "Time from submit to durable commit of an ingest batch",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.rejected = Counter("auditkeep_rejected_events", "Events rejected, by reason", ["reason"], registry=r)
        self.auth_failures = Counter("auditkeep_auth_failures", "Refused requests, by reason", ["reason"], registry=r)
        self.rate_limited = Counter("auditkeep_rate_limited", "Requests refused by the rate limit", registry=r)
        self.sse_clients = Gauge("auditkeep_sse_clients", "Open live-tail streams", registry=r)
        self.sse_events = Counter("auditkeep_sse_events", "Events sent on live-tail streams", registry=r)
        self.sse_dropped = Counter(
            "auditkeep_sse_disconnects", "Live-tail clients disconnected by the server, by reason", ["reason"], registry=r
        )
        self.audit_events = Counter(
            "auditkeep_audit_events", "Audit-of-the-audit events, by outcome", ["action", "result"], registry=r
        )
        self.errors = Counter("auditkeep_internal_errors", "Unexpected exceptions turned into 500", registry=r)
        # sources (issue 5): what each source delivered, refused, lost; what the policy dropped
        self.source_events = Counter(
            "auditkeep_source_events", "Events appended from a source, by source and tenant", ["source", "tenant"], registry=r
        )
        self.quarantined = Counter(
            "auditkeep_quarantined_records", "Records put in quarantine, by source and reason class", ["source", "reason"],
            registry=r,
        )
        self.lost_records = Counter(
            "auditkeep_source_lost_records", "Records a source lost (queue full, kernel backlog), by source", ["source"],
            registry=r,
        )
        self.policy_drops = Counter(
            "auditkeep_policy_dropped_events", "Events the capture policy dropped (level none), by source", ["source"],
            registry=r,
        )
        r.register(_CheckpointAge(heads))

    # IntakeObserver (auditkeep.sources.intake)
    def source_accepted(self, source: str, tenant: str, count: int) -> None:
        self.source_events.labels(source, tenant).inc(count)

    def source_quarantined(self, source: str, reason_class: str, count: int) -> None:
        self.quarantined.labels(source, reason_class).inc(count)

    def source_lost(self, source: str, count: int) -> None:
        self.lost_records.labels(source).inc(count)

    def policy_dropped(self, source: str, count: int) -> None:
        self.policy_drops.labels(source).inc(count)

    def watch_quarantine(self, counts: Callable[[], dict[str, int]]) -> None:
        """Report the records held in quarantine, by source, at scrape time."""
        self.registry.register(_QuarantineSize(counts))

    def watch_syslog(self, lost: Callable[[], dict[str, int]]) -> None:
        """Report the syslog listeners' losses, by cause, at scrape time."""
        self.registry.register(_SyslogLost(lost))

    def watch_witnesses(
        self, progress: Callable[[], list[tuple[str, str, Any]]], witnessed: Callable[[], dict[str, int]]
    ) -> None:
        """Report each witness's cosigned size and lag, by tenant, and the size witnessed by
        the quorum, at scrape time."""
        self.registry.register(_WitnessProgress(progress, witnessed))

    def audit_result(self, action: str, ok: bool) -> None:
        self.audit_events.labels(action, "ok" if ok else "failed").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
