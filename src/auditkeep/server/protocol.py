"""uvicorn's httptools protocol with a bound on the request head.

httptools itself buffers header bytes without limit (h11 has ``h11_max_incomplete_event_size``,
httptools has nothing), so a client could grow memory by sending an endless header. Here the
bytes received while the head is incomplete are counted, and past ``MAX_HEAD_BYTES`` the
connection gets a 431 JSON answer and is closed.
"""

from __future__ import annotations

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 64 * 1024
_BODY = orjson.dumps({"error": f"request line and headers are larger than {MAX_HEAD_BYTES} bytes"})
_431 = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
    b"content-length: " + str(len(_BODY)).encode() + b"\r\nconnection: close\r\n\r\n" + _BODY
)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    _in_head = True
    _head_bytes = 0
    _completed = False

    def data_received(self, data: bytes) -> None:
        self._completed = False
        super().data_received(data)
        # Counted after parsing, so a chunk that completes a head or a message (and may carry
        # the next request's start) is not: a head is bounded by the limit plus one read.
        if self._in_head and not self._completed and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self.transport.write(_431)
                self.transport.close()

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._completed = True
        self._in_head = True
        self._head_bytes = 0
