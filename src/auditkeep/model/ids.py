"""Event ids: UUIDv7 (RFC 9562), time-ordered so that id indexes grow at their right edge.

Cheap enough for an application's request thread (the SDK assigns ids before queuing):
RFC 9562 §6.2 method 2 — a random counter seeded once per millisecond and incremented per
id — with the millisecond's hex prefix formatted once, and randomness drawn in blocks.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"

_RAND_BITS = 74  # 12 bits of rand_a + 62 bits of rand_b
_SEED_MASK = (1 << (_RAND_BITS - 1)) - 1  # seed below half the range: room to count up


class IdGenerator:
    """Strictly increasing UUIDv7 strings; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ms = -1
        self._counter = 0
        self._prefix = ""
        self._pool = b""
        self._pos = 0

    def _seed(self) -> int:
        if self._pos + 10 > len(self._pool):
            self._pool = os.urandom(4096)
            self._pos = 0
        raw = self._pool[self._pos : self._pos + 10]
        self._pos += 10
        return int.from_bytes(raw, "big") & _SEED_MASK

    def __call__(self) -> str:
        ms = time.time_ns() // 1_000_000
        with self._lock:
            if ms > self._ms:
                self._ms = ms
                self._counter = self._seed()
                h = f"{ms:012x}"
                self._prefix = f"{h[:8]}-{h[8:]}-7"
            else:
                self._counter += 1
                if self._counter >> _RAND_BITS:
                    # 2**73 ids in one millisecond will not happen; stay correct anyway.
                    self._ms += 1
                    self._counter = self._seed()
                    h = f"{self._ms:012x}"
                    self._prefix = f"{h[:8]}-{h[8:]}-7"
            c = self._counter
            prefix = self._prefix
        b = (c & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000  # variant 0b10
        tail = f"{b:016x}"
        return f"{prefix}{c >> 62:03x}-{tail[:4]}-{tail[4:]}"

    def batch(self, n: int) -> list[str]:
        """``n`` ids from one reading of the clock under one lock (the append path asks for
        a batch's ids at once; per id, the lock and the clock were most of the cost)."""
        ms = time.time_ns() // 1_000_000
        with self._lock:
            if ms > self._ms:
                self._ms = ms
                self._counter = self._seed() - 1
                h = f"{ms:012x}"
                self._prefix = f"{h[:8]}-{h[8:]}-7"
            first = self._counter + 1
            fits = not (first + n) >> _RAND_BITS
            if fits:
                self._counter = first + n - 1
            prefix = self._prefix
        if not fits:  # the counter would overflow (never in practice): one id at a time
            return [self() for _ in range(n)]
        out = []
        for c in range(first, first + n):
            tail = f"{(c & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000:016x}"
            out.append(f"{prefix}{c >> 62:03x}-{tail[:4]}-{tail[4:]}")
        return out




new_id = IdGenerator()


def uuid7() -> str:
    return new_id()


def uuid7_batch(n: int) -> list[str]:
    """``n`` UUIDv7 strings, strictly increasing within and across calls in this process."""
    return new_id.batch(n)


def id_bytes(text: str) -> bytes:
    """The 16 bytes of a canonical (lowercase, hyphenated) UUID string."""
    return uuid.UUID(text).bytes


def id_text(raw: bytes) -> str:
    return str(uuid.UUID(bytes=raw))
