"""uvicorn's httptools protocol with bounds on the request head: its size and its time.

httptools buffers header bytes without limit (h11 has ``h11_max_incomplete_event_size``,
httptools nothing), and uvicorn has no timeout for a head that arrives a byte at a time. So
here the bytes received while the head is incomplete are counted, and past
``MAX_HEAD_BYTES`` the connection gets a 431 JSON answer and is closed; a head not complete
``head_timeout`` seconds after its first byte gets a 408 and the connection is closed. A
request's scope also carries an ``auditkeep.abort`` extension to drop its connection.
"""

from __future__ import annotations

import asyncio

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from auditkeep.server.stream import ABORT_EXTENSION

MAX_HEAD_BYTES = 64 * 1024


def _answer(status: bytes, message: str) -> bytes:
    body = orjson.dumps({"error": message})
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\ncontent-length: "
        + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
    )


_431 = _answer(b"431 Request Header Fields Too Large", f"request line and headers are larger than {MAX_HEAD_BYTES} bytes")
_408 = _answer(b"408 Request Timeout", "the request line and headers did not arrive in time")


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    head_timeout = 30.0  # seconds; a subclass per server sets its own (see bounded_protocol)
    _in_head = True
    _head_bytes = 0
    _completed = False
    _head_timer: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        self._completed = False
        super().data_received(data)
        # Counted after parsing, so a chunk that completes a head or a message (and may carry
        # the next request's start) is not: a head is bounded by the limit plus one read.
        if self._in_head and not self._completed and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse(_431)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        # Lets a response drop a client that stopped reading (ASGI has no way to say so).
        extensions = dict(self.scope.get("extensions") or {})
        extensions[ABORT_EXTENSION] = {"abort": self.transport.abort}
        self.scope["extensions"] = extensions
        self._cancel_timer()
        self._head_timer = self.loop.call_later(self.head_timeout, self._refuse, _408)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._completed = True
        self._in_head = True
        self._head_bytes = 0

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        super().connection_lost(exc)

    def _cancel_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _refuse(self, answer: bytes) -> None:
        self._cancel_timer()
        if not self.transport.is_closing():
            self.transport.write(answer)
            self.transport.close()


def bounded_protocol(head_timeout: float) -> type[BoundedHttpToolsProtocol]:
    """The protocol class for one server, with its own head timeout."""
    return type("BoundedHttpTools", (BoundedHttpToolsProtocol,), {"head_timeout": head_timeout})
