"""The exception tree: every error auditkeep raises on purpose descends from
:class:`AuditkeepError`, and its branch says who can fix it.

    AuditkeepError
    ├── UserError          bad input, a missing thing, a refused request: the caller can fix
    │   │                  it (CLI exit 2, HTTP 4xx)
    │   ├── ConfigError    the configuration file, an environment variable, a key file
    │   ├── NotFound       the tenant, event, index or checkpoint asked for does not exist
    │   │   └── Expired    an event whose payload a retention policy deleted
    │   └── DataDirError   no auditkeep data where it was looked for
    ├── IntegrityError     the log does not prove what it claims (CLI exit 1)
    ├── StoreError         the database failed; StoreUnavailable: retry later (HTTP 503)
    └── TransportError     talking to a server failed (the SDK, the gateways' upstreams)
        └── APIError       a server answered with an error status

Each class keeps the built-in base it had before the tree existed (``ValueError``,
``LookupError``, ``RuntimeError``), so ``except ValueError`` around a parser keeps working.
This module imports nothing of auditkeep: every layer may use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "APIError",
    "AuditkeepError",
    "ClosedError",
    "ConfigError",
    "DataDirError",
    "Expired",
    "IntegrityError",
    "NotFound",
    "StoreError",
    "StoreUnavailable",
    "TransportError",
    "UserError",
]


class AuditkeepError(Exception):
    """The root of every error auditkeep raises on purpose."""


class UserError(AuditkeepError):
    """The caller can fix this by changing its input, its configuration or its request."""


class ConfigError(UserError, ValueError):
    """The configuration file, an environment variable or a key file is invalid."""


class NotFound(UserError, LookupError):
    """The tenant, event, index or checkpoint asked for does not exist."""


class Expired(NotFound):
    """The event's payload was deleted by a retention policy; its leaf hash stays in the tree
    (so proofs of it and of every other event still verify)."""

    status = "expired"

    def __init__(self, tenant: str, index: int, leaf_hash: str) -> None:
        super().__init__(
            f"the event at index {index} of tenant {tenant!r} has expired: its payload was deleted "
            "under a retention policy (its leaf hash stays in the log)"
        )
        self.tenant = tenant
        self.index = index
        self.leaf_hash = leaf_hash


class DataDirError(UserError, RuntimeError):
    """The data directory is missing, unreadable or inconsistent."""


class IntegrityError(AuditkeepError):
    """What is stored does not prove what it claims: a hash, a signature or a proof failed."""


class StoreError(AuditkeepError, RuntimeError):
    """The store failed in a way the caller cannot fix by changing its input."""


class StoreUnavailable(StoreError):
    """The store cannot be reached right now; retry later (HTTP maps this to 503)."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ClosedError(AuditkeepError, RuntimeError):
    """The object was used after ``close()``: a programming error in the caller."""


class TransportError(AuditkeepError):
    """Talking to a server failed."""


class APIError(TransportError, RuntimeError):
    """An HTTP error status with a message: raised by routes (the server turns it into the
    JSON refusal) and by the SDK when the server refused a read (``body`` is its answer).
    ``str()`` is ``HTTP <status>: <message>``; ``message`` is the message alone."""

    def __init__(
        self,
        status: int,
        message: str,
        body: object = None,
        *,
        headers: Mapping[str, str] | None = None,
        reason: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.body = body
        self.headers = dict(headers or {})
        self.reason = reason  # a label for the rejected-events metric
        self.extra = extra
