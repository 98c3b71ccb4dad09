"""The HTTP face of auditkeep: an ASGI app over a :class:`~auditkeep.ledger.Ledger`."""

from auditkeep.server.app import create_app
from auditkeep.server.context import Options, ServerContext
from auditkeep.server.keys import ApiKey, KeyStore

__all__ = ["ApiKey", "KeyStore", "Options", "ServerContext", "create_app"]
