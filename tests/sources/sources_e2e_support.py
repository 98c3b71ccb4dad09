"""A real ``auditkeep serve`` (and CLI runs) for the source end-to-end tests."""

from __future__ import annotations

import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from server_harness import KEY_RE, ServeProcess, clean_env, free_port, run_cli

__all__ = ["KEY_RE", "Server", "cli", "env", "free_port"]


def env(**extra: str) -> dict[str, str]:
    """The environment without this process's ``AUDITKEEP_*``, rate limits off, plus ``extra``."""
    return clean_env(**{"AUDITKEEP_RATE_LIMIT": "0", **extra})


def cli(*args: str, data: Path, extra_env: dict[str, str] | None = None, stdin: bytes | None = None,
        timeout: float = 120, in_process: bool = False) -> subprocess.CompletedProcess[bytes]:
    """``auditkeep ARGS --data DATA`` as a subprocess (or its ``main()`` in this process:
    server_harness.run_cli)."""
    if in_process:
        return run_cli([*args, "--data", str(data)], env=env(**(extra_env or {})), cwd=data.parent, input=stdin)
    return subprocess.run(
        [sys.executable, "-m", "auditkeep.cli.main", *args, "--data", str(data)],
        input=stdin,
        capture_output=True,
        env=env(**(extra_env or {})),
        cwd=data.parent,
        timeout=timeout,
    )


class Server(ServeProcess):
    """``auditkeep serve`` on 127.0.0.1 (a free port) over ``data``; ``admin`` is its key."""

    def __init__(
        self,
        data: Path,
        extra_env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
        verify: ssl.SSLContext | None = None,
    ) -> None:
        data.parent.mkdir(parents=True, exist_ok=True)
        self.data = data
        port = free_port()
        super().__init__(
            ["--data", str(data), "--body-timeout", "10", "--log-level", "warning", *args],
            log=data.parent / f"server-{port}.log",
            env=env(**(extra_env or {})),
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

    def client(self, key: str | None = None, **kw: Any) -> httpx.Client:
        """A client with ``key`` (the admin key by default; ``""``: no Authorization header)."""
        kw.setdefault("timeout", 60)
        return super().client(self.admin if key is None else key, **kw)

    def search(self, tenant: str, **params: Any) -> list[dict[str, Any]]:
        """Every event of the tenant matching ``params`` (all pages), without the server's
        own records of reads (``auditkeep.*``), which searching adds."""
        out: list[dict[str, Any]] = []
        cursor = None
        with self.client() as c:
            while True:
                q = {"tenant": tenant, "limit": 1000, **params, **({"cursor": cursor} if cursor else {})}
                r = c.get("/v1/events", params=q)
                assert r.status_code == 200, r.text
                body = r.json()
                out += [e["event"] for e in body["events"] if not e["event"]["action"].startswith("auditkeep.")]
                cursor = body["next_cursor"]
                if not cursor:
                    return out

    def wait_for(self, tenant: str, count: int, timeout: float = 30, **params: Any) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            got = self.search(tenant, **params)
            if len(got) >= count or time.monotonic() > deadline:
                return got
            time.sleep(0.2)

