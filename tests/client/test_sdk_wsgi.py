"""The WSGI middleware around a real Flask app, recording in the embedded log."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import flask
import pytest
from flask.testing import FlaskClient
from sdk_support import all_events

from auditkeep.client import bind, current
from auditkeep.integrations import AuditWSGIMiddleware, Route
from auditkeep.ledger import Ledger


def make_app(log: Ledger) -> flask.Flask:
    app = flask.Flask(__name__)

    @app.get("/whoami")
    def whoami() -> Any:
        return flask.jsonify(current())

    @app.post("/api/invoices/<int:n>/approve")
    def approve(n: int) -> Any:
        if flask.request.headers.get("X-Token") != "ok":
            return "no", 401
        bind(actor="dave")  # authenticated inside the app
        return {"approved": n}

    @app.post("/api/fail")
    def fail() -> Any:
        return "bad input", 422

    @app.get("/stream")
    def stream() -> Any:
        def gen() -> Iterator[str]:
            yield current().get("source", {}).get("request_id", "none")

        return flask.Response(gen())

    @app.post("/api/crash")
    def crash() -> Any:
        raise RuntimeError("handler bug")

    app.wsgi_app = AuditWSGIMiddleware(  # type: ignore[method-assign]
        app.wsgi_app,
        log=log,
        actor=lambda environ: environ.get("HTTP_X_USER"),
        trusted_proxies=["10.0.0.0/8"],
        routes=[Route("/api/*", ["POST"], action="api.call")],
    )
    return app


@pytest.fixture
def client(embedded: Ledger) -> FlaskClient:
    return make_app(embedded).test_client()


def test_context_is_filled_from_the_request(client: FlaskClient) -> None:
    got = client.get(
        "/whoami",
        headers={"X-User": "alice", "X-Request-ID": "req-7", "User-Agent": "pytest/1",
                 "X-Forwarded-For": "198.51.100.7, 10.0.0.8"},
        environ_base={"REMOTE_ADDR": "10.0.0.2"},
    ).json  # fmt: skip
    assert got == {
        "actor": {"id": "alice", "ip": "198.51.100.7", "user_agent": "pytest/1"},
        "source": {"request_id": "req-7"},
    }


def test_untrusted_peer_cannot_spoof_its_ip(client: FlaskClient) -> None:
    got = client.get("/whoami", headers={"X-Forwarded-For": "1.1.1.1"}, environ_base={"REMOTE_ADDR": "203.0.113.5"}).json
    assert got is not None and got["actor"]["ip"] == "203.0.113.5"


def test_streamed_body_sees_the_context(client: FlaskClient) -> None:
    assert client.get("/stream", headers={"X-Request-ID": "req-stream"}).data == b"req-stream"
    assert current() == {}  # nothing leaked into this thread


def status(client: FlaskClient, method: str, path: str, **kw: Any) -> int:
    # A WSGI server closes the response when it is sent; the event is recorded then.
    with client.open(path, method=method, **kw) as response:
        return response.status_code


def test_configured_routes_are_recorded(client: FlaskClient, embedded: Ledger) -> None:
    assert status(client, "POST", "/api/invoices/42/approve", headers={"X-Token": "ok"}) == 200
    assert status(client, "POST", "/api/invoices/43/approve", headers={"X-User": "eve"}) == 401
    assert status(client, "POST", "/api/fail", headers={"X-User": "frank"}) == 422
    assert status(client, "POST", "/api/crash") == 500
    assert status(client, "GET", "/whoami") == 200
    events = all_events(embedded, action="api.call")
    assert [(e.actor.id, e.outcome, e.resource.id) for e in events] == [
        ("dave", "success", "/api/invoices/42/approve"),
        ("eve", "denied", "/api/invoices/43/approve"),
        ("frank", "failure", "/api/fail"),
        ("anonymous", "error", "/api/crash"),
    ]
