"""The PostgreSQL gateway: a listener, its sessions, and what they share — the guardrail
rules, the event sink, the approvals, the statement analyzer and the metrics.

    gw = Gateway(GatewayConfig(listen=("127.0.0.1", 6432), upstream=("127.0.0.1", 5432),
                               tenant="acme"), sink, approvals)
    await gw.start(); ...; await gw.stop()
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from auditkeep.gateway.approvals import Approval, Approvals
from auditkeep.gateway.guardrails import RuleSet, RulesFile
from auditkeep.gateway.postgres.events import Run, SessionInfo, query_event
from auditkeep.gateway.postgres.rules import CONDITIONS, SECTIONS, Masking, QuerySubject
from auditkeep.gateway.postgres.session import Session
from auditkeep.gateway.postgres.sql import Analyzer
from auditkeep.gateway.sink import EventSink
from auditkeep.model import Event
from auditkeep.policy.detectors import BUILTIN, Scanner

log = logging.getLogger("auditkeep.gateway.postgres")
GATEWAY = "postgres"


@dataclass(frozen=True)
class GatewayConfig:
    listen: tuple[str, int]
    upstream: tuple[str, int]
    tenant: str
    rules: str | None = None  # guardrails file
    tls_cert: str | None = None
    tls_key: str | None = None
    require_tls: bool = False
    connect_timeout: float = 10.0
    max_sessions: int = 1000


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The event loop the gateway runs on: uvloop's when it is installed (it forwards about
    twice the messages a second of asyncio's own loop), else asyncio's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def unix_socket(directory: str, port: int) -> str:
    """The path of the server's socket in ``directory`` (PostgreSQL's own naming)."""
    return f"{directory.rstrip('/')}/.s.PGSQL.{port}"


class FastHistogram:
    """A histogram for the per-chunk path: a bisect and two additions, no lock (it is only
    written from the event loop; a scrape reads it as it is)."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def family(self, name: str, doc: str) -> HistogramMetricFamily:
        buckets, total = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += n
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), total))
        return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=self.sum)


class Metrics:
    """Prometheus metrics of one gateway (its own registry). What changes per statement or
    per chunk is kept in plain counters and rendered at scrape time."""

    def __init__(self, pending: Callable[[], int] | None = None) -> None:
        self.pending = pending  # events emitted and not yet durable in the log
        self.registry = CollectorRegistry()
        r = self.registry
        self.sessions = Counter("auditkeep_pg_gateway_sessions", "Sessions by outcome of their start.", ["outcome"], registry=r)
        self.active = Gauge("auditkeep_pg_gateway_active_sessions", "Sessions open now.", registry=r)
        self.denials = Counter("auditkeep_pg_gateway_denials", "Statements refused by the guardrails (also after review).", registry=r)
        self.reviews = Counter("auditkeep_pg_gateway_reviews", "Statements held for approval, by decision.", ["decision"], registry=r)
        self.statements: dict[tuple[str, str], int] = {}
        self.added = FastHistogram((1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2, 0.1))
        self.statement_seconds = FastHistogram((1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0))
        r.register(_Collector(self))


class _Collector(Collector):
    def __init__(self, m: Metrics) -> None:
        self.m = m

    def collect(self) -> Iterator[Metric]:
        c = CounterMetricFamily("auditkeep_pg_gateway_statements", "Statements by kind and outcome.", labels=["kind", "outcome"])
        for (kind, outcome), n in sorted(self.m.statements.items()):
            c.add_metric([kind, outcome], n)
        yield c
        yield self.m.added.family(
            "auditkeep_pg_gateway_added_seconds",
            "Time the gateway spends on each chunk it forwards (its own latency, both directions).",
        )
        yield self.m.statement_seconds.family("auditkeep_pg_gateway_statement_seconds", "Statement duration as the gateway sees it.")
        if self.m.pending is not None:
            yield GaugeMetricFamily("auditkeep_pg_gateway_events_pending",
                                    "Events not yet durable in the log (a backlog grows while the log commits slower than "
                                    "the gateway forwards, or cannot be reached).", value=self.m.pending())  # fmt: skip


class Gateway:
    def __init__(self, config: GatewayConfig, sink: EventSink, approvals: Approvals | None = None) -> None:
        self.config = config
        self.sink = sink
        # A sink that builds db.query events itself (in its child process) is handed the
        # statement as it is; otherwise the event is built here.
        self._emit_query = getattr(sink, "emit_query", None)
        self.approvals = approvals
        self.upstream_host, self.upstream_port = config.upstream
        self.connect_timeout = config.connect_timeout
        self.analyzer = Analyzer()
        self._scanner = Scanner(BUILTIN)  # what approvers are shown: secrets replaced
        self.metrics = Metrics(sink.pending)
        self.require_tls = config.require_tls
        self.tls: ssl.SSLContext | None = None
        if config.tls_cert:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(config.tls_cert, config.tls_key)
            self.tls = ctx
        self._rules: RulesFile[QuerySubject] | None = (
            RulesFile(config.rules, CONDITIONS, sections=SECTIONS) if config.rules else None
        )
        self.wants_roles = self._rules is not None
        self._server: asyncio.base_events.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self.address: tuple[str, int] = config.listen

    # -- what sessions use ---------------------------------------------------------------

    def rules(self) -> RuleSet[QuerySubject] | None:
        return self._rules.current() if self._rules is not None else None

    @staticmethod
    def masking(rules: RuleSet[QuerySubject] | None) -> Masking | None:
        if rules is None:
            return None
        m = rules.sections.get("masking")
        return m if isinstance(m, Masking) else None

    def emit(self, event: Event) -> None:
        self.sink.emit(event)

    def finished(self, info: SessionInfo, run: Run, duration: float) -> None:
        key = (run.statement.kind, run.outcome)
        counts = self.metrics.statements
        counts[key] = counts.get(key, 0) + 1
        self.metrics.statement_seconds.observe(duration)
        if self._emit_query is not None:
            self._emit_query(info, run, duration)
        else:
            self.sink.emit(query_event(info, run, duration))

    async def await_approval(self, info: SessionInfo, sql: str, rule: str | None, timeout: float) -> tuple[Approval | None, Approval | None]:
        """File a request and wait for its decision: (request, final state); (None, None)
        or (request, None) when the approval service fails (the statement is refused)."""
        if self.approvals is None:
            return None, None
        from auditkeep.gateway.approvals import wait_async

        summary = self._scanner.redact(sql)
        details = {"database": info.database, "session": info.id, "client": info.client,
                   "application": info.application}  # fmt: skip
        try:
            req = await asyncio.to_thread(
                self.approvals.request, self.config.tenant, gateway=GATEWAY, requester=info.user or "unknown",
                action="db.query", summary=summary, timeout=timeout, rule=rule, details=details,
            )  # fmt: skip
        except Exception as exc:
            log.error("approval request failed: %s", exc)
            self.metrics.reviews.labels("error").inc()
            return None, None
        try:
            final = await wait_async(self.approvals, req.id, timeout, self.config.tenant)
        except Exception as exc:
            log.error("waiting for approval %s failed: %s", req.id, exc)
            self.metrics.reviews.labels("error").inc()
            return req, None
        self.metrics.reviews.labels(final.status).inc()
        return req, final

    def open_upstream(self) -> Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
        """A connection to the server: TCP, or its Unix socket when the upstream host is a
        directory (``/var/run/postgresql:5432``, as libpq reads a host starting with ``/``) —
        cheaper per message than TCP when the gateway runs beside the server."""
        if self.upstream_host.startswith("/"):
            return asyncio.open_unix_connection(unix_socket(self.upstream_host, self.upstream_port))
        return asyncio.open_connection(self.upstream_host, self.upstream_port)

    async def forward_cancel(self, packet: bytes) -> None:
        """A CancelRequest goes to the server on a connection of its own, as the client sent it."""
        try:
            _, w = await asyncio.wait_for(self.open_upstream(), self.connect_timeout)
        except (TimeoutError, OSError):
            return
        try:
            w.write(packet)
            await w.drain()
        finally:
            w.close()
            with contextlib.suppress(Exception):
                await w.wait_closed()

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        host, port = self.config.listen
        self._server = await asyncio.start_server(self._accept, host, port, limit=1 << 20)
        sock = self._server.sockets[0].getsockname()
        self.address = (sock[0], sock[1])
        log.info("postgres gateway on %s:%d -> %s:%d", *self.address, *self.config.upstream)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._sessions) >= self.config.max_sessions:
            from auditkeep.gateway.postgres.wire import error_response

            writer.write(error_response("too many sessions through this gateway", "53300", "FATAL"))
            with contextlib.suppress(Exception):
                await writer.drain()
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        try:
            await Session(self, reader, writer).run()
        except asyncio.CancelledError:  # the gateway is stopping; the session has recorded its end
            pass
        except Exception:  # a bug in one session must not stop the gateway
            log.exception("session failed")
        finally:
            self._sessions.discard(task)

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, end the sessions, deliver what is queued."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        for t in list(self._sessions):
            t.cancel()
        if self._sessions:
            await asyncio.wait(list(self._sessions), timeout=timeout)
        await asyncio.to_thread(self.sink.flush, timeout)

    def stats(self) -> dict[str, Any]:
        return {"sessions": len(self._sessions), "analyzer_parsed": self.analyzer.parsed, "sink_pending": self.sink.pending(),
                "time": time.time()}  # fmt: skip
