"""HTTP webhooks: the alert as JSON, signed so the receiver can trust it.

The signature covers the timestamp and the body: ``X-Auditkeep-Signature:
sha256=<hex HMAC-SHA256 over "<timestamp>.<body>">`` with ``X-Auditkeep-Timestamp`` holding
the Unix time in seconds. A receiver recomputes it with :func:`verify_signature` and rejects
stale timestamps, so a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import httpx
import msgspec

from auditkeep.alerts.model import Alert
from auditkeep.alerts.notify.base import DeliveryError

SIGNATURE_HEADER = "X-Auditkeep-Signature"
TIMESTAMP_HEADER = "X-Auditkeep-Timestamp"


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: bytes | str,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    tolerance: float = 300.0,
    now: float | None = None,
) -> bool:
    """Whether ``signature`` is ours for this body and timestamp, and the timestamp is within
    ``tolerance`` seconds of ``now``."""
    key = secret.encode() if isinstance(secret, str) else secret
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance:
        return False
    return hmac.compare_digest(sign(key, timestamp, body), signature)


def _check(response: httpx.Response) -> None:
    code = response.status_code
    if code < 300:
        return
    retry_after: float | None = None
    ra = response.headers.get("Retry-After")
    if ra is not None:
        try:
            retry_after = float(ra)
        except ValueError:
            retry_after = None
    retryable = code >= 500 or code in (408, 425, 429)
    raise DeliveryError(f"HTTP {code}", retryable=retryable, retry_after=retry_after)


class WebhookNotifier:
    """POSTs the alert as JSON. ``secret`` enables the signature headers."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        secret: bytes | str | None = None,
        timeout: float = 10.0,
        headers: dict[str, str] | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.name = name
        self.url = url
        self.secret = secret.encode() if isinstance(secret, str) else secret
        self.timeout = timeout
        self.headers = dict(headers or {})
        self._client = client

    def payload(self, alert: Alert) -> Any:
        return alert

    async def send(self, alert: Alert) -> None:
        body = msgspec.json.encode(self.payload(alert))
        headers = {"Content-Type": "application/json", "User-Agent": "auditkeep-alerts", **self.headers}
        if self.secret is not None:
            ts = str(int(time.time()))
            headers[TIMESTAMP_HEADER] = ts
            headers[SIGNATURE_HEADER] = sign(self.secret, ts, body)
        if self._client is None:
            # one client per notifier: connections and the TLS context are reused
            self._client = httpx.AsyncClient()
        try:
            response = await self._client.post(self.url, content=body, headers=headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
        _check(response)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
