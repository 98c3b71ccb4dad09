"""Framework integrations: ASGI, WSGI and Django middleware, and a logging handler.

The Django middleware lives in :mod:`auditkeep.integrations.django` and is imported from
there (it needs Django); the others need nothing beyond auditkeep.
"""

from auditkeep.integrations.asgi import AuditMiddleware
from auditkeep.integrations.logging_handler import AuditHandler
from auditkeep.integrations.proxies import TrustedProxies, client_ip
from auditkeep.integrations.web import RequestAuditor, Route, outcome_for
from auditkeep.integrations.wsgi import AuditWSGIMiddleware

__all__ = [
    "AuditHandler",
    "AuditMiddleware",
    "AuditWSGIMiddleware",
    "RequestAuditor",
    "Route",
    "TrustedProxies",
    "client_ip",
    "outcome_for",
]
