"""The console as an ASGI app, mounted by the server at ``/ui``."""

from __future__ import annotations

from urllib.parse import quote

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from auditkeep.console import accounts, alerts, event, integrity, live, reviews, search, timeline
from auditkeep.console.integrity import VerifyJobs
from auditkeep.console.secretbox import load_box
from auditkeep.console.throttle import LoginThrottle
from auditkeep.console.users import UserStore
from auditkeep.console.web import (
    HERE,
    PREFIX,
    LoginNeeded,
    Refused,
    SecurityHeaders,
    person,
    redirect,
    render,
)
from auditkeep.errors import NotFound
from auditkeep.model.errors import ValidationError
from auditkeep.server.context import ServerContext


async def home(request: Request) -> Response:
    await person(request)
    return redirect(PREFIX + "/search")


async def _login_needed(request: Request, exc: Exception) -> Response:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return redirect(f"{PREFIX}/login?next={quote(here, safe='')}")


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    return render(request, "error.html", exc.status, code=exc.status, message=exc.message)


async def _invalid(request: Request, exc: Exception) -> Response:
    return render(request, "error.html", 400, code=400, message=str(exc))


async def _not_found(request: Request, exc: Exception) -> Response:
    return render(request, "error.html", 404, code=404, message=str(exc))


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return render(request, "error.html", exc.status_code, code=exc.status_code, message=exc.detail)


def console_app(ctx: ServerContext) -> ASGIApp:
    app = Starlette(
        routes=[
            Route("/", home, methods=["GET"]),
            *accounts.routes,
            *search.routes,
            *event.routes,
            *live.routes,
            *integrity.routes,
            *alerts.routes,
            *reviews.routes,
            *timeline.routes,
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        exception_handlers={
            LoginNeeded: _login_needed,
            Refused: _refused,
            ValidationError: _invalid,
            NotFound: _not_found,
            HTTPException: _http,
        },
    )
    app.state.ctx = ctx
    # the console key seals TOTP secrets; secrets of older records, kept in clear, are sealed now
    app.state.box = load_box(ctx.settings, ctx.ledger.store)
    UserStore(ctx.ledger.store, app.state.box).seal_secrets()
    app.state.throttle = LoginThrottle()  # failed sign-ins per client address
    app.state.verify_jobs = VerifyJobs()  # "Verify now" runs, one at a time per tenant
    app.state.swept = float("-inf")  # when ended sessions were last swept (monotonic)
    return SecurityHeaders(app)
