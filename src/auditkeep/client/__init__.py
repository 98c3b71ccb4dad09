"""The Python SDK: a remote audit log that never slows the application down.

    import auditkeep
    log = auditkeep.Client("http://127.0.0.1:8700", "ak_...", spool_dir="audit-spool")
    with auditkeep.context(actor="alice", request_id="r-1"):
        log.record(action="invoice.approve", resource={"type": "invoice", "id": "42"})

``Client`` and ``AsyncClient`` load httpx on first use, so importing the context (as the
framework integrations do) stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from auditkeep.client.context import bind, context, current
from auditkeep.client.errors import (
    APIError,
    AuthError,
    ClientClosedError,
    ServerUnavailableError,
    Undelivered,
)
from auditkeep.client.protocol import AsyncAuditLog, AuditLog, Recorded, event_id
from auditkeep.lazyload import module_getattr

if TYPE_CHECKING:
    from auditkeep.client.aio import AsyncClient
    from auditkeep.client.client import Client
    from auditkeep.client.lazy import LazyClient
    from auditkeep.client.pipeline import Stats

__all__ = [
    "APIError",
    "AsyncAuditLog",
    "AsyncClient",
    "AuditLog",
    "AuthError",
    "Client",
    "ClientClosedError",
    "LazyClient",
    "Recorded",
    "ServerUnavailableError",
    "Stats",
    "Undelivered",
    "bind",
    "context",
    "current",
    "event_id",
]

_LAZY = {
    "Client": "auditkeep.client.client",
    "LazyClient": "auditkeep.client.lazy",
    "AsyncClient": "auditkeep.client.aio",
    "Stats": "auditkeep.client.pipeline",
}


__getattr__ = module_getattr(__name__, _LAZY)
