"""Audit of the audit: reads and key changes become events in the tenant's own log.

Read events are submitted without waiting for durability, so they add no latency to the
request; a failed submit or commit is never silent: it is counted (metrics) and logged.
Tile reads are what tlog clients poll, so they are aggregated: one ``auditkeep.tiles.read``
event per key and tenant at most once per ``tile_interval`` seconds, with the count.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

from auditkeep.ledger.append import Receipt
from auditkeep.ledger.ledger import Ledger, NotFound
from auditkeep.model.event import Submitter
from auditkeep.server.keys import ALL_TENANTS, ApiKey

log = logging.getLogger("auditkeep.server.audit")

SYSTEM_TENANT = "auditkeep"  # where events about cross-tenant keys and unknown tenants go
SERVICE = "auditkeep-server"


MAX_TEXT = 1000  # a filter value is recorded up to this many characters
MAX_ITEMS = 100  # and up to this many repeated values


def _clip(value: Any) -> Any:
    """A filter as given, cut to fit the event limits (so recording it cannot fail)."""
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + "…"
    if isinstance(value, list):
        return [_clip(v) for v in value[:MAX_ITEMS]]
    if isinstance(value, dict):
        return {k: _clip(v) for k, v in value.items()}
    return value


def key_event(action: str, key: ApiKey, actor_id: str, actor_type: str = "service") -> dict[str, Any]:
    """The event recording the creation or revocation of ``key`` (never its secret)."""
    return {
        "actor": {"id": actor_id, "type": actor_type},
        "action": action,
        "category": "admin",
        "outcome": "success",
        "resource": {"type": "apikey", "id": key.keyid, **({"name": key.name} if key.name else {})},
        "source": {"service": SERVICE},
        "metadata": {
            "key_tenant": key.tenant,
            "scopes": list(key.scopes),
            "expires": key.public()["expires"],
        },
    }


def key_event_tenant(key: ApiKey) -> str:
    return SYSTEM_TENANT if key.tenant == ALL_TENANTS else key.tenant


class Auditor:
    """Appends read-audit events without blocking the caller on durability."""

    def __init__(
        self,
        ledger: Ledger,
        on_result: Callable[[str, bool], None] | None = None,
        tile_interval: float = 60.0,
    ) -> None:
        self.ledger = ledger
        self._on_result = on_result
        self._tile_interval = tile_interval
        self._tiles: dict[tuple[str, str], tuple[float, int, ApiKey]] = {}
        self._lock = threading.Lock()

    def target(self, key: ApiKey, tenant: str) -> str:
        """The log a read of ``tenant`` is recorded in: the tenant's own, unless an admin key
        reads a tenant that has no log (recording would create one)."""
        if key.tenant == tenant:
            return tenant
        try:
            self.ledger.tenant_id(tenant)
        except (NotFound, ValueError):
            return SYSTEM_TENANT
        return tenant

    def read(
        self,
        action: str,
        key: ApiKey,
        tenant: str,
        metadata: Mapping[str, Any],
        resource: Mapping[str, str] | None = None,
        client_ip: str | None = None,
    ) -> None:
        actor: dict[str, Any] = {"id": key.keyid, "type": "service"}
        if client_ip:
            actor["ip"] = client_ip
        event: dict[str, Any] = {
            "actor": actor,
            "action": action,
            "category": "data_access",
            "outcome": "success",
            "source": {"service": SERVICE},
            "metadata": {"tenant": tenant, **{k: _clip(v) for k, v in metadata.items() if v is not None}},
        }
        if resource:
            event["resource"] = dict(resource)
        self.submit(event, self.target(key, tenant), key.keyid)

    def tiles(self, key: ApiKey, tenant: str, client_ip: str | None = None) -> None:
        """Count a tile read; record the count once per interval per key and tenant."""
        now = time.monotonic()
        k = (key.keyid, tenant)
        with self._lock:
            entry = self._tiles.get(k)
            if entry is None:
                due, count = True, 1
            else:
                since, count = entry[0], entry[1] + 1
                due = now - since >= self._tile_interval
            self._tiles[k] = (now, 0, key) if due else (since, count, key)
        if due:
            self.read("auditkeep.tiles.read", key, tenant, {"reads": count}, client_ip=client_ip)

    def flush(self) -> None:
        """Record the tile reads counted since each key's last record (at shutdown)."""
        with self._lock:
            pending = [(t, c, key) for (_, t), (_, c, key) in self._tiles.items() if c]
            self._tiles.clear()
        for tenant, count, key in pending:
            self.read("auditkeep.tiles.read", key, tenant, {"reads": count})

    def submit(self, event: dict[str, Any], tenant: str, by: str | None = None) -> Future[list[Receipt]] | None:
        """Queue one of the server's own events; ``by`` is the key whose request caused it
        (recorded as the leaf's submitter, ``{"kind": "server", "id": by}``)."""
        try:
            fut = self.ledger.submit_own([event], tenant, Submitter("server", by))
        except Exception as exc:  # counted and logged: an audit event is never dropped silently
            log.warning("audit event %s not recorded: %s", event.get("action"), exc)
            self._done(str(event.get("action")), False)
            return None
        action = str(event.get("action"))
        fut.add_done_callback(lambda f: self._finished(action, f))
        return fut

    def _finished(self, action: str, fut: Future[list[Receipt]]) -> None:
        exc = fut.exception()
        if exc is not None:
            log.warning("audit event %s not recorded: %s", action, exc)
        self._done(action, exc is None)

    def _done(self, action: str, ok: bool) -> None:
        if self._on_result is not None:
            self._on_result(action, ok)
