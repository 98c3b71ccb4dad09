"""Failed sign-ins per client address: a token bucket per address, so one address cannot
try passwords across many accounts (the per-account lockout stops guessing at one account
only). Memory is bounded: the least recently used addresses are forgotten past ``max_clients``."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

BURST = 20  # failed sign-ins an address may make at once
PER_MINUTE = 10.0  # and then this many a minute
MAX_CLIENTS = 10_000


class LoginThrottle:
    def __init__(self, burst: int = BURST, per_minute: float = PER_MINUTE, max_clients: int = MAX_CLIENTS) -> None:
        self.burst = float(burst)
        self.rate = per_minute / 60.0
        self.max_clients = max_clients
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # address -> (tokens, at)

    def _tokens(self, address: str, now: float) -> float:
        tokens, at = self._buckets.get(address, (self.burst, now))
        return min(self.burst, tokens + (now - at) * self.rate)

    def allowed(self, address: str) -> bool:
        """May ``address`` try to sign in now (has it failed less than the limit)?"""
        with self._lock:
            return self._tokens(address, time.monotonic()) >= 1.0

    def failed(self, address: str) -> None:
        """``address`` failed a sign-in: it costs one token."""
        now = time.monotonic()
        with self._lock:
            tokens = self._tokens(address, now)
            self._buckets[address] = (max(0.0, tokens - 1.0), now)
            self._buckets.move_to_end(address)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets)
