"""Record framing of spool segments: magic, length, checksum, payload.

    offset 0   magic   4 bytes  b"\\xa5AKs"
           4   length  uint32 LE, bytes of payload
           8   crc32   uint32 LE, of the length field and the payload
          12   payload

A crash can leave the last record of a segment half written, and a disk can flip bits. The
checksum covers the length too, so a damaged header is never trusted to say where the next
record starts; a reader that meets a bad record searches forward for the next magic that
begins a record with a good checksum, and reports the bytes it skipped.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass

__all__ = ["HEADER_SIZE", "MAGIC", "MAX_PAYLOAD", "Frame", "frame", "read_frame"]

MAGIC = b"\xa5AKs"
_HEADER = struct.Struct("<4sII")
_LENGTH = struct.Struct("<I")
HEADER_SIZE = _HEADER.size
MAX_PAYLOAD = 64 * 1024 * 1024  # larger lengths are damage, not data
_SCAN_CHUNK = 64 * 1024


def frame(payload: bytes) -> bytes:
    """The bytes of one record holding ``payload``."""
    length = _LENGTH.pack(len(payload))
    crc = zlib.crc32(payload, zlib.crc32(length))
    return MAGIC + length + _LENGTH.pack(crc) + payload


@dataclass(frozen=True)
class Frame:
    """A record read back: its payload, where it ends, and bytes skipped before it."""

    payload: bytes
    start: int
    end: int
    skipped: int


def _valid_at(fd: int, offset: int, size: int) -> bytes | None:
    """The payload of a good record starting at ``offset``, else None."""
    if offset + HEADER_SIZE > size:
        return None
    header = os.pread(fd, HEADER_SIZE, offset)
    if len(header) < HEADER_SIZE:
        return None
    magic, length, crc = _HEADER.unpack(header)
    if magic != MAGIC or length > MAX_PAYLOAD or offset + HEADER_SIZE + length > size:
        return None
    payload = os.pread(fd, length, offset + HEADER_SIZE)
    if len(payload) != length or zlib.crc32(payload, zlib.crc32(header[4:8])) != crc:
        return None
    return payload


def read_frame(fd: int, offset: int, size: int) -> Frame | None:
    """The first good record at or after ``offset`` in the first ``size`` bytes of ``fd``.

    None when there is none (the end, or only damage, remains).
    """
    payload = _valid_at(fd, offset, size)
    if payload is not None:
        return Frame(payload, offset, offset + HEADER_SIZE + len(payload), 0)
    pos = offset + 1
    while pos < size:
        chunk = os.pread(fd, min(_SCAN_CHUNK, size - pos) + len(MAGIC) - 1, pos)
        found = chunk.find(MAGIC)
        if found < 0:
            pos += max(1, len(chunk) - len(MAGIC) + 1)
            continue
        start = pos + found
        payload = _valid_at(fd, start, size)
        if payload is not None:
            return Frame(payload, start, start + HEADER_SIZE + len(payload), start - offset)
        pos = start + 1
    return None
