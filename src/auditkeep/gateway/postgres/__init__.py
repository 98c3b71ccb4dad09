"""The PostgreSQL access gateway: see :mod:`auditkeep.gateway.postgres.server` and
``docs/gateway-postgres.md``."""

from __future__ import annotations

from auditkeep.gateway.postgres.server import Gateway, GatewayConfig

__all__ = ["Gateway", "GatewayConfig"]
