"""What every console page shares: templates, bounded form parsing, cookies, CSRF, the
signed-in person and role checks, security headers."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auditkeep.console.sessions import Session, SessionStore
from auditkeep.console.users import RANK, User, UserStore
from auditkeep.errors import UserError
from auditkeep.server.context import ServerContext

HERE = Path(__file__).parent
SESSION_COOKIE = "ak_session"
LOGIN_COOKIE = "ak_login"  # the CSRF token of the sign-in form (there is no session yet)
MAX_FORM_BYTES = 64 * 1024
MAX_FORM_FIELDS = 100
PREFIX = "/ui"
# the pages of the main navigation (path below PREFIX, label)
PAGES: list[tuple[str, str]] = [("/search", "Search"), ("/live", "Live tail"), ("/alerts", "Alerts"), ("/integrity", "Integrity"), ("/reviews", "Reviews")]

env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


class LoginNeeded(UserError):
    """No live session: the page redirects to sign-in."""


class Refused(UserError):
    """A request the console refuses with a status and a message page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Person:
    """The signed-in person of a request."""

    token: str
    session: Session
    user: User

    @property
    def tenant(self) -> str:
        return self.user.tenant

    @property
    def role(self) -> str:
        return self.user.role

    def may(self, role: str) -> bool:
        return RANK[self.user.role] >= RANK[role]


def console(request: Request) -> ServerContext:
    ctx: ServerContext = request.app.state.ctx
    return ctx


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


async def person(request: Request, role: str = "viewer") -> Person:
    """The signed-in person, holding at least ``role``: LoginNeeded or Refused(403) otherwise.
    The account is read on every request, so disabling it or changing its role acts at once."""
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token:
        raise LoginNeeded()
    ctx = console(request)

    def load() -> tuple[Session, User] | None:
        s = SessionStore(ctx.ledger.store).get(token)
        if s is None:
            return None
        u = UserStore(ctx.ledger.store).get(s.tenant, s.username)
        if u is None or u.disabled_ns is not None:
            SessionStore(ctx.ledger.store).end(token)
            return None
        return s, u

    found = await run_in_threadpool(load)
    if found is None:
        raise LoginNeeded()
    p = Person(token, found[0], found[1])
    if not p.may(role):
        raise Refused(403, f"This page needs the {role} role; you are signed in as a {p.role}.")
    return p


async def read_form(request: Request) -> dict[str, list[str]]:
    """An ``application/x-www-form-urlencoded`` body, bounded in size and field count."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise Refused(415, "Forms must be sent as application/x-www-form-urlencoded.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise Refused(413, f"The form is larger than {MAX_FORM_BYTES} bytes.")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "The form could not be read.") from None
    out: dict[str, list[str]] = {}
    for k, v in pairs:
        out.setdefault(k, []).append(v)
    return out


def field(form: dict[str, list[str]], name: str, limit: int = 1000) -> str:
    value = form.get(name, [""])[0]
    if len(value) > limit:
        raise Refused(400, f"The field {name} is longer than {limit} characters.")
    return value


def check_origin(request: Request) -> None:
    """A state-changing request must come from our own pages: when the browser names an
    Origin it must be this server (SameSite=Strict cookies and the CSRF token do the rest)."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    host = request.headers.get("host", "")
    if urlsplit(origin).netloc != host:
        raise Refused(403, "Cross-site request refused.")


def check_csrf(request: Request, form: dict[str, list[str]], expected: str) -> None:
    check_origin(request)
    given = field(form, "csrf", 200)
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Refused(403, "The form's security token is missing or stale; reload the page and try again.")


def render(request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    html = env.get_template(template).render(prefix=PREFIX, pages=PAGES, path=request.url.path, **values)
    return HTMLResponse(html, status, headers={"Cache-Control": "no-store"})


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PREFIX + "/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def redirect(to: str) -> RedirectResponse:
    return RedirectResponse(to, 303)


def safe_next(value: str | None) -> str:
    """Where to go after sign-in: a console path only (never another site)."""
    if value and value.startswith(PREFIX + "/") and not value.startswith("//") and "\\" not in value:
        return value
    return PREFIX + "/"


CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)
_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


class SecurityHeaders:
    """Adds the console's security headers to every response it sends."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with)
