"""The alert runner: a consumer of the committed log that feeds the engine and delivers
what it raises.

Per tenant it reads the log by a stored cursor (``Store.cursor("alerts", tenant_id)``),
evaluates the events in log order with one :class:`~auditkeep.alerts.engine.Engine` per
tenant, stores the alerts (:class:`~auditkeep.alerts.state.AlertBook`), appends their
``auditkeep.alert.fired`` events, and hands the new deliveries to :class:`Notifications`.
The cursor position and the engine snapshot are saved together (``set_cursor``) at most
every ``save_interval`` seconds and when the runner stops.

After a crash the runner restores the last snapshot and replays from its position. The
replay yields the same alert ids (see :func:`~auditkeep.alerts.model.alert_id`); alerts
already stored are skipped, so nothing is stored, logged or sent twice, and nothing after
the cursor is skipped. Events the alert layer appended itself (``auditkeep.alert.*``) are
not evaluated, so an alert can never trigger another one.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import msgspec

from auditkeep.alerts.catalog import RuleCatalog
from auditkeep.alerts.engine import Engine
from auditkeep.alerts.model import Alert
from auditkeep.alerts.notify import Dispatcher, Notifier, RetryPolicy
from auditkeep.alerts.state import (
    REQUEUE_META,
    AlertBook,
    AlertRecord,
    StoredDeadLetters,
    delivery_id,
    is_own_event,
)
from auditkeep.alerts.timeutil import event_time_ns
from auditkeep.config import AlertSettings
from auditkeep.errors import AuditkeepError
from auditkeep.ledger.append import Receipt
from auditkeep.ledger.ledger import Ledger
from auditkeep.ledger.view import open_dict
from auditkeep.model.timefmt import parse_rfc3339
from auditkeep.store.base import Entry, Head

log = logging.getLogger(__name__)

CURSOR = "alerts"


class _Recording:
    """A notifier that reports each successful send, so that it is recorded in the store
    and a restart resends only what was not delivered."""

    def __init__(self, inner: Notifier, on_sent: Callable[[Alert, str], None]) -> None:
        self.inner = inner
        self.name = inner.name
        self._on_sent = on_sent

    async def send(self, alert: Alert) -> None:
        await self.inner.send(alert)
        self._on_sent(alert, self.name)  # only queues the mark: the next send need not wait

    async def aclose(self) -> None:
        close = getattr(self.inner, "aclose", None)
        if close is not None:
            await close()


class Notifications:
    """Deliveries from a thread of their own (an asyncio loop running a
    :class:`~auditkeep.alerts.notify.Dispatcher`), so a slow receiver never holds up the
    evaluation of the log."""

    def __init__(
        self,
        notifiers: Iterable[Notifier],
        book: AlertBook,
        retry: RetryPolicy | None = None,
        default: Iterable[str] = (),
    ) -> None:
        self.book = book
        self.default = list(default)
        self._inflight: dict[str, int] = {}  # delivery id -> creation time of its alert
        self._lock = threading.Lock()
        self.dead_letters = StoredDeadLetters(book, on_put=self._done)
        wrapped = [_Recording(n, self._sent) for n in notifiers]
        self.dispatcher = Dispatcher(wrapped, dead_letters=self.dead_letters, retry=retry)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        # "delivered" marks are store writes (an fsync each): a thread of their own writes
        # them so a notifier's next send does not wait for the previous one's
        self._marks: queue.SimpleQueue[tuple[str, str, str] | None] = queue.SimpleQueue()
        self._marker: threading.Thread | None = None

    def routes(self, alert: Alert) -> list[str]:
        """The notifiers an alert goes to: those its rule names, else the default ones."""
        return list(dict.fromkeys(alert.notify or self.default))

    def start(self) -> None:
        ready = threading.Event()

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self.dispatcher.start())
                ready.set()
                loop.run_forever()
            finally:
                ready.set()
                loop.close()

        self._marker = threading.Thread(target=self._mark_loop, name="auditkeep-alerts-marks", daemon=True)
        self._marker.start()
        self._thread = threading.Thread(target=main, name="auditkeep-alerts-notify", daemon=True)
        self._thread.start()
        ready.wait()

    def submit(self, items: Iterable[tuple[AlertRecord, str]]) -> int:
        """Queue (alert, notifier) deliveries not already on their way; how many were queued."""
        batch: list[Alert] = []
        with self._lock:
            for alert, name in items:
                did = delivery_id(alert.id, name)
                if did in self._inflight:
                    continue
                self._inflight[did] = parse_rfc3339(alert.created) if alert.created else 0
                # one copy per notifier, so the dispatcher sends it there and nowhere else
                batch.append(msgspec.structs.replace(alert, notify=[name]))
        if batch:
            self.dispatcher.submit(batch)
        return len(batch)

    def in_flight(self) -> int:
        with self._lock:
            return len(self._inflight)

    def oldest_in_flight(self) -> int | None:
        """The creation time of the oldest alert with a delivery on its way, if any."""
        with self._lock:
            return min(self._inflight.values(), default=None)

    def _sent(self, alert: Alert, notifier: str) -> None:
        self._marks.put((alert.id, alert.tenant, notifier))

    def _mark_loop(self) -> None:
        while True:
            item = self._marks.get()
            if item is None:
                return
            alert_id, tenant, notifier = item
            try:
                self.book.mark_delivered(alert_id, tenant, notifier)
            except Exception:  # delivered all the same; at worst it is sent again after a restart
                log.exception("alert %s delivered to %s but not marked so", alert_id, notifier)
            finally:
                self._done(delivery_id(alert_id, notifier))

    def _done(self, did: str) -> None:
        with self._lock:
            self._inflight.pop(did, None)

    def stop(self, timeout: float = 10.0) -> None:
        """Wait up to ``timeout`` seconds for deliveries in progress; the rest stay pending in
        the store and are sent at the next start."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def close() -> None:
            try:
                await asyncio.wait_for(self.dispatcher.drain(), timeout)
            except TimeoutError:
                log.warning("%d deliveries still pending at shutdown; they are sent at the next start", self.in_flight())
            await self.dispatcher.aclose(drain=False)

        try:
            asyncio.run_coroutine_threadsafe(close(), loop).result(timeout + 30)
        except Exception:
            log.exception("closing the notifiers failed")
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        self._loop = self._thread = None
        if self._marker is not None:
            self._marks.put(None)  # after every send: the marks of all of them are written
            self._marker.join(60)
            self._marker = None


open_leaf = open_dict  # the ledger's view of an entry, as a plain dict (ledger/view.py)


class _Clock(msgspec.Struct):
    """What an idle engine needs of an event (:meth:`Engine.observe`): decoded from the leaf
    without the rest of it, and without opening sealed fields."""

    action: Any = ""
    time: Any = None
    received_at: Any = None


_clock = msgspec.json.Decoder(_Clock)


def _times(entry: Entry) -> _Clock:
    try:
        return _clock.decode(entry.leaf)
    except msgspec.DecodeError:
        open_leaf(entry)  # says why (a store encrypted at rest read without its key)
        raise


@dataclass
class _Tenant:
    name: str
    tenant_id: int
    engine: Engine
    position: int
    dirty: bool = False
    saved_at: float = 0.0


class AlertRunner:
    """Runs the engine over every tenant's committed log.

    ``start()`` runs it in a background thread (``auditkeep serve``); :meth:`step` does one
    pass in the caller's thread (tests, benchmarks). The ledger's commit listener wakes it;
    otherwise it looks every ``poll_interval`` seconds (events appended by another process).
    """

    def __init__(
        self,
        ledger: Ledger,
        book: AlertBook,
        catalog: RuleCatalog,
        notifications: Notifications,
        settings: AlertSettings | None = None,
        *,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.ledger = ledger
        self.store = ledger.store
        self.book = book
        self.catalog = catalog
        self.notifications = notifications
        self.settings = settings or AlertSettings()
        self.clock = clock
        self.tenants: dict[str, _Tenant] = {}
        self.events = 0  # evaluated since start
        self.alerts = 0  # newly stored since start
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._generation = -1
        self._requeue: str | None = None
        self._next_tick = 0.0
        self._next_rules = 0.0
        self._started = False
        self._fired: list[Future[list[Receipt]]] = []
        self._newest_created = 0
        self._settled = 0
        ledger.on_commit(self._on_commit)

    # -- lifecycle -----------------------------------------------------------------------

    def _on_commit(self, tenant_ids: set[int]) -> None:
        self._wake.set()  # runs in the ledger's writer thread: nothing more

    def wake(self) -> None:
        self._wake.set()

    def open(self) -> None:
        """Load the rules and queue the deliveries a previous run left pending."""
        if self._started:
            return
        self._started = True
        self.catalog.refresh()
        self._generation = self.catalog.generation
        self.notifications.start()
        self._requeue = self.store.meta(REQUEUE_META)
        queued = self.notifications.submit(self.book.pending())
        if queued:
            log.info("%d pending deliveries queued again", queued)
        now = time.monotonic()
        self._next_tick = now + self.settings.tick_interval
        self._next_rules = now + self.settings.rules_interval

    def close(self) -> None:
        """Save every tenant's cursor and state; let deliveries in progress finish."""
        if not self._started:
            return
        self._save(force=True)
        self.notifications.stop()
        self._started = False

    def start(self) -> None:
        self.open()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="auditkeep-alerts", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.close()

    def _run(self) -> None:
        backoff = 0.0
        while not self._stop.is_set():
            try:
                n = self.step()
                backoff = 0.0
            except Exception:
                # the store may be unreachable for a while: keep trying, never spin
                backoff = min(30.0, backoff * 2 or 0.5)
                log.exception("alert runner step failed; retrying in %.1fs", backoff)
                self._stop.wait(backoff)
                continue
            if n == 0:
                self._wake.wait(self.settings.poll_interval)
                self._wake.clear()

    # -- one pass ------------------------------------------------------------------------

    def step(self, now_ns: int | None = None) -> int:
        """Evaluate what was committed since the last pass (up to ``batch_events`` per
        tenant), tick and save when due. The number of log entries consumed."""
        if not self._started:
            self.open()
        mono = time.monotonic()
        if mono >= self._next_rules:
            self._next_rules = mono + self.settings.rules_interval
            self._reload()
        consumed = 0
        heads = self.ledger.tenants()
        for head in heads:
            try:
                consumed += self._consume(head)
            except Exception:
                # its engine may have seen events whose alerts were not stored: forget it and
                # let the next pass restore the last snapshot and replay
                log.exception("alert runner failed on tenant %s; replaying from its last saved cursor", head.tenant)
                self.tenants.pop(head.tenant, None)
        if now_ns is not None or mono >= self._next_tick:
            self._next_tick = mono + self.settings.tick_interval
            self._tick(heads, now_ns if now_ns is not None else self.clock())
        self._save(force=False)
        return consumed

    def _state(self, head: Head) -> _Tenant:
        st = self.tenants.get(head.tenant)
        if st is not None:
            return st
        position, data = self.store.cursor(CURSOR, head.tenant_id)
        rules = self.catalog.rules_for(head.tenant)
        engine = Engine(rules, clock=self.clock)
        if data:
            try:
                engine = Engine.restore(rules, data, clock=self.clock)
            except (ValueError, msgspec.DecodeError):
                log.warning("saved alert state of tenant %s is unreadable; its windows start empty", head.tenant)
        st = _Tenant(head.tenant, head.tenant_id, engine, position, saved_at=time.monotonic())
        self.tenants[head.tenant] = st
        return st

    def _consume(self, head: Head) -> int:
        st = self._state(head)
        if st.position >= head.size:
            return 0
        end = min(head.size, st.position + self.settings.batch_events)
        alerts: list[Alert] = []
        process = st.engine.process
        # A tenant without rules (the common case) costs one small decode per event, not
        # the opening of the whole event: the runner shares two cores with ingest.
        idle = st.engine.idle
        n = read = 0
        last = st.position - 1
        for entry in self.store.entries(head.tenant_id, st.position, end):
            read += 1
            last = entry.index
            if not entry.leaf:  # expired under retention before the runner reached it
                continue
            if idle:
                c = _times(entry)
                if not is_own_event(str(c.action)):
                    st.engine.observe(head.tenant, event_time_ns({"time": c.time, "received_at": c.received_at}))
                    n += 1
                continue
            event = open_leaf(entry)
            if is_own_event(str(event.get("action", ""))):
                continue
            alerts.extend(process(head.tenant, entry.index, event))
            n += 1
        if not read:
            return 0
        if alerts:
            self._emit(alerts)
        st.position = last + 1
        st.dirty = True
        self.events += n
        return read

    def _emit(self, alerts: list[Alert]) -> None:
        done = self.book.record(alerts, self.notifications.routes)
        self.alerts += len(done.new)
        for rec in done.new:
            self._newest_created = max(self._newest_created, parse_rfc3339(rec.created))
            log.info("alert %s: %s (rule %s, tenant %s)", rec.id, rec.title, rec.rule_id, rec.tenant)
        try:
            # not waited for here (the writer may be busy with ingest): the cursor is saved
            # only once they are durable, see _save
            self._fired.extend(self.book.log_fired(done.stored))
        except AuditkeepError as exc:  # a refused event, or a closed or failing store, must not stop the runner
            log.error("fired events not appended: %s", exc)
        self.notifications.submit(done.deliveries)

    def _tick(self, heads: list[Head], now_ns: int) -> None:
        sizes = {h.tenant: h.size for h in heads}
        for st in list(self.tenants.values()):
            # a tenant still catching up would see silence that is only a backlog
            if st.position < sizes.get(st.name, 0):
                continue
            alerts = st.engine.tick(now_ns)
            if alerts:
                self._emit(alerts)
                st.dirty = True

    def _save(self, force: bool) -> None:
        mono = time.monotonic()
        due = [st for st in self.tenants.values() if st.dirty and (force or mono - st.saved_at >= self.settings.save_interval)]
        if not due:
            return
        self._settle_fired()
        self._settle_deliveries()
        for st in due:
            self.store.set_cursor(CURSOR, st.tenant_id, st.position, st.engine.snapshot())
            st.dirty = False
            st.saved_at = mono

    def _settle_deliveries(self) -> None:
        """Move the watermark below which every alert has an outcome for each of its routes
        (what a restart need not look at again)."""
        oldest = self.notifications.oldest_in_flight()
        mark = oldest if oldest is not None else self._newest_created + 1
        if mark > self._settled:
            self.book.settle(mark)
            self._settled = mark

    def flush(self) -> None:
        """Wait until the fired events submitted so far are in the log."""
        self._settle_fired()

    def _settle_fired(self) -> None:
        """Wait until the fired events submitted so far are durable: a cursor saved past an
        alert whose event was lost in a crash would never append it again."""
        pending, self._fired = self._fired, []
        for fut in pending:
            try:
                fut.result(timeout=120)
            except Exception as exc:  # refused or the ledger is closing: say so, keep going
                log.error("fired events not appended: %s", exc)

    def _reload(self) -> None:
        self.catalog.refresh()
        if self.catalog.generation != self._generation:
            self._generation = self.catalog.generation
            for st in self.tenants.values():
                st.engine.replace_rules(self.catalog.rules_for(st.name))
                st.dirty = True
        token = self.store.meta(REQUEUE_META)
        if token != self._requeue:
            self._requeue = token
            self.notifications.submit(self.book.pending())

    def status(self) -> dict[str, Any]:
        return {
            "running": self._thread is not None,
            "events": self.events,
            "alerts": self.alerts,
            "tenants": {st.name: st.position for st in self.tenants.values()},
            "deliveries_in_flight": self.notifications.in_flight(),
        }
