"""Fixtures of the SDK tests: an embedded log, a real uvicorn for ASGI apps, and the real
auditkeep server in a subprocess (see sdk_server.py)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from auditkeep.ledger import Ledger, LedgerConfig


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Ledger]:
    """The embedded ledger, as an application's AuditLog."""
    ledger = Ledger.open(tmp_path / "embedded", LedgerConfig(durability="normal"))
    try:
        yield ledger
    finally:
        ledger.close()


def all_events(log: Ledger, tenant: str = "default", **filters: Any) -> list[Any]:
    page = log.search(tenant, order="oldest", limit=10_000, **filters)
    return [r.event for r in page.items]


@contextmanager
def serve_asgi(app: Any) -> Iterator[str]:
    """Run ``app`` on a real uvicorn on 127.0.0.1 (a free port); yield its base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started:
                break
            threading.Event().wait(0.01)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
