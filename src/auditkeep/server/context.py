"""What every route shares: the ledger, keys, guard, auditor, metrics, live-tail hub."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from auditkeep.alerts.service import AlertService
from auditkeep.config import Settings
from auditkeep.ledger.ledger import Ledger
from auditkeep.server.audit import Auditor
from auditkeep.server.auth import Guard
from auditkeep.server.keys import KeyStore
from auditkeep.server.metrics import Metrics
from auditkeep.server.ratelimit import RateLimiter
from auditkeep.server.stream import Hub


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
        self.options = options or Options()
        self.metrics = Metrics(ledger.tenants)
        self.keys = KeyStore(ledger.store, self.options.key_cache)
        self.guard = Guard(self.keys, RateLimiter(settings.rate_limit), self.metrics)
        self.auditor = Auditor(ledger, self.metrics.audit_result, self.options.tile_audit_interval)
        self.hub = Hub()
        # alerts, rules and (when run_in_server) the alert runner, started by the app's lifespan;
        # notifier settings are checked here so a bad [alerts] table stops `serve` before it listens
        self.alerts = AlertService(ledger, settings, validate=settings.alerts.run_in_server)


def context(request: Request) -> ServerContext:
    ctx: ServerContext = request.app.state.ctx
    return ctx
