"""Helpers of the SDK tests: every event of an embedded log, and a real uvicorn for ASGI apps."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from auditkeep.ledger import Ledger


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
