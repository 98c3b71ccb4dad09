"""Who is calling, may they, and for which tenant: bearer keys, scopes, tenants, rate limit."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from auditkeep.ledger.ledger import check_tenant
from auditkeep.server.errors import ApiError
from auditkeep.server.keys import ALL_TENANTS, ApiKey, AuthFailure, KeyStore
from auditkeep.server.metrics import Metrics
from auditkeep.server.ratelimit import RateLimiter, retry_after

TENANT_HEADER = "x-auditkeep-tenant"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="auditkeep"'}


@dataclass(frozen=True)
class Caller:
    key: ApiKey
    tenant: str  # the tenant this request acts on
    client_ip: str | None


class Guard:
    def __init__(self, keys: KeyStore, limiter: RateLimiter, metrics: Metrics) -> None:
        self.keys = keys
        self.limiter = limiter
        self.metrics = metrics

    def _refuse(self, reason: str, message: str) -> ApiError:
        self.metrics.auth_failures.labels(reason).inc()
        challenge = {"WWW-Authenticate": f'Bearer realm="auditkeep", error="invalid_token", error_description="{message}"'}
        return ApiError(401, message, challenge if reason != "missing" else _CHALLENGE)

    async def key(self, request: Request) -> ApiKey:
        """The verified key of the request, rate limited; 401 or 429 otherwise."""
        header = request.headers.get("authorization")
        if header is None:
            raise self._refuse("missing", "missing Authorization: Bearer <key> header")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise self._refuse("malformed", "Authorization header must be: Bearer <key>")
        token = token.strip()
        try:
            # A key seen within the cache period is checked inline: no store read, no thread hop.
            key = self.keys.verify(token) if self.keys.is_cached(token) else await run_in_threadpool(self.keys.verify, token)
        except AuthFailure as exc:
            raise self._refuse(exc.reason, str(exc)) from None
        wait = self.limiter.take(key.keyid)
        if wait > 0:
            self.metrics.rate_limited.inc()
            raise ApiError(429, "rate limit exceeded; retry later", {"Retry-After": retry_after(wait)})
        return key

    async def check(self, request: Request, scopes: Collection[str], tenant: str | None = None) -> Caller:
        """Authenticate and authorise: the key must hold one of ``scopes`` and may act only on
        its own tenant. ``tenant`` (a path parameter) wins over ``?tenant=`` and the header."""
        key = await self.key(request)
        if not any(key.allows(s) for s in scopes):
            self.metrics.auth_failures.labels("scope").inc()
            raise ApiError(403, f"this key lacks the {' or '.join(sorted(scopes))} scope")
        asked = tenant or request.query_params.get("tenant") or request.headers.get(TENANT_HEADER)
        if key.tenant == ALL_TENANTS:
            if not asked:
                # guessing a tenant ("default") answers an empty search or a 404 for an alert
                # that exists elsewhere: make the caller say which
                raise ApiError(400, f"this key spans tenants: pass tenant= (or the {TENANT_HEADER} header)")
            chosen = asked
        else:
            if asked and asked != key.tenant:
                self.metrics.auth_failures.labels("tenant").inc()
                raise ApiError(403, "this key may not act on that tenant")
            chosen = key.tenant
        check_tenant(chosen)
        client = request.client.host if request.client else None
        return Caller(key, chosen, client)

    async def cross_tenant(self, request: Request, scopes: Collection[str]) -> ApiKey:
        """A key spanning tenants (``*``) holding one of ``scopes``: for key admin and metrics."""
        key = await self.key(request)
        if key.tenant != ALL_TENANTS or not any(key.allows(s) for s in scopes):
            self.metrics.auth_failures.labels("scope").inc()
            raise ApiError(403, f"this needs a key for all tenants (*) with the {' or '.join(sorted(scopes))} scope")
        return key
