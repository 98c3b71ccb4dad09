"""Event ids: UUIDv7 (RFC 9562), time-ordered so that id indexes grow at their right edge."""

from __future__ import annotations

import os
import threading
import time
import uuid

UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def uuid7_batch(n: int) -> list[str]:
    """``n`` UUIDv7 strings, strictly increasing within and across calls in this process.

    The 12-bit ``rand_a`` field is a counter within one millisecond (RFC 9562 §6.2, method 1)
    so ids made in one batch keep their order; ``rand_b`` is random.
    """
    global _last_ms, _counter
    rand = os.urandom(8 * n)
    out: list[str] = []
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms = _last_ms
        else:
            _counter = 0
        for i in range(n):
            if _counter > 0xFFF:
                ms += 1  # borrow from the future rather than repeat an id
                _counter = 0
            rb = int.from_bytes(rand[8 * i : 8 * i + 8], "big") & 0x3FFF_FFFF_FFFF_FFFF
            value = (ms << 80) | (0x7 << 76) | (_counter << 64) | (0b10 << 62) | rb
            _counter += 1
            h = f"{value:032x}"
            out.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
        _last_ms = ms
    return out


def uuid7() -> str:
    return uuid7_batch(1)[0]


def id_bytes(text: str) -> bytes:
    """The 16 bytes of a canonical (lowercase, hyphenated) UUID string."""
    return uuid.UUID(text).bytes


def id_text(raw: bytes) -> str:
    return str(uuid.UUID(bytes=raw))
