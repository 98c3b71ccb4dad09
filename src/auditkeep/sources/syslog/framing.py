"""Syslog over a byte stream (TCP, TLS): RFC 6587 framing, detected per connection.

* Octet counting (RFC 6587 §3.4.1, and RFC 5425 over TLS): ``MSG-LEN SP MSG``.
* Non-transparent framing (§3.4.2): messages end with LF; NUL is accepted too, and a CR
  before the LF is dropped.

The first byte of a connection decides: a digit means octet counting, anything else
(normally ``<``) the trailer. Messages are bounded by ``max_size``: a longer one becomes a
:class:`SourceError` holding its first ``max_size`` bytes and the stream goes on after it. A
length field that is not a number leaves no way to find the next message: the deframer is
then ``broken`` and the connection should be closed.
"""

from __future__ import annotations

from auditkeep.sources.base import SourceError
from auditkeep.sources.syslog.message import SOURCE

DEFAULT_MAX_SIZE = 64 * 1024
_MAX_LEN_DIGITS = 10

Frame = bytes | SourceError


class Deframer:
    """Splits a stream into messages; feed it bytes as they arrive."""

    def __init__(self, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self.max_size = max_size
        self.mode: str | None = None  # "octet" or "trailer", fixed by the first byte
        self.broken = False
        self._buf = bytearray()
        self._skip = 0  # bytes of an oversize octet-counted message still to discard
        self._discarding = False  # inside an oversize trailer-framed message

    def feed(self, data: bytes) -> list[Frame]:
        """The complete messages (and errors) that ``data`` finishes."""
        if self.broken:
            return []
        if self._skip:
            n = min(self._skip, len(data))
            self._skip -= n
            data = data[n:]
        if not data:
            return []
        if self.mode is None:
            first = data.lstrip(b"\r\n\x00 ")[:1]
            if not first:
                return []
            self.mode = "octet" if first.isdigit() else "trailer"
        self._buf += data
        return self._octets() if self.mode == "octet" else self._trailer()

    @property
    def pending(self) -> bool:
        """Whether part of a message has arrived and its end has not."""
        return bool(self._buf.strip(b"\r\n\x00 "))

    def close(self) -> list[Frame]:
        """The stream ended: a last message without its trailer counts; a cut-short
        octet-counted one is an error."""
        buf = bytes(self._buf)
        self._buf.clear()
        if self.broken or not buf.strip(b"\r\n\x00 "):
            return []
        if self.mode == "octet":
            return [SourceError(SOURCE, "connection closed inside a message", buf[: self.max_size])]
        if self._discarding:
            return []
        return [buf.rstrip(b"\r")]

    def _octets(self) -> list[Frame]:
        out: list[Frame] = []
        data = bytes(self._buf)
        pos = 0
        n = len(data)
        limit = self.max_size
        while pos < n:
            # Tolerate stray line ends between counted messages (some senders add them).
            while pos < n and data[pos] in b"\r\n\x00 ":
                pos += 1
            if pos == n:
                break
            sp = data.find(b" ", pos, pos + _MAX_LEN_DIGITS + 1)
            if sp == -1:
                if n - pos > _MAX_LEN_DIGITS or not data[pos:n].isdigit():
                    return self._break(out, data[pos : pos + 64])
                break  # the length is still arriving
            digits = data[pos:sp]
            if not digits.isdigit() or data[pos] == 0x30:  # no sign, no leading zero
                return self._break(out, data[pos : pos + 64])
            length = int(digits)
            start = sp + 1
            if length > limit:
                out.append(SourceError(
                    SOURCE,
                    f"message of {length} bytes exceeds the limit of {limit}",
                    data[start : start + limit],
                ))  # fmt: skip
                if n - start >= length:
                    pos = start + length
                    continue
                self._skip = length - (n - start)
                pos = n
                break
            end = start + length
            if end > n:
                break  # the rest of the message is still arriving
            out.append(data[start:end])
            pos = end
        self._buf = bytearray(data[pos:]) if pos < n else bytearray()
        return out

    def _trailer(self) -> list[Frame]:
        out: list[Frame] = []
        data = bytes(self._buf)
        if b"\x00" in data:
            data = data.replace(b"\x00", b"\n")  # NUL ends a message as LF does
        parts = data.split(b"\n")
        rest = parts.pop()
        limit = self.max_size
        for frame in parts:
            if self._discarding:
                self._discarding = False  # the end of an oversize message
                continue
            if frame.endswith(b"\r"):
                frame = frame[:-1]
            if len(frame) > limit:
                out.append(self._oversize(frame, f"{len(frame)} bytes"))
            elif frame.strip():
                out.append(frame)
        self._buf.clear()
        if len(rest) > limit and not self._discarding:
            out.append(self._oversize(rest, f"more than {limit} bytes"))
            self._discarding = True
        if not self._discarding:
            self._buf += rest
        return out

    def _oversize(self, frame: bytes, size: str) -> SourceError:
        return SourceError(
            SOURCE,
            f"message of {size} exceeds the limit of {self.max_size}",
            frame[: self.max_size],
        )

    def _break(self, out: list[Frame], head: bytes) -> list[Frame]:
        self.broken = True
        self._buf.clear()
        out.append(SourceError(SOURCE, "invalid octet-counting length: stream abandoned", head))
        return out
