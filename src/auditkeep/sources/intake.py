"""The step every source shares: mapped events to the ledger (through the capture policy
and redaction), refused records to the quarantine, lost records to a ``source.dropped``
event. Nothing a source hands over vanishes without a trace.

:meth:`Intake.deliver` blocks until the events are durable; call it from a thread (or
``asyncio.to_thread``) in a server.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import msgspec

from auditkeep.ledger.append import Receipt
from auditkeep.ledger.ledger import Ledger, check_tenant
from auditkeep.model import Actor, Event, Source, Submitter
from auditkeep.model.errors import ConflictError, ValidationError
from auditkeep.sources.base import SourceError
from auditkeep.sources.quarantine import Quarantine, QuarantineRecord

DROPPED_ACTION = "source.dropped"
# A mapped event the ledger refused is quarantined as its JSON; a retry reads it back.
EVENT_FORM = "event"
_ID_NAMESPACE = uuid.UUID("6f0d6c0e-59a4-4d0b-9d0f-2a9c1b1e5d11")
_encode = msgspec.json.Encoder()


class IntakeObserver(Protocol):
    """What a face (the server's metrics) wants to count."""

    def source_accepted(self, source: str, tenant: str, count: int) -> None: ...
    def source_quarantined(self, source: str, reason_class: str, count: int) -> None: ...
    def source_lost(self, source: str, count: int) -> None: ...
    def policy_dropped(self, source: str, count: int) -> None: ...


@dataclass
class IntakeResult:
    """What became of one delivery."""

    tenant: str
    receipts: list[Receipt] = field(default_factory=list)
    filtered: int = 0  # events the capture policy dropped (no receipt, no index)
    quarantined: list[QuarantineRecord] = field(default_factory=list)
    lost: int = 0  # records the source lost, recorded as one source.dropped event
    dropped_event: Receipt | None = None

    def merge(self, other: IntakeResult) -> None:
        self.receipts += other.receipts
        self.filtered += other.filtered
        self.quarantined += other.quarantined
        self.lost += other.lost
        self.dropped_event = other.dropped_event or self.dropped_event


def dropped_event(
    source: str, count: int, reason: str, *, event_id: str | None = None, host: str | None = None
) -> Event:
    """The ``source.dropped`` event recording that ``source`` lost ``count`` records."""
    return Event(
        actor=Actor(id=f"auditkeep:{source}", type="system"),
        action=DROPPED_ACTION,
        id=event_id,
        category="system",
        outcome="failure",
        severity="medium",
        reason=f"{count} record(s) lost: {reason}"[:8192],
        source=Source(service="auditkeep", host=host or socket.gethostname()),
        metadata={"source": source, "count": count, "cause": reason[:1024]},
    )


def derived_event_id(*parts: str) -> str:
    """A stable event id from ``parts`` (a collector's batch id), so a resend stores once."""
    return str(uuid.uuid5(_ID_NAMESPACE, "\x1f".join(parts)))


class Intake:
    """``deliver`` a source's batch: see the module docstring."""

    def __init__(
        self, ledger: Ledger, quarantine: Quarantine, observer: IntakeObserver | None = None
    ) -> None:
        self.ledger = ledger
        self.quarantine = quarantine
        self.observer = observer

    def deliver(
        self,
        source: str,
        tenant: str,
        events: Sequence[Event],
        errors: Sequence[SourceError] = (),
        *,
        lost: int = 0,
        lost_reason: str = "the source lost records",
        lost_id: str | None = None,
        context: Mapping[str, str] | None = None,
        timeout: float | None = None,
        submitter: Submitter | None = None,
    ) -> IntakeResult:
        """Quarantine ``errors``, append ``events`` (as ``source``, so the policy applies),
        and record ``lost`` in a ``source.dropped`` event (id ``lost_id`` when given).
        Every leaf names ``submitter`` (the key or certificate of a request), by default the
        collector ``source`` itself.

        An event the ledger refuses (invalid, or an id reused with other content) is
        quarantined with the ledger's reason; the rest of the batch is appended.
        """
        check_tenant(tenant)
        by = submitter or Submitter("collector", source)
        out = IntakeResult(tenant)
        if errors:
            out.quarantined += self._quarantine(list(errors), tenant, context)
        if events:
            self._append(source, tenant, list(events), out, timeout, by)
        if lost > 0:
            ev = dropped_event(source, lost, lost_reason, event_id=lost_id)
            # Internal: not subject to the policy, which must not hide a loss.
            try:
                out.dropped_event = self.ledger.append([ev], tenant, timeout, submitter=by)[0]
            except ConflictError:  # that id already recorded another count: keep this one too
                ev.id = None
                out.dropped_event = self.ledger.append([ev], tenant, timeout, submitter=by)[0]
            out.lost = lost
            if self.observer is not None:
                self.observer.source_lost(source, lost)
        return out

    def _quarantine(
        self, errors: list[SourceError], tenant: str, context: Mapping[str, str] | None
    ) -> list[QuarantineRecord]:
        records = self.quarantine.put(errors, tenant, context)
        if self.observer is not None:
            for rec in records:
                self.observer.source_quarantined(rec.source, rec.reason_class, 1)
        return records

    def _append(
        self, source: str, tenant: str, pending: list[Event], out: IntakeResult, timeout: float | None, by: Submitter
    ) -> None:
        refused: list[SourceError] = []
        while pending:
            try:
                receipts = self.ledger.submit(pending, tenant, source=source, submitter=by).result(timeout)
            except (ValidationError, ConflictError) as exc:
                pos = exc.position
                if pos is None or not 0 <= pos < len(pending):
                    # Not one event's fault: every event stays, each with the reason.
                    refused += [self._as_error(source, ev, str(exc)) for ev in pending]
                    pending = []
                    break
                bad = pending.pop(pos)
                refused.append(self._as_error(source, bad, _without_position(exc)))
                continue
            out.receipts += receipts
            # One receipt per kept event: the difference is what the policy dropped.
            out.filtered += len(pending) - len(receipts)
            break
        if refused:
            out.quarantined += self._quarantine(refused, tenant, {"form": EVENT_FORM})
        if self.observer is not None:
            if out.receipts:
                self.observer.source_accepted(source, tenant, len(out.receipts))
            if out.filtered:
                self.observer.policy_dropped(source, out.filtered)

    @staticmethod
    def _as_error(source: str, ev: Event, reason: str) -> SourceError:
        try:
            raw = _encode.encode(ev)
        except (TypeError, ValueError, UnicodeEncodeError):
            raw = repr(ev).encode("utf-8", "replace")
        return SourceError(source, f"refused by the ledger: {reason}", raw)


def _without_position(exc: ValidationError | ConflictError) -> str:
    if isinstance(exc, ValidationError):
        return exc.render() if exc.position is None else f"{exc.path + ': ' if exc.path else ''}{exc.message}"
    return f"id {exc.event_id} already exists with different content"


@dataclass
class RetryOutcome:
    """A quarantined record read again: ``ok`` when it left the quarantine."""

    record: QuarantineRecord
    ok: bool
    result: IntakeResult | None = None
    reason: str = ""


def retry(intake: Intake, record: QuarantineRecord) -> RetryOutcome:
    """Parse ``record`` again with the current parser of its source and deliver what comes
    out. It leaves the quarantine when every part of it was read; records it still holds
    that cannot be read keep it there, with the new reason. A mapped event the ledger
    refused is offered to the ledger again."""
    from auditkeep.sources.formats import reparse

    if record.truncated:
        reason = f"only the first {len(record.raw)} of {record.raw_size} bytes were kept; it cannot be read again"
        intake.quarantine.failed_again(record, record.reason)
        return RetryOutcome(record, False, None, reason)
    try:
        parsed = reparse(record.source, record.raw, record.context)
    except ValueError as exc:
        intake.quarantine.failed_again(record, record.reason)
        return RetryOutcome(record, False, None, str(exc))
    still = [e for e in parsed.errors if bytes(e.raw) == record.raw]
    others = [e for e in parsed.errors if bytes(e.raw) != record.raw]
    result: IntakeResult | None = None
    if parsed.events or others or parsed.lost:
        result = intake.deliver(
            record.source, record.tenant, parsed.events, others, lost=parsed.lost, context=record.context
        )
        back = [q for q in result.quarantined if q.id == record.id]
        if back:  # the ledger refused it again
            still = [SourceError(record.source, back[0].reason, record.raw)]
    if still:
        intake.quarantine.failed_again(record, still[0].reason)
        return RetryOutcome(record, False, result, still[0].reason)
    intake.quarantine.delete(record.id)
    return RetryOutcome(record, True, result)
