"""The HTTP face of auditkeep: an ASGI app over a :class:`~auditkeep.ledger.Ledger`.

Its names are loaded on first use (``lazyload``): the server's children
(``python -m auditkeep.server.projection`` / ``alerts_process``) import this package first
and must not load Starlette and every route for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from auditkeep.lazyload import module_getattr

if TYPE_CHECKING:
    from auditkeep.server.app import create_app
    from auditkeep.server.context import Options, ServerContext
    from auditkeep.server.keys import ApiKey, KeyStore

_LAZY = {
    "create_app": "auditkeep.server.app",
    "Options": "auditkeep.server.context",
    "ServerContext": "auditkeep.server.context",
    "ApiKey": "auditkeep.server.keys",
    "KeyStore": "auditkeep.server.keys",
}

__getattr__ = module_getattr(__name__, _LAZY)

__all__ = ["ApiKey", "KeyStore", "Options", "ServerContext", "create_app"]
