"""A real ``auditkeep serve`` in a subprocess on 127.0.0.1 (a free port), reached with httpx."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

from server_harness import KEY_RE, ServeProcess, free_port

__all__ = ["KEY_RE", "Server", "event", "free_port"]


class Server(ServeProcess):
    """One server process over one data directory; ``admin`` is its first-start admin key.
    Keeps this process's ``AUDITKEEP_*`` variables (but not ``AUDITKEEP_CONFIG``)."""

    def __init__(
        self,
        data: Path,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
        verify: ssl.SSLContext | None = None,
    ) -> None:
        self.data = data
        full_env = {**os.environ, "AUDITKEEP_RATE_LIMIT": "0", **(env or {})}
        full_env.pop("AUDITKEEP_CONFIG", None)
        port = free_port()
        super().__init__(
            ["--data", str(data), "--heartbeat", "0.5", "--body-timeout", "2", "--log-level", "warning", *args],
            log=data.parent / f"server-{port}.log",
            env=full_env,
            cwd=data.parent,
            verify=verify,
            port=port,
        )
        self.start()

    @property
    def verify(self) -> ssl.SSLContext | None:
        """How clients trust this server (TLS), or None; tests may swap it for another context."""
        return self.tls

    @verify.setter
    def verify(self, context: ssl.SSLContext | None) -> None:
        self.tls = context


def event(i: int = 0, **fields: object) -> dict[str, object]:
    ev: dict[str, object] = {"actor": {"id": f"user{i}", "type": "user"}, "action": "doc.read",
                             "resource": {"type": "doc", "id": f"d{i}"}, "outcome": "success"}
    ev.update(fields)
    return ev
