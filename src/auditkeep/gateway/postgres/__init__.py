"""The PostgreSQL access gateway: see :mod:`auditkeep.gateway.postgres.server` and
``docs/gateway-postgres.md``.

Its names are loaded on first use (``lazyload``): the ledger child needs the event
shapes of ``events.py``, not the proxy server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from auditkeep.lazyload import module_getattr

if TYPE_CHECKING:
    from auditkeep.gateway.postgres.server import Gateway, GatewayConfig

_LAZY = {
    "Gateway": "auditkeep.gateway.postgres.server",
    "GatewayConfig": "auditkeep.gateway.postgres.server",
}

__getattr__ = module_getattr(__name__, _LAZY)

__all__ = ["Gateway", "GatewayConfig"]
