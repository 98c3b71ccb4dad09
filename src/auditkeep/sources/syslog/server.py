"""asyncio syslog receivers: UDP (RFC 5426), TCP (RFC 6587) and TLS (RFC 5425).

Every message is parsed and mapped where it arrives, then waits in one bounded buffer that a
single task drains to the ``sink`` in batches (by size, or after ``batch_interval``).
When the buffer is full, TCP and TLS connections stop being read (the senders' own buffers
and TCP flow control hold the rest: nothing is lost), while UDP datagrams, which cannot be
held back, are dropped and counted. Datagrams the kernel dropped because the socket's
receive buffer was full are counted too (see :mod:`.udp`), and so are messages cut at
shutdown: :meth:`SyslogServers.take_lost` gives the counts, by cause, for
``source.dropped`` events.

At shutdown a stream is not simply closed: a sender that writes while the server closes
would lose what it wrote last, believing it sent. Each connection's sending side is ended
first (a FIN, under the TLS layer for TLS), and the connection is read until the sender
closes it: rsyslog and syslog-ng see the end of the stream before their next write, and
send that message on a new connection instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import tzinfo
from typing import cast
from urllib.parse import urlsplit

from auditkeep.model import DEFAULT_LIMITS, Event, Limits
from auditkeep.sources.base import SourceError
from auditkeep.sources.syslog.framing import DEFAULT_MAX_SIZE, Deframer
from auditkeep.sources.syslog.mapping import finely_timed, map_syslog, message_id
from auditkeep.sources.syslog.message import SOURCE
from auditkeep.sources.syslog.parse import parse_syslog
from auditkeep.sources.syslog.udp import DEFAULT_RECEIVE_BUFFER, UdpSocket

log = logging.getLogger(__name__)

Sink = Callable[[list[Event], list[SourceError]], Awaitable[None]]
Item = Event | SourceError

# Why messages were lost, for the ``source.dropped`` events: cause -> what it means.
LOSS_CAUSES = {
    "kernel": "UDP datagrams dropped by the kernel: the socket's receive buffer was full",
    "queue": "UDP messages dropped: the syslog receive queue was full",
    "shutdown": "syslog messages cut at shutdown (a sender still writing when time ran out)",
}
# At shutdown a stream is read until its sender closes it, while data keeps coming: a
# sender silent for DRAIN_IDLE seconds, or still writing after DRAIN_MAX, is cut.
DRAIN_IDLE = 2.0
DRAIN_MAX = 30.0


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

    def decode(self, data: bytes, peer: str | None, received_ns: int, stream: bool = False) -> Item:
        """``stream``: the message came over TCP or TLS, where a sender may write it twice
        (rsyslog resends its last message after a reconnect, and may write it twice on
        the new connection). A finely timed message from a stream gets an id derived from
        its bytes and the sender's address, so the copies are stored once; datagrams (never
        resent) get fresh ids."""
        if len(data) > self.max_size:
            return SourceError(
                SOURCE,
                f"message of {len(data)} bytes exceeds the limit of {self.max_size}",
                data[: self.max_size],
            )
        try:
            msg = parse_syslog(data, received_ns, self.tz)
            ev = map_syslog(
                msg, peer=peer, received_ns=received_ns, limits=self.limits, validate=self.validate
            )
        except SourceError as err:
            return err
        if stream and finely_timed(msg):
            ev.id = message_id(msg, peer)
        return ev


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
            now = time.monotonic()
            for t in self.paused:
                if not t.is_closing():
                    t.resume_reading()
                    proto = t.get_protocol()
                    if isinstance(proto, _StreamProtocol):
                        proto.last_data = now  # its silence was ours
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
        self.cut = False  # closed by the server at shutdown: what is left is lost
        self.last_data = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports have the interface without being asyncio.Transport)
        self.transport = cast(asyncio.Transport, transport)
        self.peer = _peer(transport.get_extra_info("peername"))
        self.servers._streams[self.transport] = self
        if self.servers._closing:  # accepted just before the listener closed
            self.end_sending()

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.last_data = time.monotonic()
        self._deliver(self.deframer.feed(data))
        if self.deframer.broken:
            self.transport.close()

    def eof_received(self) -> bool | None:
        self._deliver(self.deframer.close())
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is None:
            return
        if self.cut:
            if self.deframer.pending:
                self.servers._cut += 1
        else:
            self._deliver(self.deframer.close())
        self.servers._streams.pop(self.transport, None)
        self.servers._buffer.forget(self.transport)
        if not self.servers._streams:
            self.servers._streams_gone.set()

    def end_sending(self) -> None:
        """Tell the sender the stream ends (FIN), and go on reading until it closes. For
        TLS the FIN goes under the TLS layer, without a close_notify: a sender that does
        not read (rsyslog, syslog-ng) sees a plain end of stream before its next write."""
        assert self.transport is not None
        sock = self.transport.get_extra_info("socket")
        try:
            if sock is not None:
                # on a duplicate of the descriptor: the loop's socket object (asyncio's or
                # uvloop's) may not offer shutdown; the connection is the same
                with socket.socket(fileno=os.dup(sock.fileno())) as dup:
                    dup.shutdown(socket.SHUT_WR)
            elif self.transport.can_write_eof():
                self.transport.write_eof()
        except OSError:  # already gone
            pass
        self.last_data = time.monotonic()
        self.transport.resume_reading()
        self.servers._buffer.forget(self.transport)

    def abort(self) -> None:
        """Out of time: what the sender has not finished is lost (and counted)."""
        assert self.transport is not None
        self.cut = True
        self.transport.abort()

    def _deliver(self, frames: list[bytes | SourceError]) -> None:
        if not frames or self.transport is None:
            return
        now = time.time_ns()
        dec = self.servers._decoder
        items = [f if isinstance(f, SourceError) else dec.decode(f, self.peer, now, True) for f in frames]
        self.servers.received += len(items)
        self.servers._buffer.push(items, self.transport)


def _peer(addr: object) -> str | None:
    """The sender's IP address (not its port, which changes with each connection)."""
    if isinstance(addr, tuple) and len(addr) >= 2:
        return str(addr[0])
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
        self._udp: list[UdpSocket] = []
        self._streams: dict[asyncio.Transport, _StreamProtocol] = {}
        self._streams_gone = asyncio.Event()
        self._cut = 0  # messages cut at shutdown
        self._lost_taken: dict[str, int] = {}
        self._lost_lock = threading.Lock()  # take_lost is called from worker threads
        self._closing = False  # no new connections; streams are being drained
        self._drained = False  # every stream has ended: the batcher may stop when empty
        self._in_flight = 0  # messages in the batch the sink is being given
        self._batcher: asyncio.Task[None] | None = None

    def _datagram(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if not data.strip(b"\r\n\x00 "):
            return
        item = self._decoder.decode(data, _peer(addr), time.time_ns())
        self.received += 1
        self._buffer.offer([item])

    def lost(self) -> dict[str, int]:
        """Messages lost so far, by cause (:data:`LOSS_CAUSES`): datagrams the kernel
        dropped, datagrams that found the queue full, messages cut at shutdown."""
        return {
            "kernel": sum(u.poll_drops() for u in self._udp),
            "queue": self._buffer.dropped,
            "shutdown": self._cut,
        }

    @property
    def dropped(self) -> int:
        """Messages lost, in total (every cause)."""
        return sum(self.lost().values())

    def take_lost(self) -> dict[str, int]:
        """Messages lost since the last call, by cause (only causes with a loss): the
        counts for ``source.dropped`` events."""
        out: dict[str, int] = {}
        with self._lost_lock:
            for cause, total in self.lost().items():
                n = total - self._lost_taken.get(cause, 0)
                if n > 0:
                    out[cause] = n
                    self._lost_taken[cause] = total
        return out

    def take_dropped(self) -> int:
        """Messages lost since the last call, every cause together."""
        return sum(self.take_lost().values())

    async def __aenter__(self) -> SyslogServers:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self, timeout: float = 10.0, drain_idle: float = DRAIN_IDLE) -> None:
        """Stop listening; read what UDP sockets hold; end each stream's sending side and
        read it until the sender closes it (a stream silent for ``drain_idle`` seconds, or
        still written after 30 s, is cut, and a message it left unfinished counted; a
        stream held back by a full queue is not silent); and hand everything
        buffered to the sink before returning (or ``timeout`` has passed; what was left is
        then counted as lost)."""
        if self._closing:
            return
        self._closing = True
        for srv in self._servers:
            srv.close()
        for u in self._udp:
            u.close()
        for proto in list(self._streams.values()):
            proto.end_sending()
        await self._drain_streams(min(timeout, drain_idle), DRAIN_MAX)
        for srv in self._servers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(srv.wait_closed(), 1.0)
        await asyncio.sleep(0)
        self._drained = True
        self._buffer.ready.set()
        if self._batcher is not None:
            try:
                await asyncio.wait_for(self._batcher, timeout)
            except TimeoutError:
                left = len(self._buffer.items) + self._in_flight
                log.error("syslog: the sink did not take the last %d messages", left)
                self._cut += left

    async def _drain_streams(self, idle: float, longest: float) -> None:
        """Wait for the senders to close their streams; cut a stream silent for ``idle``
        seconds, and every stream left after ``longest``."""
        give_up = time.monotonic() + longest
        while self._streams:
            self._streams_gone.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._streams_gone.wait(), 0.1)
            now = time.monotonic()
            paused = self._buffer.paused  # held back by us (a slow sink), not silent
            for transport, proto in list(self._streams.items()):
                if now >= give_up or (now - proto.last_data >= idle and transport not in paused):
                    proto.abort()
            await asyncio.sleep(0)

    async def _run_batches(self) -> None:
        buf = self._buffer
        while True:
            if not buf.items:
                if self._drained:
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
    udp_receive_buffer: int = DEFAULT_RECEIVE_BUFFER,
) -> SyslogServers:
    """Listen on every URL (``udp://host:port``, ``tcp://host:port``, ``tls://host:port``;
    port 0 picks a free one, see :attr:`SyslogServers.listeners`) and deliver to ``sink``.

    TLS needs ``tls_cert`` and ``tls_key`` (PEM paths) or a ready ``ssl_context``;
    ``tls_client_ca`` requires client certificates. ``tz`` is the zone of timestamps
    written without an offset (BSD syslog); UTC by default. ``validate`` is
    :func:`.mapping.map_syslog`'s. ``udp_receive_buffer`` is the receive buffer asked for
    each UDP socket (see :func:`.udp.set_receive_buffer`). ``ValueError`` for a bad URL.
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
                udp = UdpSocket(host, port, servers._datagram, udp_receive_buffer)
                servers._udp.append(udp)
                udp.start(loop)
                servers.listeners.append(Listener(scheme, host, udp.port))
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
