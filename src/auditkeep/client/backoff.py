"""Retry pacing: exponential backoff with jitter, at least what ``Retry-After`` asks."""

from __future__ import annotations

import random
import time
from email.utils import parsedate_to_datetime

__all__ = ["Backoff", "parse_retry_after"]


class Backoff:
    """Delays of ``base * 2**attempt`` capped at ``cap``, each drawn from its upper half.

    Equal jitter: never less than half the nominal delay (so a failing server is not
    hammered), randomised so that many clients restarted together spread out.
    """

    def __init__(self, base: float = 0.1, cap: float = 30.0, rng: random.Random | None = None) -> None:
        self.base = base
        self.cap = cap
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self, retry_after: float | None = None) -> float:
        nominal = min(self.cap, self.base * (2**self.attempt))
        self.attempt = min(self.attempt + 1, 32)
        delay = self._rng.uniform(nominal / 2, nominal)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.cap * 10))
        return delay

    def reset(self) -> None:
        self.attempt = 0


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
