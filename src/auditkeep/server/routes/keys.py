"""``/v1/keys``: API key administration for keys with the ``admin`` scope.

A key for all tenants (``*``) manages every key; a tenant's admin key manages that
tenant's keys only and cannot mint a key for all tenants. Creation and revocation are
recorded in the log (durably, before the answer) like the CLI's.
"""

from __future__ import annotations

import asyncio

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from auditkeep.model.errors import ValidationError
from auditkeep.server.audit import key_event, key_event_tenant
from auditkeep.server.context import ServerContext, context
from auditkeep.server.errors import ApiError, json_response
from auditkeep.server.keys import ALL_TENANTS, ApiKey, LastAdminKey, parse_expiry
from auditkeep.server.params import int_param


class KeyRequest(msgspec.Struct, forbid_unknown_fields=True):
    scopes: list[str] | str
    tenant: str | None = None
    expires: str | None = None
    name: str | None = None


_request = msgspec.json.Decoder(KeyRequest)
MAX_BODY = 16 * 1024


async def _record(ctx: ServerContext, action: str, key: ApiKey, actor: ApiKey) -> None:
    fut = ctx.auditor.submit(key_event(action, key, actor.keyid), key_event_tenant(key), actor.keyid)
    if fut is not None:
        await asyncio.wrap_future(fut)


async def create_key(request: Request) -> Response:
    ctx = context(request)
    admin = await ctx.guard.key(request)
    if not admin.allows("admin"):
        raise ApiError(403, "this key lacks the admin scope")
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise ApiError(413, f"body larger than {MAX_BODY} bytes")
    try:
        req = _request.decode(raw)
    except msgspec.ValidationError as exc:
        raise ValidationError(str(exc).split(" - at ")[0].lower(), "body") from None
    except msgspec.DecodeError:
        raise ApiError(400, "malformed JSON") from None
    tenant = req.tenant or (admin.tenant if admin.tenant != ALL_TENANTS else None)
    if tenant is None:
        raise ValidationError("required for an admin key of all tenants (use * for all)", "tenant")
    if admin.tenant != ALL_TENANTS and tenant != admin.tenant:
        raise ApiError(403, "this key may only create keys for its own tenant")
    expires = parse_expiry(req.expires)
    key, token = await run_in_threadpool(ctx.keys.create, tenant, req.scopes, expires, req.name)
    await _record(ctx, "auditkeep.key.create", key, admin)
    return json_response({"key": token, **key.public()}, 201)


async def list_keys(request: Request) -> Response:
    ctx = context(request)
    admin = await ctx.guard.key(request)
    if not admin.allows("admin"):
        raise ApiError(403, "this key lacks the admin scope")
    tenant = request.query_params.get("tenant") or None
    if admin.tenant != ALL_TENANTS:
        if tenant not in (None, admin.tenant):
            raise ApiError(403, "this key may only list its own tenant's keys")
        tenant = admin.tenant
    limit = int_param(request, "limit", 1, 10_000) or 1000
    keys = await run_in_threadpool(ctx.keys.list, tenant, True, limit)
    return json_response({"keys": [k.public() for k in keys]})


async def revoke_key(request: Request) -> Response:
    ctx = context(request)
    admin = await ctx.guard.key(request)
    if not admin.allows("admin"):
        raise ApiError(403, "this key lacks the admin scope")
    keyid = request.path_params["keyid"]
    key = await run_in_threadpool(ctx.keys.get, keyid)
    if key is None or (admin.tenant != ALL_TENANTS and key.tenant != admin.tenant):
        raise ApiError(404, f"no key {keyid}")
    already = key.revoked_ns is not None
    try:
        revoked = await run_in_threadpool(ctx.keys.revoke, keyid)
    except LastAdminKey as exc:
        raise ApiError(409, str(exc)) from None
    if revoked is None:
        raise ApiError(404, f"no key {keyid}")
    if not already:
        await _record(ctx, "auditkeep.key.revoke", revoked, admin)
    return json_response(revoked.public())


routes = [
    Route("/v1/keys", create_key, methods=["POST"]),
    Route("/v1/keys", list_keys, methods=["GET"]),
    Route("/v1/keys/{keyid}", revoke_key, methods=["DELETE"]),
]
