"""Message boundaries without holding a stream in memory: newline-delimited JSON-RPC (stdio)
read one line at a time with a size bound, Server-Sent Events parsed as they arrive, and the
``id`` and ``method`` of a message too large to parse, found in its first bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field

DEFAULT_MAX_MESSAGE = 16 * 1024 * 1024
"""The largest JSON-RPC message passed through unless told otherwise."""
PREFIX_BYTES = 64 * 1024
"""How much of an oversize message is kept to find its ``id`` and ``method``."""


@dataclass(frozen=True, slots=True)
class Oversize:
    """A message longer than the bound: its size and first bytes (it was not kept whole)."""

    size: int
    prefix: bytes


async def read_message(reader: asyncio.StreamReader, limit: int) -> bytes | Oversize | None:
    """The next line of ``reader`` without its newline (None at the end of the stream).

    A line longer than ``limit`` is read through and thrown away, keeping its first
    :data:`PREFIX_BYTES`; so memory stays bounded whatever the peer sends. The reader's own
    buffer limit must be at least ``limit`` + 1.
    """
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        line = exc.partial  # the last line, without a newline
    except asyncio.LimitOverrunError as exc:
        return await _skip_line(reader, exc.consumed)
    if len(line) > limit + 1:  # (the reader's limit let a line of limit + 1 bytes through)
        body = line[:-1] if line.endswith(b"\n") else line
        return Oversize(len(line), body[:PREFIX_BYTES])
    return line.rstrip(b"\r\n")


async def _skip_line(reader: asyncio.StreamReader, buffered: int) -> Oversize:
    prefix = await reader.readexactly(buffered)
    size = len(prefix)
    prefix = prefix[:PREFIX_BYTES]
    while True:
        try:
            rest = await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError as exc:
            size += len(await reader.readexactly(exc.consumed))
            continue
        except asyncio.IncompleteReadError as exc:
            rest = exc.partial
        return Oversize(size + len(rest), prefix)


# ----------------------------------------------------------------------------- the head of a message


_WS = b" \t\r\n"


def head_fields(prefix: bytes) -> tuple[int | str | None, str | None]:
    """The top-level ``id`` and ``method`` of a JSON object from its first bytes, where they
    can be told (keys nested in ``params`` are not mistaken for them). Best effort: values
    that start past the prefix are not found."""
    found: dict[bytes, int | str | None] = {}
    for key, value in _top_level(prefix):
        if key in (b"id", b"method") and key not in found:
            found[key] = value
    rid = found.get(b"id")
    method = found.get(b"method")
    return rid, method if isinstance(method, str) else None


def _top_level(data: bytes) -> Iterator[tuple[bytes, int | str | None]]:
    """(key, scalar value) pairs of the outermost object, scanning without a full parse."""
    n = len(data)
    i = _skip_ws(data, 0)
    if i >= n or data[i] != ord("{"):
        return
    i += 1
    while i < n:
        i = _skip_ws(data, i)
        if i >= n or data[i] != ord('"'):
            return
        end = _string_end(data, i)
        if end < 0:
            return
        key = data[i + 1 : end]
        i = _skip_ws(data, end + 1)
        if i >= n or data[i] != ord(":"):
            return
        i = _skip_ws(data, i + 1)
        if i >= n:
            return
        start = i
        i = _value_end(data, i)
        if i < 0:
            return
        yield key, _scalar(data[start:i])
        i = _skip_ws(data, i)
        if i >= n or data[i] != ord(","):
            return
        i += 1


def _skip_ws(data: bytes, i: int) -> int:
    while i < len(data) and data[i] in _WS:
        i += 1
    return i


def _string_end(data: bytes, i: int) -> int:
    """Index of the quote closing the string that opens at ``i`` (-1: not in ``data``)."""
    j = i + 1
    while j < len(data):
        c = data[j]
        if c == ord("\\"):
            j += 2
            continue
        if c == ord('"'):
            return j
        j += 1
    return -1


def _value_end(data: bytes, i: int) -> int:
    """Index just past the JSON value that starts at ``i`` (-1: cut off by the prefix)."""
    c = data[i]
    if c == ord('"'):
        end = _string_end(data, i)
        return -1 if end < 0 else end + 1
    if c in b"{[":
        depth = 0
        j = i
        while j < len(data):
            c = data[j]
            if c == ord('"'):
                j = _string_end(data, j)
                if j < 0:
                    return -1
            elif c in b"{[":
                depth += 1
            elif c in b"}]":
                depth -= 1
                if depth == 0:
                    return j + 1
            j += 1
        return -1
    j = i
    while j < len(data) and data[j] not in b",}" and data[j] not in _WS:
        j += 1
    return j if j < len(data) else -1


def _scalar(raw: bytes) -> int | str | None:
    import orjson

    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if isinstance(value, bool):
        return None
    return value if isinstance(value, int | str) else None


# ----------------------------------------------------------------------------- Server-Sent Events


@dataclass
class SSEEvent:
    """One block of an event stream: its ``data`` lines joined by newlines (None when the
    block had no data field, e.g. a resumption cursor), ``event`` type, ``id`` and ``retry``."""

    data: bytes | None
    event: str | None = None
    id: str | None = None
    retry: str | None = None

    def encode(self) -> bytes:
        """The block in event-stream form, as a peer reads it."""
        out = b""
        if self.event is not None:
            out += b"event: " + self.event.encode() + b"\n"
        if self.id is not None:
            out += b"id: " + self.id.encode() + b"\n"
        if self.retry is not None:
            out += b"retry: " + self.retry.encode() + b"\n"
        if self.data is not None:
            out += b"".join(b"data: " + line + b"\n" for line in self.data.split(b"\n"))
        return out + b"\n"


_FIELD_ROOM = 64  # kept of a line beyond the limit, so a cut line still names its field


@dataclass
class SSEParser:
    """Feed bytes as they arrive; complete blocks come out (WHATWG event-stream rules;
    comments are dropped).

    A block whose data grows past ``limit`` bytes is reported as :class:`Oversize` (its data
    cut to the prefix) and the rest of its lines are skipped, so memory stays bounded.
    """

    limit: int
    _line: bytearray = field(default_factory=bytearray)
    _data: list[bytes] | None = None
    _size: int = 0
    _event: str | None = None
    _id: str | None = None
    _retry: str | None = None
    _over: bool = False
    _cr: bool = False
    _line_len: int = 0  # the current line's length, kept or not

    def feed(self, chunk: bytes) -> list[SSEEvent | Oversize]:
        out: list[SSEEvent | Oversize] = []
        start = 0
        if self._cr and chunk.startswith(b"\n"):
            start = 1  # the \n of a \r\n split across chunks
        self._cr = False
        n = len(chunk)
        i = start
        while i < n:
            c = chunk[i]
            if c == 0x0A or c == 0x0D:
                self._take(chunk[start:i])
                self._line_done(out)
                if c == 0x0D:
                    if i + 1 < n and chunk[i + 1] == 0x0A:
                        i += 1
                    elif i + 1 == n:
                        self._cr = True
                start = i + 1
            i += 1
        self._take(chunk[start:])
        return out

    def _take(self, part: bytes) -> None:
        self._line_len += len(part)
        keep = self.limit + _FIELD_ROOM  # past the bound, the rest of a line is not kept
        if len(self._line) < keep:
            self._line += part[: keep - len(self._line)]

    def _line_done(self, out: list[SSEEvent | Oversize]) -> None:
        line = bytes(self._line)
        cut = self._line_len - len(line)  # bytes of an overlong line that were not kept
        self._line.clear()
        self._line_len = 0
        if not line:
            self._dispatch(out)
            return
        if line.startswith(b":"):
            return
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            if self._data is None:
                self._data = []
            self._size += len(value) + cut + 1
            if self._size > self.limit:
                if not self._over:
                    self._data.append(value)
                self._over = True
                return
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id" and b"\0" not in value:
            self._id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():
            self._retry = value.decode()

    def _dispatch(self, out: list[SSEEvent | Oversize]) -> None:
        if self._over:
            out.append(Oversize(self._size, b"\n".join(self._data or [])[:PREFIX_BYTES]))
        elif self._data is not None or self._id is not None or self._retry is not None:
            data = None if self._data is None else b"\n".join(self._data)
            out.append(SSEEvent(data, self._event, self._id, self._retry))
        self._data = None
        self._size = 0
        self._event = self._id = self._retry = None
        self._over = False
