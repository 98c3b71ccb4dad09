"""The ASGI middleware in a real Starlette app on a real uvicorn, recording in the embedded log."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sdk_support import all_events, serve_asgi
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route as StarletteRoute

from auditkeep.client import bind, current
from auditkeep.integrations import AuditMiddleware, Route
from auditkeep.ledger import Ledger


async def whoami(request: Request) -> Response:
    return JSONResponse(current())


def sync_login(request: Request) -> Response:
    # A sync endpoint runs in Starlette's thread pool, in a copy of the context.
    bind(actor={"id": "carol", "type": "user"})
    return JSONResponse(current())


async def forbidden(request: Request) -> Response:
    return PlainTextResponse("no", status_code=403)


async def broken(request: Request) -> Response:
    raise RuntimeError("handler bug")


def actor_from_header(scope: Any) -> str | None:
    for k, v in scope["headers"]:
        if k == b"x-user":
            return str(v.decode())
    return None


@pytest.fixture
def base_url(embedded: Ledger) -> Iterator[str]:
    app = Starlette(
        routes=[
            StarletteRoute("/whoami", whoami),
            StarletteRoute("/admin/login", sync_login, methods=["POST"]),
            StarletteRoute("/admin/secret", forbidden, methods=["POST", "GET"]),
            StarletteRoute("/admin/broken", broken, methods=["POST"]),
        ],
        middleware=[
            Middleware(
                AuditMiddleware,
                log=embedded,
                actor=actor_from_header,
                trusted_proxies=["127.0.0.1"],
                routes=[Route("/admin/*", ["POST"], action="admin.request", category="admin")],
                service="shop",
            )
        ],
    )
    with serve_asgi(app) as url:
        yield url


def test_context_is_filled_from_the_request(base_url: str) -> None:
    with httpx.Client(base_url=base_url) as http:
        got = http.get("/whoami", headers={"X-User": "alice", "X-Request-ID": "req-42",
                                           "User-Agent": "pytest/1", "X-Forwarded-For": "6.6.6.6, 198.51.100.7"}).json()  # fmt: skip
    assert got == {
        "actor": {"id": "alice", "ip": "198.51.100.7", "user_agent": "pytest/1"},
        "source": {"service": "shop", "request_id": "req-42"},
    }


def test_request_id_is_generated_when_missing_or_unsafe(base_url: str) -> None:
    with httpx.Client(base_url=base_url) as http:
        a = http.get("/whoami").json()["source"]["request_id"]
        b = http.get("/whoami", headers={"X-Request-ID": "bad id <script>"}).json()["source"]["request_id"]
    assert len(a) == 36 and len(b) == 36 and a != b


def test_configured_routes_are_recorded_with_outcomes(base_url: str, embedded: Ledger) -> None:
    with httpx.Client(base_url=base_url) as http:
        assert http.post("/admin/login").status_code == 200
        assert http.post("/admin/secret", headers={"X-User": "mallory"}).status_code == 403
        assert http.get("/admin/secret").status_code == 403  # GET is not a configured method
        # uvicorn drops the connection after an exception escapes the app; without
        # `Connection: close` the next request could race that close on the pooled socket
        broken = http.post("/admin/broken", headers={"X-User": "bob", "Connection": "close"})
        assert broken.status_code == 500
        assert http.get("/whoami").status_code == 200  # not a configured route
    events = all_events(embedded, action="admin.request")
    assert [(e.actor.id, e.outcome, e.metadata["http"]["status"]) for e in events] == [
        ("carol", "success", 200),  # bound by the handler, after the request began
        ("mallory", "denied", 403),
        ("bob", "error", 500),
    ]
    first = events[0]
    assert first.category == "admin"
    assert first.resource is not None and first.resource.id == "/admin/login"
    assert first.actor.ip == "127.0.0.1"
    assert first.source is not None and first.source.service == "shop" and first.source.request_id
    assert first.metadata["http"]["method"] == "POST"
