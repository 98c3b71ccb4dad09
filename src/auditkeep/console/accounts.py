"""Sign-in, sign-out and the tenant admin's account page."""

from __future__ import annotations

import hmac
import secrets
import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from auditkeep.console.audit import record
from auditkeep.console.sessions import LIFETIME_S, SessionStore
from auditkeep.console.throttle import PER_MINUTE, LoginThrottle
from auditkeep.console.users import ROLES, LoginRefused, UserStore
from auditkeep.console.web import (
    LOGIN_COOKIE,
    PREFIX,
    SESSION_COOKIE,
    Refused,
    check_csrf,
    check_origin,
    client_ip,
    console,
    field,
    person,
    read_form,
    redirect,
    render,
    safe_next,
    set_cookie,
)
from auditkeep.model.errors import ValidationError

FAILED = "Sign-in failed: wrong tenant, username or password, or the account is locked or disabled."
THROTTLED = "Too many failed sign-ins from your address: wait a minute and try again."
SWEEP_EVERY_S = 60.0


def _login_page(request: Request, token: str, status: int = 200, error: str | None = None, **values: str) -> Response:
    resp = render(request, "login.html", status, csrf=token, error=error, next=safe_next(request.query_params.get("next")), **values)
    set_cookie(request, resp, LOGIN_COOKIE, token, 3600)
    return resp


async def login_form(request: Request) -> Response:
    token = request.cookies.get(LOGIN_COOKIE) or ""
    if len(token) != 43:
        token = secrets.token_urlsafe(32)
    return _login_page(request, token)


async def login(request: Request) -> Response:
    ctx = console(request)
    form = await read_form(request)
    check_origin(request)
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    given = field(form, "csrf", 200)
    if not cookie or not hmac.compare_digest(cookie.encode(), given.encode()):
        raise Refused(403, "The sign-in form's security token is missing or stale; reload the page and try again.")
    tenant = field(form, "tenant", 63).strip()
    username = field(form, "username", 64).strip()
    password = field(form, "password", 1024)
    code = field(form, "code", 20)
    nxt = safe_next(field(form, "next", 2000))
    users = UserStore(ctx.ledger.store, request.app.state.box)
    throttle: LoginThrottle = request.app.state.throttle
    address = client_ip(request) or "-"

    def attempt() -> str | None:
        try:
            if not throttle.allowed(address):
                raise LoginRefused("too many failed sign-ins from this address")
            users.authenticate(tenant, username, password, code)
        except LoginRefused as exc:
            throttle.failed(address)
            record(ctx, request, tenant, username, "auditkeep.console.login", category="authentication",
                   outcome="failure", reason=exc.reason)
            return exc.reason
        return None

    refused = await run_in_threadpool(attempt)
    if refused is not None:
        if refused.startswith("too many"):
            resp = _login_page(request, secrets.token_urlsafe(32), 429, THROTTLED, tenant=tenant, username=username)
            resp.headers["Retry-After"] = str(int(60 / PER_MINUTE) + 1)
            return resp
        return _login_page(request, secrets.token_urlsafe(32), 401, FAILED, tenant=tenant, username=username)
    sessions = SessionStore(ctx.ledger.store)

    def open_session() -> str:
        # A new session id at every sign-in; whatever session cookie the browser brought is ended.
        old = request.cookies.get(SESSION_COOKIE)
        if old:
            sessions.end(old)
        # ended sessions whose browser never came back are swept here, at most once a minute
        now = time.monotonic()
        if now - request.app.state.swept >= SWEEP_EVERY_S:
            request.app.state.swept = now
            sessions.sweep()
        token, _ = sessions.create(tenant, username)
        record(ctx, request, tenant, username, "auditkeep.console.login", category="authentication")
        return token

    token = await run_in_threadpool(open_session)
    resp = redirect(nxt)
    set_cookie(request, resp, SESSION_COOKIE, token, LIFETIME_S)
    resp.delete_cookie(LOGIN_COOKIE, path=PREFIX + "/")
    return resp


async def logout(request: Request) -> Response:
    ctx = console(request)
    p = await person(request)
    form = await read_form(request)
    check_csrf(request, form, p.session.csrf)

    def end() -> None:
        SessionStore(ctx.ledger.store).end(p.token)
        record(ctx, request, p.tenant, p.user.username, "auditkeep.console.logout", category="authentication")

    await run_in_threadpool(end)
    resp = redirect(PREFIX + "/login")
    resp.delete_cookie(SESSION_COOKIE, path=PREFIX + "/")
    return resp


async def users_page(request: Request, error: str | None = None, status: int = 200) -> Response:
    ctx = console(request)
    p = await person(request, "admin")
    found = await run_in_threadpool(UserStore(ctx.ledger.store).list, p.tenant)
    rows = sorted((u.public() for u in found), key=lambda u: str(u["username"]))
    return render(request, "users.html", status, me=p, users=rows, roles=ROLES, error=error)


async def users_action(request: Request) -> Response:
    """Add or disable an account of the admin's own tenant."""
    ctx = console(request)
    p = await person(request, "admin")
    form = await read_form(request)
    check_csrf(request, form, p.session.csrf)
    op = field(form, "op", 20)
    username = field(form, "username", 64).strip()
    users = UserStore(ctx.ledger.store)
    if op == "disable" and username == p.user.username:
        return await users_page(request, "You cannot disable your own account.", 400)

    def change() -> None:
        if op == "add":
            users.add(p.tenant, username, field(form, "role", 20), field(form, "password", 1024))
            action, meta = "auditkeep.console.user.create", {"role": field(form, "role", 20)}
        elif op == "disable":
            users.disable(p.tenant, username)
            action, meta = "auditkeep.console.user.disable", {}
        else:
            raise Refused(400, "Unknown account operation.")
        record(ctx, request, p.tenant, p.user.username, action, category="admin",
               resource={"type": "console_user", "id": username}, metadata=meta)

    try:
        await run_in_threadpool(change)
    except ValidationError as exc:
        return await users_page(request, str(exc), 400)
    return redirect(PREFIX + "/admin/users")


routes = [
    Route("/login", login_form, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/admin/users", users_page, methods=["GET"]),
    Route("/admin/users", users_action, methods=["POST"]),
]
