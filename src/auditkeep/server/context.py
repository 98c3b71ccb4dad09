"""What every route shares: the ledger, keys, guard, auditor, metrics, live-tail hub."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from auditkeep.alerts.service import AlertService
from auditkeep.archive.target import Target
from auditkeep.config import Settings
from auditkeep.forward.service import ForwardMetrics, ForwardService
from auditkeep.gateway.approvals import ApprovalBook
from auditkeep.ledger.ledger import Ledger
from auditkeep.log.cosignature import CosignatureVerifier
from auditkeep.model.event import Submitter
from auditkeep.server.audit import Auditor
from auditkeep.server.auth import Guard
from auditkeep.server.keys import KeyStore
from auditkeep.server.metrics import Metrics
from auditkeep.server.ratelimit import RateLimiter
from auditkeep.server.stream import Hub
from auditkeep.sources.quarantine import COLLECTION as QUARANTINE
from auditkeep.sources.service import SourceOptions, SourceService
from auditkeep.witness.submit import WitnessEndpoint, WitnessSubmitter


@dataclass(frozen=True)
class Options:
    """Server timings that are not settings of the log (``auditkeep serve`` flags)."""

    heartbeat: float = 15.0  # seconds between SSE heartbeats
    body_timeout: float = 30.0  # seconds a client may take to send a request body
    send_timeout: float = 30.0  # seconds a live-tail client may stall before it is dropped
    tile_audit_interval: float = 60.0  # tile reads are recorded at most this often per key
    key_cache: float = 1.0  # seconds a verified key is trusted before it is read again


class ServerContext:
    def __init__(self, settings: Settings, ledger: Ledger, options: Options | None = None) -> None:
        self.settings = settings
        self.ledger = ledger
        # the server's own events (alerts, approvals) name it as their submitter
        ledger.submitter = Submitter("server")
        self.options = options or Options()
        self.metrics = Metrics(ledger.tenants)
        self.keys = KeyStore(ledger.store, self.options.key_cache)
        self.guard = Guard(self.keys, RateLimiter(settings.rate_limit), self.metrics)
        self.auditor = Auditor(ledger, self.metrics.audit_result, self.options.tile_audit_interval)
        self.hub = Hub(self.keys.status)
        # approval requests of the gateways (/v1/approvals)
        self.approvals = ApprovalBook(ledger)
        # alerts, rules and (when run_in_server) the alert runner, started by the app's lifespan;
        # notifier settings are checked here so a bad [alerts] table stops `serve` before it listens
        self.alerts = AlertService(ledger, settings, validate=settings.alerts.run_in_server)
        # sources (webhook, OTLP, collectors, syslog) and their quarantine; started by the lifespan
        self.sources = SourceService(ledger, source_options(settings), self.metrics)
        self.metrics.watch_quarantine(lambda: _quarantine_counts(ledger))
        self.metrics.watch_syslog(self.sources.syslog_lost)
        # witnesses cosign each new checkpoint, asked by a thread started by the lifespan
        self.witnesses = witness_submitter(settings, ledger)
        if self.witnesses is not None:
            self.metrics.watch_witnesses(self.witnesses.progress, self.witnesses.witnessed)
        # [[forward]] targets, started by the lifespan under the store's forwarder lease; a bad
        # target (or a missing secret) stops `serve` here, before it listens
        self.forward = ForwardService(ledger, settings)
        self.metrics.registry.register(ForwardMetrics(self.forward))
        # the [archive] target of /v1/archive, opened on first use
        self.archive_target: Target | None = None


def witness_submitter(s: Settings, ledger: Ledger) -> WitnessSubmitter | None:
    if not s.witness:
        return None
    endpoints = [WitnessEndpoint(w.url, CosignatureVerifier.from_vkey(w.key)) for w in s.witness]
    return WitnessSubmitter(
        ledger.store, endpoints, timeout=s.witness_timeout, retry_max=s.witness_retry_max, quorum=s.witness_quorum
    )


def source_options(s: Settings) -> SourceOptions:
    return SourceOptions(
        kubernetes_stages="all" if s.kubernetes_stages == "all" else "final",
        kubernetes_stage_timeout=s.kubernetes_stage_timeout,
        syslog=tuple(s.syslog),
        syslog_tenant=s.syslog_tenant,
        syslog_tls_cert=s.syslog_tls_cert or s.tls_cert,
        syslog_tls_key=s.syslog_tls_key or s.tls_key,
        syslog_udp_buffer=s.syslog_udp_buffer,
        quarantine_max_bytes=s.quarantine_max_bytes,
    )


def _quarantine_counts(ledger: Ledger) -> dict[str, int]:
    from auditkeep.policy.types import SOURCES

    return {src: ledger.store.doc_count(QUARANTINE, status=src) for src in SOURCES if src != "api"}


def context(request: Request) -> ServerContext:
    ctx: ServerContext = request.app.state.ctx
    return ctx
