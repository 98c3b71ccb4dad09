"""The Django middleware in a real Django test app, recording in the embedded log.

Django is configured here, once per process, with this module as the URLconf.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sdk_support import all_events

django = pytest.importorskip("django")

from django.conf import settings  # type: ignore[import-untyped]  # noqa: E402
from django.http import HttpRequest, HttpResponse, JsonResponse  # type: ignore[import-untyped]  # noqa: E402
from django.urls import path  # type: ignore[import-untyped]  # noqa: E402

from auditkeep.client import bind, current  # noqa: E402
from auditkeep.ledger import Ledger, LedgerConfig  # noqa: E402

LOG: Ledger | None = None  # set by the fixture; the settings name it by dotted path


def whoami(request: HttpRequest) -> HttpResponse:
    return JsonResponse(current())


def approve(request: HttpRequest, n: int) -> HttpResponse:
    if request.headers.get("X-Token") != "ok":
        return HttpResponse("no", status=403)
    bind(actor={"id": "grace"})
    return JsonResponse({"approved": n})


def crash(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("handler bug")


urlpatterns = [
    path("whoami", whoami),
    path("api/invoices/<int:n>/approve", approve),
    path("api/crash", crash),
]


def header_actor(request: HttpRequest) -> str | None:
    user: str | None = request.headers.get("X-User")
    return user


class _LogProxy:
    """The settings hold a dotted path; this resolves it to the test's ledger."""

    def __getattr__(self, name: str) -> Any:
        return getattr(LOG, name)


log_proxy = _LogProxy()

if not settings.configured:
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        SECRET_KEY="test-" + "x" * 50,
        ROOT_URLCONF=__name__,
        USE_TZ=True,
        INSTALLED_APPS=[],
        MIDDLEWARE=["auditkeep.integrations.django.AuditMiddleware"],
        AUDITKEEP={
            "LOG": f"{__name__}.log_proxy",
            "ACTOR": f"{__name__}.header_actor",
            "TRUSTED_PROXIES": ["127.0.0.1"],
            "ROUTES": [{"pattern": "/api/*", "methods": ["POST"], "action": "api.call"}],
            "SERVICE": "billing",
        },
        LOGGING_CONFIG=None,
    )
    django.setup()

from django.test import Client  # type: ignore[import-untyped]  # noqa: E402


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    global LOG
    LOG = Ledger.open(tmp_path / "log", LedgerConfig(durability="normal"))
    try:
        yield Client(raise_request_exception=False)
    finally:
        LOG.close()
        LOG = None


def test_context_is_filled_from_the_request(client: Client) -> None:
    r = client.get("/whoami", headers={"X-User": "alice", "X-Request-ID": "req-9", "User-Agent": "pytest/1",
                                       "X-Forwarded-For": "198.51.100.7"})  # fmt: skip
    assert json.loads(r.content) == {
        "actor": {"id": "alice", "ip": "198.51.100.7", "user_agent": "pytest/1"},
        "source": {"service": "billing", "request_id": "req-9"},
    }


def test_configured_routes_are_recorded(client: Client) -> None:
    assert client.post("/api/invoices/5/approve", headers={"X-Token": "ok"}).status_code == 200
    assert client.post("/api/invoices/6/approve", headers={"X-User": "heidi"}).status_code == 403
    assert client.post("/api/crash", headers={"X-User": "ivan"}).status_code == 500
    assert client.get("/whoami").status_code == 200
    assert LOG is not None
    events = all_events(LOG, action="api.call")
    assert [(e.actor.id, e.outcome, e.metadata["http"]["status"]) for e in events] == [
        ("grace", "success", 200),
        ("heidi", "denied", 403),
        ("ivan", "error", 500),
    ]
    assert events[0].source is not None and events[0].source.service == "billing"


def test_default_actor_is_the_authenticated_user() -> None:
    from auditkeep.integrations.django import user_actor

    class User:
        pk = 7
        is_authenticated = True

        def get_username(self) -> str:
            return "judy"

    class Anonymous:
        is_authenticated = False

    request = HttpRequest()
    request.user = User()
    assert user_actor(request) == {"id": "7", "type": "user", "name": "judy"}
    request.user = Anonymous()
    assert user_actor(request) is None
    assert user_actor(HttpRequest()) is None
