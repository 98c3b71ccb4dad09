"""What every notifier shares: the protocol, delivery with retries and the dead-letter
store that keeps what could not be delivered."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import msgspec

from auditkeep.alerts.model import Alert
from auditkeep.errors import TransportError

log = logging.getLogger(__name__)


class DeliveryError(TransportError):
    """A delivery failed. ``retryable`` says whether trying again may help (network errors,
    5xx, 429) or not (a 4xx: the request itself is wrong)."""

    def __init__(self, message: str, *, retryable: bool = True, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


@runtime_checkable
class Notifier(Protocol):
    """Sends one alert somewhere; raises :class:`DeliveryError` when it could not."""

    name: str

    async def send(self, alert: Alert) -> None: ...


class DeadLetter(msgspec.Struct, kw_only=True):
    notifier: str
    alert: Alert
    attempts: int
    error: str
    time: int


class DeadLetterStore(Protocol):
    """Where undeliverable alerts go. The caller backs it with storage so they can be
    inspected and re-sent; :class:`InMemoryDeadLetters` serves tests and laptops."""

    def put(self, letter: DeadLetter) -> None: ...

    def list(self) -> list[DeadLetter]: ...


class InMemoryDeadLetters:
    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._items: list[DeadLetter] = []

    def put(self, letter: DeadLetter) -> None:
        self._items.append(letter)
        if len(self._items) > self.limit:
            del self._items[0]

    def list(self) -> list[DeadLetter]:
        return list(self._items)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: ``base`` * ``factor``^n seconds (capped at ``max_delay``, with up
    to ``jitter`` of it added at random), ``attempts`` tries in all."""

    attempts: int = 5
    base: float = 0.5
    factor: float = 2.0
    max_delay: float = 60.0
    jitter: float = 0.1

    def delay(self, attempt: int) -> float:
        d = min(self.max_delay, self.base * self.factor ** (attempt - 1))
        return d + random.uniform(0, d * self.jitter)


async def deliver(
    notifier: Notifier,
    alert: Alert,
    policy: RetryPolicy,
    dead_letters: DeadLetterStore,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> bool:
    """Send with retries; whether it was delivered. After the last failed attempt (or a
    failure that retrying cannot fix) the alert goes to the dead-letter store."""
    error = ""
    attempt = 0
    for attempt in range(1, policy.attempts + 1):
        try:
            await notifier.send(alert)
            return True
        except DeliveryError as exc:
            error = str(exc)
            if not exc.retryable or attempt == policy.attempts:
                break
            wait = policy.delay(attempt)
            if exc.retry_after is not None:
                wait = min(max(wait, exc.retry_after), policy.max_delay)
            log.info("notifier %s: attempt %d for alert %s failed (%s); retrying in %.2fs", notifier.name, attempt, alert.id, exc, wait)
            await sleep(wait)
        except Exception as exc:  # a bug in a notifier must not lose the alert silently
            error = f"{type(exc).__name__}: {exc}"
            log.exception("notifier %s failed on alert %s", notifier.name, alert.id)
            break
    log.warning("notifier %s: alert %s dead-lettered after %d attempt(s): %s", notifier.name, alert.id, attempt, error)
    dead_letters.put(DeadLetter(notifier=notifier.name, alert=alert, attempts=attempt, error=error, time=time.time_ns()))
    return False


def render_text(alert: Alert) -> str:
    """A plain-text rendering shared by the e-mail and stdout notifiers."""
    lines = [
        f"[{alert.severity.upper()}] {alert.title}",
        alert.explanation,
        f"rule: {alert.rule_name} ({alert.rule_id})",
        f"tenant: {alert.tenant}",
    ]
    if alert.group_key:
        lines.append(f"group: {alert.group_key}")
    lines.append(f"events: {alert.count} (log index {alert.first_index}..{alert.last_index})")
    if alert.suppressed:
        lines.append(f"suppressed since the previous alert: {alert.suppressed}")
    lines.append(f"alert id: {alert.id}")
    return "\n".join(lines)
