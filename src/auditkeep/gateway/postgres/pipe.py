"""One direction of a gateway session after start-up, as an asyncio protocol on its socket:
message boundaries found in what arrives, the few messages the session must read handed to
it, everything else written straight on (a chunk of unaltered messages in one write), and
backpressure passed to the other direction."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from auditkeep.gateway.postgres.wire import MAX_MESSAGE, ProtocolViolation

if TYPE_CHECKING:
    from auditkeep.gateway.postgres.session import Session

_I32 = struct.Struct("!i")
# What arrives while a handler is waited for (a held statement) beyond this stops the reading.
HIGH_WATER = 1024 * 1024


class Pipe(asyncio.Protocol):
    """One direction of a session after start-up: reads ``src``, writes ``dst``.
    ``handle(kind, body)`` sees each message whose kind is in ``reads`` (or, for another
    kind, that ``read_if(kind)`` asks for: a DataRow of a masked result) and returns what
    to send instead (None: the message as it is; an awaitable: the direction waits for it,
    what arrives meanwhile is kept); ``passthrough(kind)`` is told of the others, which go
    on in pieces as they arrive. When ``dst`` cannot keep up, ``src`` stops being read."""

    def __init__(self, session: Session, src: asyncio.BaseTransport, dst: asyncio.BaseTransport,
                 reads: frozenset[int], handle: Callable[[int, bytes], Awaitable[bytes | None] | bytes | None],
                 passthrough: Callable[[int], None], side: str, read_if: Callable[[int], bool] | None = None) -> None:  # fmt: skip
        self.session = session
        self.src = src
        self.dst: Any = dst  # a write transport (typed loosely: TLS and plain transports alike)
        self.reads = reads
        self.read_if = read_if
        self.handle = handle
        self.passthrough = passthrough
        self.side = side
        self.peer: Pipe | None = None
        self.buf = bytearray()
        self.remaining = 0  # bytes of a passed-through message still to come
        self.task: asyncio.Task[None] | None = None  # a handler being waited for
        self.kept = bytearray()  # what arrived while it was
        self.dst_full = False  # dst asked us to stop (pause_writing on the peer)
        self.metrics = session.gw.metrics

    # -- asyncio.Protocol -----------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.task is not None:
            self.kept += data
            if len(self.kept) > HIGH_WATER:
                self._pause_src()
            return
        try:
            self._forward(data)
        except Exception as exc:
            self.session._end(self.side, exc)

    def eof_received(self) -> bool:
        if self.side == "client":
            self.session.client_gone = True
        if self.task is None:  # else the handler being waited for sees it (a held statement)
            self.session._end(self.side)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.side == "client":
            self.session.client_gone = True
        if self.task is None:
            self.session._end(self.side)

    def pause_writing(self) -> None:  # our src's transport is full: stop reading its peer
        if self.peer is not None:
            self.peer.dst_full = True
            self.peer._pause_src()

    def resume_writing(self) -> None:
        if self.peer is not None:
            self.peer.dst_full = False
            self.peer._resume_src()

    def _pause_src(self) -> None:
        with contextlib.suppress(RuntimeError, AttributeError):
            if not self.src.is_closing():
                self.src.pause_reading()  # type: ignore[attr-defined]

    def _resume_src(self) -> None:
        if self.dst_full or self.task is not None:
            return
        with contextlib.suppress(RuntimeError, AttributeError):
            if not self.src.is_closing():
                self.src.resume_reading()  # type: ignore[attr-defined]

    # -- forwarding -----------------------------------------------------------------------

    def _forward(self, data: bytes) -> None:
        t0 = time.perf_counter()
        dst = self.dst
        if self.remaining:
            n = min(self.remaining, len(data))
            self.remaining -= n
            if n == len(data):
                dst.write(data)
                return
            dst.write(data[:n])
            data = data[n:]
        buf = self.buf
        if buf:
            buf += data
        b: bytes | bytearray = buf if buf else data
        out: list[bytes | bytearray] = []
        pos = start = 0  # b[start:pos] goes on as it came, not yet written
        end = len(b)
        reads, read_if, handle = self.reads, self.read_if, self.handle
        copy = b is buf  # a body sliced from the buffer is copied; one sliced from bytes already is
        while end - pos >= 5:
            kind = b[pos]
            (n,) = _I32.unpack_from(b, pos + 1)
            if n < 4:
                raise ProtocolViolation(f"message {chr(kind)!r} with length {n}")
            total = n + 1
            if kind not in reads and (read_if is None or not read_if(kind)):
                self.passthrough(kind)
                take = min(total, end - pos)
                pos += take
                self.remaining = total - take
                if self.remaining:
                    break
                continue
            if n > MAX_MESSAGE:
                raise ProtocolViolation(f"message {chr(kind)!r} of {n} bytes is over the gateway's limit")
            if end - pos < total:
                break
            # One copy of the body (bytes even when it comes from the buffer); the whole
            # message is copied only for a handler that makes the direction wait.
            got = handle(kind, bytes(b[pos + 5 : pos + total]) if copy else b[pos + 5 : pos + total])  # type: ignore[arg-type]
            if got is None:  # the common case: it goes on as it came
                pos += total
                continue
            if pos > start:
                out.append(b[start:pos])
            if isinstance(got, bytes):
                pos += total
                start = pos
                out.append(got)
                continue
            # The direction waits for the handler (a statement held for review): what came
            # before goes now, the rest is kept.
            raw = bytes(b[pos : pos + total])
            pos += total
            if out:
                dst.writelines(out)
            self.buf = bytearray(b[pos:])
            self.task = asyncio.ensure_future(self._wait(got, raw))
            return
        if pos > start:
            out.append(b if start == 0 and pos == end else b[start:pos])
        if pos < end:
            self.buf = bytearray(b[pos:])
        elif buf:
            self.buf = bytearray()
        if out:
            if len(out) == 1:
                dst.write(out[0])
            else:
                dst.writelines(out)
        self.metrics.added.observe(time.perf_counter() - t0)

    async def _wait(self, got: Awaitable[bytes | None], raw: bytes) -> None:
        try:
            result = await got
            self.dst.write(raw if result is None else result)
            self.task = None
            kept, self.kept = bytes(self.kept), bytearray()
            self._forward(kept)  # also what is left in buf from before
            if self.task is None:
                self._resume_src()
                if self.session.client_gone and self.side == "client":
                    self.session._end(self.side)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.task = None
            self.session._end(self.side, exc)
