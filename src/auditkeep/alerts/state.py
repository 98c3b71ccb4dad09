"""Alerts kept in the store: persistence without duplicates, the lifecycle
(open → acknowledged → resolved), deliveries and dead letters.

Three document collections, no tables of their own:

- ``alerts``: one document per alert, id = the alert's deterministic id, status = its
  lifecycle state. Inserting is idempotent, so a replay after a crash stores nothing twice.
- ``alert_deliveries``: the outcome of a delivery to one notifier (``delivered`` or
  ``dead``), or ``pending`` when a dead letter is queued again. A route of an alert with no
  such document is still to be sent. Only alerts created after the ``alerts.settled_before``
  watermark (kept by the runner) can have such routes, so a restart finds them without
  reading every alert.
- ``alert_dead_letters``: deliveries that failed for good, until re-sent.

One durable write per alert on the runner's path (the alert) and one per delivery (its
outcome): each write is a transaction of its own, and their number is what limits how many
alerts a second the runner can keep.

Every alert and every state change is also appended to the tenant's own log as an
``auditkeep.alert.*`` event.
"""

from __future__ import annotations

import builtins
import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from auditkeep.alerts.model import Alert, AlertStatus
from auditkeep.alerts.notify.base import DeadLetter
from auditkeep.errors import UserError
from auditkeep.ledger.append import Receipt
from auditkeep.ledger.ledger import Ledger, NotFound
from auditkeep.model.timefmt import format_rfc3339
from auditkeep.store.base import Doc, Store

ALERTS = "alerts"
DELIVERIES = "alert_deliveries"
DEAD_LETTERS = "alert_dead_letters"
#: A store meta key bumped when a dead letter is queued again, so a runner in another
#: process notices without scanning the deliveries.
REQUEUE_META = "alerts.requeue"
#: Every route of every alert created before this time (ns) has an outcome.
SETTLED_META = "alerts.settled_before"
#: Actions of the events the alert layer appends; the runner does not evaluate them.
EVENT_PREFIX = "auditkeep.alert."
FIRED = "auditkeep.alert.fired"
ACKNOWLEDGED = "auditkeep.alert.acknowledged"
RESOLVED = "auditkeep.alert.resolved"
SERVICE = "auditkeep-alerts"
SYSTEM_ACTOR = "auditkeep.alerts"
MAX_NOTE = 2000
MAX_SCAN = 10_000  # documents one listing may read while filtering by rule

DeliveryStatus = Literal["pending", "delivered", "dead"]


class StateChange(msgspec.Struct, kw_only=True):
    status: AlertStatus
    actor: str
    at: str
    note: str | None = None


class AlertRecord(Alert, kw_only=True):
    """An alert as stored: the engine's alert plus its lifecycle."""

    created: str = ""
    updated: str = ""
    acknowledged_by: str | None = None
    acknowledged_at: str | None = None
    resolved_by: str | None = None
    resolved_at: str | None = None
    history: list[StateChange] = msgspec.field(default_factory=list)
    routes: list[str] = msgspec.field(default_factory=list)  # the notifiers it was sent to


class Delivery(msgspec.Struct, kw_only=True):
    alert_id: str
    notifier: str
    tenant: str
    status: DeliveryStatus = "pending"
    delivered_at: str | None = None
    error: str | None = None


class DeadLetterView(msgspec.Struct, kw_only=True):
    """A dead letter as listings show it."""

    id: str
    notifier: str
    alert_id: str
    tenant: str
    rule_id: str
    title: str
    attempts: int
    error: str
    at: str


@dataclass
class Recorded:
    stored: list[AlertRecord] = field(default_factory=list)
    new: list[AlertRecord] = field(default_factory=list)
    deliveries: list[tuple[AlertRecord, str]] = field(default_factory=list)


class AlertNotFound(NotFound):
    """No such alert (or dead letter) in this tenant."""


class TransitionError(UserError):
    """The alert is not in a state that allows this change (HTTP 409)."""

    def __init__(self, alert_id: str, current: str, wanted: str) -> None:
        super().__init__(f"alert {alert_id} is {current}; it cannot become {wanted}")
        self.current = current
        self.wanted = wanted


_record = msgspec.json.Decoder(AlertRecord)
_delivery = msgspec.json.Decoder(Delivery)
_letter = msgspec.json.Decoder(DeadLetter)
_encode = msgspec.json.Encoder()

# Which state may follow which: ack only what is open, resolve what is not resolved yet.
_ALLOWED: dict[str, tuple[str, ...]] = {"acknowledged": ("open",), "resolved": ("open", "acknowledged")}


def fired_event_id(alert_id: str) -> str:
    """A UUID (version 8, RFC 9562) derived from the alert id: appending the fired event
    again after a crash is an idempotent retry, not a second event."""
    raw = bytearray(hashlib.sha256(f"{FIRED}\x00{alert_id}".encode()).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x80
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def delivery_id(alert_id: str, notifier: str) -> str:
    return f"{alert_id}:{notifier}"


def encode_cursor(created_ns: int) -> str:
    return str(created_ns)


def decode_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    if not cursor.isdigit() or len(cursor) > 20:
        raise ValueError("not a cursor returned by a previous page")
    return int(cursor)


class _Clock:
    """Distinct creation times within this process, so paging by time never skips a tie."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            now = max(time.time_ns(), self._last + 1)
            self._last = now
            return now


class AlertBook:
    """Alerts of every tenant in ``ledger.store``; state changes are logged in ``ledger``."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.store: Store = ledger.store
        self._clock = _Clock()
        self._lock = threading.Lock()  # one state change at a time in this process

    # -- recording what the engine raised ------------------------------------------------

    def record(self, alerts: Sequence[Alert], routes: Callable[[Alert], list[str]]) -> Recorded:
        """Store alerts (skipping those already stored) with the notifiers they go to.

        ``stored`` holds every alert as stored (the first stored version for duplicates, so
        the fired event built from it is byte-identical on a replay); ``new`` and
        ``deliveries`` only what this call stored.
        """
        out = Recorded()
        for alert in alerts:
            old = self.store.doc_get(ALERTS, alert.id)
            if old is not None:
                out.stored.append(_record.decode(old.data))
                continue
            now = self._clock()
            at = format_rfc3339(now)
            names = list(dict.fromkeys(routes(alert)))
            rec = AlertRecord(**msgspec.structs.asdict(alert), created=at, updated=at, routes=names)
            if self.store.doc_insert(Doc(ALERTS, alert.id, alert.tenant, now, rec.status, _encode.encode(rec))):
                out.deliveries.extend((rec, name) for name in names)
                out.new.append(rec)
                out.stored.append(rec)
            else:  # another runner got there first
                again = self.store.doc_get(ALERTS, alert.id)
                out.stored.append(_record.decode(again.data) if again is not None else rec)
        return out

    def log_fired(self, records: Sequence[AlertRecord]) -> list[Future[list[Receipt]]]:
        """Submit the fired events of these alerts to their tenants' logs (idempotent); the
        futures resolve once they are durable."""
        by_tenant: dict[str, list[dict[str, Any]]] = {}
        for rec in records:
            by_tenant.setdefault(rec.tenant, []).append(fired_event(rec))
        by = self.ledger.submitter
        return [self.ledger.submit_own(events, tenant, by) for tenant, events in by_tenant.items()]

    # -- reading -------------------------------------------------------------------------

    def get(self, alert_id: str, tenant: str | None = None) -> AlertRecord:
        """The alert; ``AlertNotFound`` when missing or (with ``tenant``) of another tenant."""
        doc = self.store.doc_get(ALERTS, alert_id) if _plausible_id(alert_id) else None
        if doc is None or (tenant is not None and doc.tenant != tenant):
            raise AlertNotFound(f"no alert {alert_id}")
        return _record.decode(doc.data)

    def find(
        self,
        tenant: str | None = None,
        status: str | None = None,
        rule: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[AlertRecord], str | None]:
        """Newest first; ``cursor`` is the ``next`` of the previous page."""
        before = decode_cursor(cursor)
        out: list[AlertRecord] = []
        scanned = 0
        while len(out) < limit and scanned < MAX_SCAN:
            page = self.store.doc_list(ALERTS, tenant=tenant, status=status, before_ns=before, limit=min(1000, max(limit, 100)))
            if not page:
                return out, None
            for doc in page:
                scanned += 1
                before = doc.created_ns
                rec = _record.decode(doc.data)
                if rule is None or rec.rule_id == rule:
                    out.append(rec)
                    if len(out) == limit:
                        break
            if len(page) < min(1000, max(limit, 100)) and len(out) < limit:
                return out, None
        return out, (encode_cursor(before) if before is not None else None)

    def deliveries(self, rec: AlertRecord) -> list[Delivery]:
        """Where the alert was (or is being) delivered."""
        out = []
        for name in rec.routes:
            doc = self.store.doc_get(DELIVERIES, delivery_id(rec.id, name))
            out.append(_delivery.decode(doc.data) if doc is not None else Delivery(alert_id=rec.id, notifier=name, tenant=rec.tenant))
        return out

    # -- lifecycle -----------------------------------------------------------------------

    def acknowledge(self, alert_id: str, actor: str, *, tenant: str | None = None, note: str | None = None, actor_type: str = "user") -> AlertRecord:
        return self.transition(alert_id, "acknowledged", actor, tenant=tenant, note=note, actor_type=actor_type)

    def resolve(self, alert_id: str, actor: str, *, tenant: str | None = None, note: str | None = None, actor_type: str = "user") -> AlertRecord:
        return self.transition(alert_id, "resolved", actor, tenant=tenant, note=note, actor_type=actor_type)

    def transition(
        self,
        alert_id: str,
        to: AlertStatus,
        actor: str,
        *,
        tenant: str | None = None,
        note: str | None = None,
        actor_type: str = "user",
    ) -> AlertRecord:
        """Move an alert to ``to``; ``TransitionError`` when its state does not allow it. The
        change is appended to the tenant's log (durably) before the alert is updated."""
        if note is not None and len(note) > MAX_NOTE:
            raise ValueError(f"a note is at most {MAX_NOTE} characters")
        with self._lock:
            doc = self.store.doc_get(ALERTS, alert_id) if _plausible_id(alert_id) else None
            if doc is None or (tenant is not None and doc.tenant != tenant):
                raise AlertNotFound(f"no alert {alert_id}")
            rec = _record.decode(doc.data)
            if rec.status not in _ALLOWED[to]:
                raise TransitionError(alert_id, rec.status, to)
            now = time.time_ns()
            at = format_rfc3339(now)
            self.ledger.append_own([change_event(rec, to, actor, actor_type, at, note)], rec.tenant, self.ledger.submitter)
            rec.status = to
            rec.updated = at
            if to == "acknowledged":
                rec.acknowledged_by, rec.acknowledged_at = actor, at
            else:
                rec.resolved_by, rec.resolved_at = actor, at
            rec.history.append(StateChange(status=to, actor=actor, at=at, note=note))
            self.store.doc_put(Doc(ALERTS, rec.id, rec.tenant, doc.created_ns, rec.status, _encode.encode(rec)))
            return rec

    # -- deliveries ----------------------------------------------------------------------

    def pending(self, limit: int = 10_000) -> list[tuple[AlertRecord, str]]:
        """Deliveries not yet made: routes without an outcome of alerts created since the
        settled watermark (a previous run stopped before sending them), and dead letters
        queued again."""
        out: list[tuple[AlertRecord, str]] = []
        seen: set[str] = set()
        settled = int(self.store.meta(SETTLED_META) or 0)
        before: int | None = None
        while len(out) < limit:
            page = self.store.doc_list(ALERTS, before_ns=before, limit=500)
            for doc in page:
                if doc.created_ns < settled:
                    page = []
                    break
                before = doc.created_ns
                rec = _record.decode(doc.data)
                for name in rec.routes:
                    did = delivery_id(rec.id, name)
                    if self.store.doc_get(DELIVERIES, did) is None:
                        out.append((rec, name))
                        seen.add(did)
            if len(page) < 500:
                break
        for d in self.store.doc_list(DELIVERIES, status="pending", limit=limit):
            if d.id in seen:
                continue
            dv = _delivery.decode(d.data)
            a = self.store.doc_get(ALERTS, dv.alert_id)
            if a is not None:
                out.append((_record.decode(a.data), dv.notifier))
        return out

    def settle(self, before_ns: int) -> None:
        """Record that every route of every alert created before ``before_ns`` has an outcome."""
        self.store.set_meta(SETTLED_META, str(before_ns))

    def mark_delivered(self, alert_id: str, tenant: str, notifier: str) -> None:
        self._set_delivery(alert_id, tenant, notifier, "delivered", None)

    def _set_delivery(self, alert_id: str, tenant: str, notifier: str, status: DeliveryStatus, error: str | None) -> None:
        now = time.time_ns()
        d = Delivery(alert_id=alert_id, notifier=notifier, tenant=tenant, status=status, error=error,
                     delivered_at=format_rfc3339(now) if status == "delivered" else None)
        self.store.doc_put(Doc(DELIVERIES, delivery_id(alert_id, notifier), tenant, now, status, _encode.encode(d)))

    # -- dead letters --------------------------------------------------------------------

    def dead_letters(self, tenant: str | None = None, limit: int = 1000) -> list[DeadLetterView]:
        return [_view(d.id, _letter.decode(d.data)) for d in self.store.doc_list(DEAD_LETTERS, tenant=tenant, limit=limit)]

    def requeue(self, letter_id: str, tenant: str | None = None) -> DeadLetterView:
        """Queue a dead letter for delivery again (a runner sends it, and records the result)."""
        doc = self.store.doc_get(DEAD_LETTERS, letter_id) if len(letter_id) <= 200 else None
        if doc is None or (tenant is not None and doc.tenant != tenant):
            raise AlertNotFound(f"no dead letter {letter_id}")
        letter = _letter.decode(doc.data)
        view = _view(doc.id, letter)
        did = delivery_id(letter.alert.id, letter.notifier)
        now = time.time_ns()
        d = Delivery(alert_id=letter.alert.id, notifier=letter.notifier, tenant=letter.alert.tenant)
        self.store.doc_put(Doc(DELIVERIES, did, letter.alert.tenant, now, "pending", _encode.encode(d)))
        self.store.doc_delete(DEAD_LETTERS, letter_id)
        self.store.set_meta(REQUEUE_META, str(now))
        return view


def _view(doc_id: str, letter: DeadLetter) -> DeadLetterView:
    return DeadLetterView(
        id=doc_id,
        notifier=letter.notifier,
        alert_id=letter.alert.id,
        tenant=letter.alert.tenant,
        rule_id=letter.alert.rule_id,
        title=letter.alert.title,
        attempts=letter.attempts,
        error=letter.error,
        at=format_rfc3339(letter.time),
    )


class StoredDeadLetters:
    """The :class:`~auditkeep.alerts.notify.DeadLetterStore` of the runner: letters go to the
    ``alert_dead_letters`` collection and their delivery is marked ``dead``."""

    def __init__(self, book: AlertBook, on_put: Callable[[str], None] | None = None) -> None:
        self.book = book
        self.on_put = on_put

    def put(self, letter: DeadLetter) -> None:
        did = delivery_id(letter.alert.id, letter.notifier)
        # the delivery first: whoever sees the letter sees the delivery marked dead
        self.book._set_delivery(letter.alert.id, letter.alert.tenant, letter.notifier, "dead", letter.error[:500])
        self.book.store.doc_put(Doc(DEAD_LETTERS, did, letter.alert.tenant, letter.time, "dead", _encode.encode(letter)))
        if self.on_put is not None:
            self.on_put(did)

    def list(self) -> builtins.list[DeadLetter]:
        return [_letter.decode(d.data) for d in self.book.store.doc_list(DEAD_LETTERS, limit=10_000)]


def _plausible_id(alert_id: str) -> bool:
    return 0 < len(alert_id) <= 64 and alert_id.isalnum()


def fired_event(rec: AlertRecord) -> dict[str, Any]:
    """The ``auditkeep.alert.fired`` event of a stored alert. Built only from the stored
    alert, so it is the same bytes however often it is appended (the id makes it idempotent).
    It carries ids and the rule, not the explanation, which may quote personal fields."""
    return {
        "id": fired_event_id(rec.id),
        "time": rec.created,
        "actor": {"id": SYSTEM_ACTOR, "type": "system"},
        "action": FIRED,
        "category": "system",
        "outcome": "success",
        "severity": rec.severity,
        "resource": {"type": "alert", "id": rec.id, "name": rec.rule_name[:500]},
        "source": {"service": SERVICE},
        "metadata": {
            "alert_id": rec.id,
            "rule_id": rec.rule_id,
            "title": rec.title[:500],
            "count": rec.count,
            "first_index": rec.first_index,
            "last_index": rec.last_index,
            "event_ids": rec.event_ids[:20],
        },
    }


def change_event(rec: AlertRecord, to: str, actor: str, actor_type: str, at: str, note: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"alert_id": rec.id, "rule_id": rec.rule_id, "from": rec.status, "to": to}
    if note:
        meta["note"] = note
    return {
        "time": at,
        "actor": {"id": actor, "type": actor_type},
        "action": ACKNOWLEDGED if to == "acknowledged" else RESOLVED,
        "category": "admin",
        "outcome": "success",
        "resource": {"type": "alert", "id": rec.id, "name": rec.rule_name[:500]},
        "source": {"service": SERVICE},
        "metadata": meta,
    }


def is_own_event(action: str) -> bool:
    return action.startswith(EVENT_PREFIX)
