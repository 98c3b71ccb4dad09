"""Routes alerts to notifiers without ever blocking the engine.

Each notifier has its own bounded queue and worker task, so a slow or failing mail server
delays only its own deliveries. :meth:`Dispatcher.submit` only enqueues; when a queue is
full the alert goes straight to the dead-letter store rather than waiting.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterable

from auditkeep.alerts.model import Alert
from auditkeep.alerts.notify.base import (
    DeadLetter,
    DeadLetterStore,
    InMemoryDeadLetters,
    Notifier,
    RetryPolicy,
    deliver,
)

log = logging.getLogger(__name__)


class Dispatcher:
    """``notifiers`` by name; an alert goes to the notifiers its rule names
    (``alert.notify``), or to ``default`` when it names none. Use it inside a running
    event loop: ``async with Dispatcher(...) as d: d.submit(alerts)``. ``submit`` may also
    be called from another thread (the one running the engine)."""

    def __init__(
        self,
        notifiers: Iterable[Notifier],
        *,
        default: Iterable[str] = (),
        dead_letters: DeadLetterStore | None = None,
        retry: RetryPolicy | None = None,
        queue_size: int = 10_000,
    ) -> None:
        self.notifiers = {n.name: n for n in notifiers}
        self.default = list(default)
        for name in self.default:
            if name not in self.notifiers:
                raise ValueError(f"default notifier {name!r} is not configured")
        self.dead_letters: DeadLetterStore = dead_letters if dead_letters is not None else InMemoryDeadLetters()
        self.retry = retry or RetryPolicy()
        self.queue_size = queue_size
        self.delivered = 0
        self._queues: dict[str, asyncio.Queue[Alert]] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        for name, n in self.notifiers.items():
            q: asyncio.Queue[Alert] = asyncio.Queue(self.queue_size)
            self._queues[name] = q
            self._workers.append(asyncio.create_task(self._work(n, q), name=f"notify-{name}"))

    async def __aenter__(self) -> Dispatcher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def routes(self, alert: Alert) -> list[str]:
        return list(dict.fromkeys(alert.notify or self.default))

    def submit(self, alerts: Iterable[Alert]) -> None:
        """Queue alerts for delivery; returns at once."""
        batch = list(alerts)
        if not batch:
            return
        if self._loop is None:
            raise RuntimeError("the dispatcher is not started")
        if threading.get_ident() == self._thread:
            self._enqueue(batch)
        else:
            self._loop.call_soon_threadsafe(self._enqueue, batch)

    def _enqueue(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            for name in self.routes(alert):
                q = self._queues.get(name)
                if q is None:
                    self._dead(name, alert, f"no notifier named {name!r} is configured")
                    continue
                try:
                    q.put_nowait(alert)
                except asyncio.QueueFull:
                    self._dead(name, alert, "queue full: the notifier is not keeping up")

    def _dead(self, name: str, alert: Alert, error: str) -> None:
        log.warning("alert %s not delivered to %s: %s", alert.id, name, error)
        self.dead_letters.put(DeadLetter(notifier=name, alert=alert, attempts=0, error=error, time=time.time_ns()))

    async def _work(self, notifier: Notifier, q: asyncio.Queue[Alert]) -> None:
        while True:
            alert = await q.get()
            try:
                if await deliver(notifier, alert, self.retry, self.dead_letters):
                    self.delivered += 1
            finally:
                q.task_done()

    async def drain(self) -> None:
        """Wait until every queued alert was delivered or dead-lettered."""
        await asyncio.gather(*(q.join() for q in self._queues.values()))

    async def aclose(self, drain: bool = True) -> None:
        if drain:
            await self.drain()
        for w in self._workers:
            w.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers.clear()
        for n in self.notifiers.values():
            close = getattr(n, "aclose", None)
            if close is not None:
                await close()
