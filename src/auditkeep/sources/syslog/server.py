"""asyncio syslog receivers: UDP (RFC 5426), TCP (RFC 6587) and TLS (RFC 5425).

Every message is parsed and mapped where it arrives, then waits in one bounded buffer that a
single task drains to the ``sink`` in batches (by size, or after ``batch_interval``).
When the buffer is full, TCP and TLS connections stop being read (the senders' own buffers
and TCP flow control hold the rest: nothing is lost), while UDP datagrams, which cannot be
held back, are dropped and counted: :meth:`SyslogServers.take_dropped` gives the count for a
``source.dropped`` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import tzinfo
from urllib.parse import urlsplit

from auditkeep.model import DEFAULT_LIMITS, Event, Limits
from auditkeep.sources.base import SourceError
from auditkeep.sources.syslog.framing import DEFAULT_MAX_SIZE, Deframer
from auditkeep.sources.syslog.mapping import map_syslog
from auditkeep.sources.syslog.message import SOURCE
from auditkeep.sources.syslog.parse import parse_syslog

log = logging.getLogger(__name__)

Sink = Callable[[list[Event], list[SourceError]], Awaitable[None]]
Item = Event | SourceError


@dataclass(frozen=True)
class Listener:
    """One bound socket: ``scheme`` (udp, tcp, tls), host and the actual port."""

    scheme: str
    host: str
    port: int


class _Decoder:
    """Bytes of one message -> Event or SourceError, with the server's options."""

    def __init__(self, limits: Limits, tz: tzinfo | None, max_size: int, validate: bool) -> None:
        self.limits = limits
        self.tz = tz
        self.max_size = max_size
        self.validate = validate

    def decode(self, data: bytes, peer: str | None, received_ns: int) -> Item:
        if len(data) > self.max_size:
            return SourceError(
                SOURCE,
                f"message of {len(data)} bytes exceeds the limit of {self.max_size}",
                data[: self.max_size],
            )
        try:
            msg = parse_syslog(data, received_ns, self.tz)
            return map_syslog(
                msg, peer=peer, received_ns=received_ns, limits=self.limits, validate=self.validate
            )
        except SourceError as err:
            return err


class _Buffer:
    """The bounded buffer between receivers and the batching task."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.items: deque[Item] = deque()
        self.ready = asyncio.Event()
        self.dropped = 0
        self.paused: set[asyncio.Transport] = set()

    def offer(self, items: list[Item]) -> None:
        """For datagrams: keep what fits, count the rest as dropped."""
        room = self.capacity - len(self.items)
        if room < len(items):
            self.dropped += len(items) - max(room, 0)
            items = items[: max(room, 0)]
        if items:
            self.items.extend(items)
            self.ready.set()

    def push(self, items: list[Item], transport: asyncio.Transport) -> None:
        """For streams: keep everything, and stop reading the stream while full."""
        if items:
            self.items.extend(items)
            self.ready.set()
        if len(self.items) >= self.capacity and transport not in self.paused:
            self.paused.add(transport)
            transport.pause_reading()

    def take(self, n: int) -> list[Item]:
        items = self.items
        k = min(n, len(items))
        out = [items.popleft() for _ in range(k)]
        if not items:
            self.ready.clear()
        if self.paused and len(items) < self.capacity // 2:
            for t in self.paused:
                if not t.is_closing():
                    t.resume_reading()
            self.paused.clear()
        return out

    def forget(self, transport: asyncio.Transport) -> None:
        self.paused.discard(transport)


class _StreamProtocol(asyncio.Protocol):
    def __init__(self, servers: SyslogServers) -> None:
        self.servers = servers
        self.deframer = Deframer(servers.max_message_size)
        self.transport: asyncio.Transport | None = None
        self.peer: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.peer = _peer(transport.get_extra_info("peername"))
        self.servers._connections.add(transport)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self._deliver(self.deframer.feed(data))
        if self.deframer.broken:
            self.transport.close()

    def eof_received(self) -> bool | None:
        self._deliver(self.deframer.close())
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self._deliver(self.deframer.close())
            self.servers._connections.discard(self.transport)
            self.servers._buffer.forget(self.transport)

    def _deliver(self, frames: list[bytes | SourceError]) -> None:
        if not frames or self.transport is None:
            return
        now = time.time_ns()
        dec = self.servers._decoder
        items = [f if isinstance(f, SourceError) else dec.decode(f, self.peer, now) for f in frames]
        self.servers.received += len(items)
        self.servers._buffer.push(items, self.transport)


class _DatagramProtocol(asyncio.DatagramProtocol):
    def __init__(self, servers: SyslogServers) -> None:
        self.servers = servers

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if not data.strip(b"\r\n\x00 "):
            return
        item = self.servers._decoder.decode(data, _peer(addr), time.time_ns())
        self.servers.received += 1
        self.servers._buffer.offer([item])

    def error_received(self, exc: Exception) -> None:
        log.warning("syslog UDP receive error: %s", exc)


def _peer(addr: object) -> str | None:
    if isinstance(addr, tuple) and len(addr) >= 2:
        host, port = addr[0], addr[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return None


class SyslogServers:
    """Running syslog listeners; create with :func:`start_syslog_servers`."""

    def __init__(
        self,
        sink: Sink,
        *,
        max_message_size: int,
        batch_size: int,
        batch_interval: float,
        queue_size: int,
        limits: Limits,
        tz: tzinfo | None,
        validate: bool = True,
    ) -> None:
        self.sink = sink
        self.max_message_size = max_message_size
        self.batch_size = batch_size
        self.batch_interval = batch_interval
        self.listeners: list[Listener] = []
        self.received = 0
        """Messages received (parsed or not)."""
        self.delivered = 0
        """Messages handed to the sink."""
        self._decoder = _Decoder(limits, tz, max_message_size, validate)
        self._buffer = _Buffer(queue_size)
        self._servers: list[asyncio.Server] = []
        self._datagrams: list[asyncio.DatagramTransport] = []
        self._connections: set[asyncio.Transport] = set()
        self._dropped_taken = 0
        self._closing = False
        self._in_flight = 0  # messages in the batch the sink is being given
        self._batcher: asyncio.Task[None] | None = None

    @property
    def dropped(self) -> int:
        """UDP messages dropped because the buffer was full, in total."""
        return self._buffer.dropped

    def take_dropped(self) -> int:
        """Messages dropped since the last call: the count for a ``source.dropped`` event."""
        total = self._buffer.dropped
        n = total - self._dropped_taken
        self._dropped_taken = total
        return n

    async def __aenter__(self) -> SyslogServers:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self, timeout: float = 10.0) -> None:
        """Stop listening, close connections (their last messages are kept), and hand
        everything buffered to the sink before returning."""
        if self._closing:
            return
        self._closing = True
        for srv in self._servers:
            srv.close()
        for t in list(self._connections):
            t.close()
        for d in self._datagrams:
            d.close()
        for srv in self._servers:
            await srv.wait_closed()
        # Let the connections finish closing (a TLS close is a short exchange), then cut
        # any peer that does not answer.
        deadline = time.monotonic() + min(timeout, 2.0)
        while self._connections and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for t in list(self._connections):
            t.abort()
        await asyncio.sleep(0)
        self._buffer.ready.set()
        if self._batcher is not None:
            try:
                await asyncio.wait_for(self._batcher, timeout)
            except TimeoutError:
                left = len(self._buffer.items) + self._in_flight
                log.error("syslog: the sink did not take the last %d messages", left)
                self._buffer.dropped += left

    async def _run_batches(self) -> None:
        buf = self._buffer
        while True:
            if not buf.items:
                if self._closing:
                    return
                await buf.ready.wait()
                continue
            if len(buf.items) < self.batch_size and not self._closing:
                # Give a batch the chance to fill, but never hold a message long.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._until_full(), self.batch_interval)
            items = buf.take(self.batch_size)
            events = [i for i in items if isinstance(i, Event)]
            errors = [i for i in items if isinstance(i, SourceError)]
            self._in_flight = len(items)
            await self._send(events, errors)
            self._in_flight = 0
            self.delivered += len(items)

    async def _until_full(self) -> None:
        buf = self._buffer
        while len(buf.items) < self.batch_size and not self._closing:
            buf.ready.clear()
            await buf.ready.wait()

    async def _send(self, events: list[Event], errors: list[SourceError]) -> None:
        delay = 0.05
        while True:
            try:
                await self.sink(events, errors)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                # The ledger may push back (overload); the batch is retried, never dropped.
                log.exception("syslog: sink failed; retrying in %.2fs", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)


def server_ssl_context(
    cert: str | os.PathLike[str],
    key: str | os.PathLike[str],
    client_ca: str | os.PathLike[str] | None = None,
) -> ssl.SSLContext:
    """A TLS server context from PEM files; with ``client_ca``, clients must present a
    certificate it signed."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    if client_ca is not None:
        ctx.load_verify_locations(client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


async def start_syslog_servers(
    urls: list[str],
    sink: Sink,
    tls_cert: str | os.PathLike[str] | None = None,
    tls_key: str | os.PathLike[str] | None = None,
    *,
    tls_client_ca: str | os.PathLike[str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    max_message_size: int = DEFAULT_MAX_SIZE,
    batch_size: int = 1000,
    batch_interval: float = 0.2,
    queue_size: int = 100_000,
    limits: Limits = DEFAULT_LIMITS,
    tz: tzinfo | None = None,
    validate: bool = True,
) -> SyslogServers:
    """Listen on every URL (``udp://host:port``, ``tcp://host:port``, ``tls://host:port``;
    port 0 picks a free one, see :attr:`SyslogServers.listeners`) and deliver to ``sink``.

    TLS needs ``tls_cert`` and ``tls_key`` (PEM paths) or a ready ``ssl_context``;
    ``tls_client_ca`` requires client certificates. ``tz`` is the zone of timestamps
    written without an offset (BSD syslog); UTC by default. ``validate`` is
    :func:`.mapping.map_syslog`'s. ``ValueError`` for a bad URL.
    """
    parsed = []
    for url in urls:
        u = urlsplit(url)
        if u.scheme not in ("udp", "tcp", "tls") or u.hostname is None or u.port is None:
            raise ValueError(f"not a syslog listen URL (udp|tcp|tls://host:port): {url!r}")
        parsed.append((u.scheme, u.hostname, u.port))
    if any(s == "tls" for s, _, _ in parsed) and ssl_context is None:
        if tls_cert is None or tls_key is None:
            raise ValueError("a tls:// listener needs tls_cert and tls_key")
        ssl_context = server_ssl_context(tls_cert, tls_key, tls_client_ca)

    servers = SyslogServers(
        sink,
        max_message_size=max_message_size,
        batch_size=batch_size,
        batch_interval=batch_interval,
        queue_size=queue_size,
        limits=limits,
        tz=tz,
        validate=validate,
    )
    loop = asyncio.get_running_loop()
    try:
        for scheme, host, port in parsed:
            if scheme == "udp":
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _DatagramProtocol(servers), local_addr=(host, port)
                )
                servers._datagrams.append(transport)
                bound = transport.get_extra_info("sockname")
                servers.listeners.append(Listener(scheme, host, int(bound[1])))
            else:
                srv = await loop.create_server(
                    lambda: _StreamProtocol(servers),
                    host,
                    port,
                    ssl=ssl_context if scheme == "tls" else None,
                )
                servers._servers.append(srv)
                for sock in srv.sockets:
                    servers.listeners.append(Listener(scheme, host, int(sock.getsockname()[1])))
    except BaseException:
        await servers.close()
        raise
    servers._batcher = asyncio.create_task(servers._run_batches(), name="syslog-batches")
    return servers
