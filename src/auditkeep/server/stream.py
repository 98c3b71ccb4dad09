"""The live tail: Server-Sent Events of committed events, read from the log by index.

A stream never holds events in memory beyond one chunk: it remembers only the next index to
send, reads the log from there whenever the ledger reports a commit, and sends as fast as
the client reads. So a reconnect resumes exactly (``Last-Event-ID`` is the last index sent),
a burst of commits cannot grow memory, and a client that stops reading is disconnected after
``send_timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from auditkeep.ledger.ledger import Ledger, NotFound, Record
from auditkeep.server.matcher import Matcher
from auditkeep.server.metrics import Metrics

log = logging.getLogger("auditkeep.server.stream")

CHUNK = 500
# A scope extension through which the server's protocol lets a response drop its connection.
ABORT_EXTENSION = "auditkeep.abort"
_encode = msgspec.json.Encoder()


# Seconds between checks of the keys of open streams: a revoked or expired key's live tail
# ends within this (plus one store read).
KEY_CHECK_INTERVAL = 0.5


class Hub:
    """Wakes the streams of a tenant when the ledger commits to it (the ledger calls
    :meth:`committed` in its writer thread; the wake-up hops to the event loop), and ends the
    streams whose key was revoked or expired (``key_status(keyid)`` gives the reason)."""

    def __init__(self, key_status: Callable[[str], str | None] | None = None) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: dict[int | None, set[asyncio.Event]] = {}
        self._by_key: dict[str, set[EventStream]] = {}
        self._key_status = key_status
        self._key_task: asyncio.Task[None] | None = None
        self.closing = False

    def attach(self, ledger: Ledger, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        ledger.on_commit(self.committed)
        if self._key_status is not None:
            self._key_task = loop.create_task(self._check_keys())

    def watch(self, keyid: str, stream: EventStream) -> None:
        self._by_key.setdefault(keyid, set()).add(stream)

    def unwatch(self, keyid: str, stream: EventStream) -> None:
        group = self._by_key.get(keyid)
        if group is not None:
            group.discard(stream)
            if not group:
                del self._by_key[keyid]

    async def _check_keys(self) -> None:
        """One store read per distinct key of the open streams, every KEY_CHECK_INTERVAL."""
        assert self._key_status is not None
        status = self._key_status
        while not self.closing:
            await asyncio.sleep(KEY_CHECK_INTERVAL)
            keyids = list(self._by_key)
            if not keyids:
                continue
            try:
                reasons = await run_in_threadpool(_statuses, status, keyids)
            except Exception as exc:  # the store is unreachable: keep the streams, retry
                log.warning("live tail: cannot check keys: %s", exc)
                continue
            for keyid, reason in reasons.items():
                if reason is not None:
                    for stream in list(self._by_key.get(keyid, ())):
                        stream.end(reason)

    def committed(self, tenant_ids: set[int]) -> None:
        loop = self._loop
        if loop is None or not tenant_ids:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closing: nobody is listening
            loop.call_soon_threadsafe(self._wake, tenant_ids)

    def _wake(self, tenant_ids: set[int]) -> None:
        for tid in (*tenant_ids, None):
            for ev in self._waiters.get(tid, ()):
                ev.set()

    def add(self, tid: int | None, ev: asyncio.Event) -> None:
        self._waiters.setdefault(tid, set()).add(ev)

    def remove(self, tid: int | None, ev: asyncio.Event) -> None:
        group = self._waiters.get(tid)
        if group is not None:
            group.discard(ev)
            if not group:
                del self._waiters[tid]

    def close_threadsafe(self) -> None:
        """:meth:`close`, from a signal handler or another thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.close)

    def close(self) -> None:
        """Server shutdown: end every stream so the server can stop."""
        self.closing = True
        if self._key_task is not None:
            self._key_task.cancel()
        for group in list(self._waiters.values()):
            for ev in group:
                ev.set()


class EventStream:
    """The ASGI response of one live-tail connection."""

    def __init__(
        self,
        ledger: Ledger,
        hub: Hub,
        metrics: Metrics,
        tenant: str,
        start: int | None,
        match: Matcher,
        heartbeat: float,
        send_timeout: float,
        keyid: str | None = None,
    ) -> None:
        self.ledger = ledger
        self.keyid = keyid
        self.hub = hub
        self.metrics = metrics
        self.tenant = tenant
        self.next = start
        self.match = match
        self.heartbeat = heartbeat
        self.send_timeout = send_timeout
        self.wake = asyncio.Event()
        self.stopped = False
        self.ended: str | None = None  # why the server ended the stream (the key was revoked, ...)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        watcher = asyncio.create_task(self._watch(receive))
        self.metrics.sse_clients.inc()
        tid: int | None = None
        if self.keyid is not None:
            self.hub.watch(self.keyid, self)
        try:
            tid = await self._tenant_id()
            if tid is None and self.next is None:
                self.next = 0  # the log does not exist yet: everything it will hold is new
            self.hub.add(tid, self.wake)
            await self._send(send, b"retry: 2000\n\n")
            while not self.done():
                self.wake.clear()
                if tid is None:
                    tid = await self._tenant_id()
                    if tid is not None:
                        self.hub.remove(None, self.wake)
                        self.hub.add(tid, self.wake)
                if tid is not None and not await self._catch_up(send):
                    await self._drop(scope)
                    return
                if self.done():
                    break
                try:
                    await asyncio.wait_for(self.wake.wait(), self.heartbeat)
                except TimeoutError:
                    if not await self._send(send, b": heartbeat\n\n"):
                        await self._drop(scope)
                        return
            if self.ended is not None:
                await self._send(send, b"event: error\ndata: %s\n\n" % _encode.encode({"error": self.ended}))
            await self._finish(send)
        finally:
            if self.keyid is not None:
                self.hub.unwatch(self.keyid, self)
            self.hub.remove(tid, self.wake)
            self.metrics.sse_clients.dec()
            watcher.cancel()

    def done(self) -> bool:
        return self.stopped or self.ended is not None or self.hub.closing

    def end(self, reason: str) -> None:
        """End the stream (in the event loop): it sends ``reason`` as an ``error`` event."""
        if self.ended is None:
            self.ended = reason
            log.info("live tail of %s ended: %s", self.tenant, reason)
            self.wake.set()

    async def _tenant_id(self) -> int | None:
        try:
            return await run_in_threadpool(self.ledger.tenant_id, self.tenant)
        except NotFound:
            return None

    async def _catch_up(self, send: Send) -> bool:
        """Send every matching entry from ``next`` up to the committed head."""
        size = (await run_in_threadpool(self.ledger.head, self.tenant)).size
        if self.next is None:
            self.next = size  # no resume point: only what is committed from now on
        while self.next < size and not self.done():
            end = min(size, self.next + CHUNK)
            records: list[Record] = await run_in_threadpool(self.ledger.records, self.next, end, self.tenant)
            if not records:
                break
            parts = [_frame(r) for r in records if self.match(r)]
            self.next = records[-1].index + 1
            if parts and not await self._send(send, b"".join(parts)):
                return False
            self.metrics.sse_events.inc(len(parts))
        return True

    async def _send(self, send: Send, data: bytes) -> bool:
        try:
            await asyncio.wait_for(
                send({"type": "http.response.body", "body": data, "more_body": True}), self.send_timeout
            )
        except TimeoutError:
            self.metrics.sse_dropped.labels("slow").inc()
            log.info("live tail of %s: client too slow, disconnecting", self.tenant)
            self.stopped = True
            return False
        except OSError:
            self.stopped = True
            return False
        return True

    async def _drop(self, scope: Scope) -> None:
        """Close the connection of a client that stopped reading (when the server can)."""
        abort = scope.get("extensions", {}).get(ABORT_EXTENSION, {}).get("abort")
        if abort is not None:
            abort()
            await asyncio.sleep(0)  # let the protocol see the connection go before we return

    async def _finish(self, send: Send) -> None:
        with contextlib.suppress(TimeoutError, OSError):
            await asyncio.wait_for(send({"type": "http.response.body", "body": b"", "more_body": False}), 1.0)

    async def _watch(self, receive: Receive) -> None:
        while True:
            message: dict[str, Any] = dict(await receive())
            if message["type"] == "http.disconnect":
                self.stopped = True
                self.wake.set()
                return


def _statuses(status: Callable[[str], str | None], keyids: list[str]) -> dict[str, str | None]:
    return {k: status(k) for k in keyids}


def _frame(rec: Record) -> bytes:
    return b"id: %d\ndata: %s\n\n" % (rec.index, _encode.encode(rec))
