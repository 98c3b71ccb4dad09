"""A UDP syslog socket that knows what the kernel dropped.

A datagram that finds the socket's receive buffer full is dropped by the kernel before
any program sees it. Linux counts those drops per socket; with ``SO_RXQ_OVFL`` set, every
datagram read carries the count so far, and ``/proc/net/udp`` shows it at any time (for
the drops after the last datagram read). asyncio's datagram transport reads with
``recvfrom`` and loses that ancillary data, so this socket is read with ``recvmsg``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
import sys
from collections.abc import Callable

log = logging.getLogger(__name__)

_LINUX = sys.platform.startswith("linux")
# Not exported by Python's socket module; these are Linux's values.
SO_RXQ_OVFL: int | None = getattr(socket, "SO_RXQ_OVFL", 40 if _LINUX else None)
SO_RCVBUFFORCE: int | None = getattr(socket, "SO_RCVBUFFORCE", 33 if _LINUX else None)
DEFAULT_RECEIVE_BUFFER = 8 * 1024 * 1024
_MAX_DATAGRAM = 65535
_CMSG_SPACE = socket.CMSG_SPACE(4)
_PER_WAKEUP = 512  # datagrams read per wake-up, so a flood does not starve the loop
_AT_CLOSE = 200_000  # datagrams read at close at most (a sender may never stop)

OnDatagram = Callable[[bytes, "tuple[str | int, ...]"], None]


def set_receive_buffer(sock: socket.socket, size: int) -> int:
    """Ask for a receive buffer of ``size`` bytes and return what the kernel granted.

    Linux caps ``SO_RCVBUF`` at ``net.core.rmem_max``; a process with ``CAP_NET_ADMIN``
    may go past it with ``SO_RCVBUFFORCE``. (Linux reports twice the size asked for: the
    other half is its bookkeeping.)"""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    if _LINUX:
        granted //= 2
    if granted < size and SO_RCVBUFFORCE is not None:
        with contextlib.suppress(OSError):  # PermissionError without CAP_NET_ADMIN
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
            granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2
    return int(granted)


def _proc_drops(inode: int, family: int) -> int | None:
    """The ``drops`` column of ``/proc/net/udp`` (or ``udp6``) for the socket ``inode``."""
    name = "/proc/net/udp6" if family == socket.AF_INET6 else "/proc/net/udp"
    want = str(inode)
    try:
        with open(name, encoding="ascii") as f:
            next(f, None)
            for line in f:
                parts = line.split()
                if len(parts) >= 13 and parts[9] == want:
                    return int(parts[12])
    except (OSError, ValueError):
        return None
    return None


class UdpSocket:
    """One bound UDP socket read from the event loop; ``on_datagram(data, addr)`` is called
    for each datagram. :attr:`kernel_drops` is the kernel's count of datagrams it dropped
    on this socket (0 where the platform does not tell)."""

    def __init__(self, host: str, port: int, on_datagram: OnDatagram, receive_buffer: int) -> None:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, addr = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.receive_buffer = set_receive_buffer(sock, receive_buffer)
            self.counts_drops = False
            if SO_RXQ_OVFL is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
                    self.counts_drops = True
                except OSError:
                    pass
            sock.bind(addr)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.family = family
        self.port = int(sock.getsockname()[1])
        self.on_datagram = on_datagram
        self.kernel_drops = 0
        self._inode = os.fstat(sock.fileno()).st_ino
        self._loop: asyncio.AbstractEventLoop | None = None
        if receive_buffer > self.receive_buffer:
            log.warning(
                "syslog UDP port %d: receive buffer is %d bytes, not the %d asked for "
                "(raise net.core.rmem_max, or run with CAP_NET_ADMIN)",
                self.port, self.receive_buffer, receive_buffer,
            )

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        loop.add_reader(self.sock.fileno(), self.read)

    def read(self, limit: int | None = _PER_WAKEUP) -> int:
        """Read what is queued (at most ``limit`` datagrams); returns how many."""
        n = 0
        sock = self.sock
        while limit is None or n < limit:
            try:
                data, ancillary, _flags, addr = sock.recvmsg(_MAX_DATAGRAM, _CMSG_SPACE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # e.g. ICMP errors surfacing on the socket
                log.warning("syslog UDP receive error: %s", exc)
                break
            n += 1
            for level, kind, cdata in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL and len(cdata) >= 4:
                    self._saw_drops(struct.unpack("=I", cdata[:4])[0])
            self.on_datagram(data, addr)
        return n

    def _saw_drops(self, total: int) -> None:
        if total > self.kernel_drops:
            self.kernel_drops = total

    def poll_drops(self) -> int:
        """Bring :attr:`kernel_drops` up to date without waiting for a datagram."""
        if _LINUX and self.sock.fileno() >= 0:
            total = _proc_drops(self._inode, self.family)
            if total is not None:
                self._saw_drops(total)
        return self.kernel_drops

    def close(self) -> None:
        """Read what the kernel still holds, count the last drops, and close."""
        if self.sock.fileno() < 0:
            return
        if self._loop is not None:
            self._loop.remove_reader(self.sock.fileno())
        self.read(limit=_AT_CLOSE)
        self.poll_drops()
        self.sock.close()
