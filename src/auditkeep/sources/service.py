"""The sources a running server receives: the Kubernetes audit webhook, OTLP/HTTP logs,
batches from ``auditkeep collect``, and the syslog listeners. Each hands its batches to
:class:`~auditkeep.sources.intake.Intake`; this module only adds what a long-running
receiver needs (stage merging across requests, the syslog servers' lifecycle, a periodic
release of held stages and of drop counts).

The request handlers are synchronous (run them in a thread); :meth:`SourceService.start`
and :meth:`SourceService.stop` run in the server's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import msgspec

from auditkeep.ledger.ledger import Ledger
from auditkeep.model.event import Event, Submitter
from auditkeep.sources.base import SourceError, UnreadableRequest
from auditkeep.sources.intake import Intake, IntakeObserver, IntakeResult, derived_event_id
from auditkeep.sources.kubernetes import StageMerger, parse_k8s_payload
from auditkeep.sources.quarantine import DEFAULT_MAX_BYTES, Quarantine
from auditkeep.sources.syslog import SyslogServers, start_syslog_servers
from auditkeep.sources.syslog.server import LOSS_CAUSES
from auditkeep.sources.syslog.udp import DEFAULT_RECEIVE_BUFFER
from auditkeep.store.base import Doc

log = logging.getLogger("auditkeep.sources")


@dataclass(frozen=True)
class SourceOptions:
    kubernetes_stages: Literal["final", "all"] = "final"
    kubernetes_stage_timeout: float = 60.0
    syslog: Sequence[str] = ()
    syslog_tenant: str = "default"
    syslog_tls_cert: str | None = None
    syslog_tls_key: str | None = None
    syslog_udp_buffer: int = DEFAULT_RECEIVE_BUFFER
    quarantine_max_bytes: int = DEFAULT_MAX_BYTES
    flush_interval: float = 1.0  # seconds between releases of timed-out stages and drop counts


@dataclass
class Delivery:
    """What a request handed over: ``refused`` when the whole request could not be read
    (it is quarantined, and the answer is a 400); ``held`` counts Kubernetes stages waiting
    for their final stage."""

    result: IntakeResult
    refused: bool = False
    held: int = 0

    @property
    def reasons(self) -> list[str]:
        return [q.reason for q in self.result.quarantined]


class CollectedError(msgspec.Struct, forbid_unknown_fields=True):
    reason: str
    raw: bytes  # base64 in JSON


class CollectedBatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A batch of ``auditkeep collect``: events mapped on the host, the records it could
    not read, and the records the host lost. ``batch`` (the collector's id of this batch)
    makes the ``source.dropped`` event of a resent batch the same event."""

    events: list[Event] = msgspec.field(default_factory=list)
    errors: list[CollectedError] = msgspec.field(default_factory=list)
    lost: int = 0
    batch: str | None = None


HELD = "k8s_held_stages"  # doc collection: earlier stages waiting for their final stage
_held_decoder = msgspec.json.Decoder(Event)


def _held_id(tenant: str, key: str) -> str:
    return f"{tenant}\x1e{key}"


class SourceService:
    def __init__(
        self, ledger: Ledger, options: SourceOptions, observer: IntakeObserver | None = None
    ) -> None:
        self.options = options
        self.quarantine = Quarantine(ledger.store, options.quarantine_max_bytes, ledger.pipeline)
        self.intake = Intake(ledger, self.quarantine, observer)
        self._mergers: dict[str, StageMerger] = {}  # by tenant
        self._lock = threading.Lock()
        self.syslog: SyslogServers | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._stopped = False

    # -- Kubernetes ---------------------------------------------------------------------

    def kubernetes(
        self, body: bytes, tenant: str, cluster: str | None = None, submitter: Submitter | None = None
    ) -> Delivery:
        """An audit webhook POST (EventList or Event). Stages held past the request are
        released later under the collector ``kubernetes`` as their submitter."""
        events, errors = parse_k8s_payload(body, cluster=cluster)
        # The parser keeps the whole body as the raw bytes of an error about the body itself.
        refused = not events and len(errors) == 1 and bytes(errors[0].raw) == body
        held = 0
        if self.options.kubernetes_stages == "final" and events:
            with self._lock:
                merger = self._merger(tenant)
                before = merger.pending()
                events = merger.add(events)
                after = merger.pending()
                held = len(merger)
                # The webhook is answered 200 once this returns: the stages now held must be
                # durable first (a kill before their final stage comes would lose them), and
                # the ones just released are forgotten before they are delivered (a kill in
                # between makes the API server resend the batch; nothing is lost either way).
                self._persist_held(tenant, before, after)
        ctx = {"cluster": cluster} if cluster else None
        result = self.intake.deliver("kubernetes", tenant, events, errors, context=ctx, submitter=submitter)
        return Delivery(result, refused, held)

    def _persist_held(self, tenant: str, before: dict[str, Event], after: dict[str, Event]) -> None:
        store = self.intake.ledger.store
        now = time.time_ns()
        changed = [
            Doc(HELD, _held_id(tenant, key), tenant, now, None, msgspec.json.encode(ev))
            for key, ev in after.items()
            if before.get(key) is not ev
        ]
        if changed:
            store.doc_put_many(changed)
        gone = [_held_id(tenant, key) for key in before if key not in after]
        if gone:
            store.doc_delete_many(HELD, gone)

    def restore_held(self) -> int:
        """Hold again the stages a previous run held when it stopped or died."""
        store = self.intake.ledger.store
        n = 0
        before: int | None = None
        while True:
            docs = store.doc_list(HELD, before_ns=before, limit=1000)
            if not docs:
                return n
            with self._lock:
                for d in docs:
                    tenant, _, key = d.id.partition("\x1e")
                    self._merger(tenant).hold(key, _held_decoder.decode(d.data))
                    n += 1
            before = docs[-1].created_ns
            if len(docs) < 1000:
                return n

    def _merger(self, tenant: str) -> StageMerger:
        m = self._mergers.get(tenant)
        if m is None:
            m = self._mergers[tenant] = StageMerger("final", self.options.kubernetes_stage_timeout)
        return m

    def release_stages(self, everything: bool = False) -> int:
        """Deliver the held stages whose final stage did not come in time (all of them at
        shutdown); returns how many."""
        with self._lock:
            before = {t: m.pending() for t, m in self._mergers.items()}
            ready = {t: (m.drain() if everything else m.expire()) for t, m in self._mergers.items()}
            after = {t: m.pending() for t, m in self._mergers.items()}
        n = 0
        for tenant, events in ready.items():
            if events:
                self.intake.deliver("kubernetes", tenant, events)
                n += len(events)
                # Forgotten only once delivered: a kill before this holds them again.
                self.intake.ledger.store.doc_delete_many(
                    HELD, [_held_id(tenant, k) for k in before[tenant] if k not in after[tenant]]
                )
        return n

    # -- OpenTelemetry ------------------------------------------------------------------

    def otlp(self, body: bytes, content_type: str, tenant: str, submitter: Submitter | None = None) -> Delivery:
        """An OTLP/HTTP logs export request."""
        from auditkeep.sources.otlp import parse_otlp_logs  # protobuf: on the first OTLP request

        events, errors = parse_otlp_logs(body, content_type)
        refused = not events and len(errors) == 1 and isinstance(errors[0], UnreadableRequest)
        ctx = {"content_type": content_type.split(";", 1)[0].strip().lower()}
        result = self.intake.deliver("otlp", tenant, events, errors, context=ctx, submitter=submitter)
        return Delivery(result, refused)

    # -- collectors ---------------------------------------------------------------------

    def collected(
        self, source: str, batch: CollectedBatch, tenant: str, submitter: Submitter | None = None
    ) -> Delivery:
        """A batch from ``auditkeep collect``."""
        errors = [SourceError(source, e.reason, e.raw) for e in batch.errors]
        lost_id = derived_event_id(tenant, source, "dropped", batch.batch) if batch.batch else None
        result = self.intake.deliver(
            source,
            tenant,
            batch.events,
            errors,
            lost=batch.lost,
            lost_reason=f"{source} reported records lost before they were read",
            lost_id=lost_id,
            submitter=submitter,
        )
        return Delivery(result)

    # -- syslog and lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Hold again what a previous run held, start the syslog listeners (if any) and the
        periodic release."""
        restored = await asyncio.to_thread(self.restore_held)
        if restored:
            log.info("holding %d Kubernetes stages from before the restart", restored)
        o = self.options
        if o.syslog:
            self.syslog = await start_syslog_servers(
                list(o.syslog),
                self._syslog_sink,
                o.syslog_tls_cert,
                o.syslog_tls_key,
                udp_receive_buffer=o.syslog_udp_buffer,
            )
            for ls in self.syslog.listeners:
                log.info("syslog listening on %s://%s:%d", ls.scheme, ls.host, ls.port)
        self._flusher = asyncio.create_task(self._flush_loop(), name="sources-flush")

    async def _syslog_sink(self, events: list[Event], errors: list[SourceError]) -> None:
        await asyncio.to_thread(self._syslog_deliver, events, errors)

    def _syslog_deliver(self, events: list[Event], errors: list[SourceError]) -> None:
        tenant = self.options.syslog_tenant
        if events or errors:
            self.intake.deliver("syslog", tenant, events, errors)
        self._syslog_losses()

    def syslog_lost(self) -> dict[str, int]:
        """Syslog messages lost since the start, by cause (for metrics)."""
        return self.syslog.lost() if self.syslog is not None else {}

    def _syslog_losses(self) -> None:
        """One ``source.dropped`` event for each cause of loss since the last call."""
        if self.syslog is None:
            return
        for cause, n in self.syslog.take_lost().items():
            self.intake.deliver(
                "syslog", self.options.syslog_tenant, [], lost=n, lost_reason=LOSS_CAUSES[cause]
            )

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.flush_interval)
            try:
                await asyncio.to_thread(self._flush_once)
            except Exception:  # the store may be down for a moment; the next round retries
                log.exception("sources: periodic flush failed")

    def _flush_once(self) -> None:
        self.release_stages()
        self._syslog_losses()

    async def stop(self) -> None:
        """Stop listening, deliver what is buffered and the held stages that timed out (before the ledger
        closes)."""
        if self._stopped:
            return
        self._stopped = True
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        if self.syslog is not None:
            await self.syslog.close()
        await asyncio.to_thread(self._final_flush)

    def _final_flush(self) -> None:
        # Held stages stay held (they are durable): the next start waits for their final
        # stages instead of recording them as incomplete because of a restart.
        self.release_stages()
        self._syslog_losses()


__all__ = [
    "CollectedBatch",
    "CollectedError",
    "Delivery",
    "SourceOptions",
    "SourceService",
]
