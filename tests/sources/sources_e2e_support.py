"""A real ``auditkeep serve`` (and CLI runs) for the source end-to-end tests."""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

KEY_RE = re.compile(r"ak_[a-z2-7]{12}_[A-Za-z0-9_-]{43}")


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("AUDITKEEP_")}
    out["AUDITKEEP_RATE_LIMIT"] = "0"
    out.update(extra)
    return out


def cli(*args: str, data: Path, extra_env: dict[str, str] | None = None, stdin: bytes | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    """``auditkeep ARGS --data DATA`` as a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "auditkeep.cli.main", *args, "--data", str(data)],
        input=stdin,
        capture_output=True,
        env=env(**(extra_env or {})),
        cwd=data.parent,
        timeout=timeout,
    )


class Server:
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
        self.port = free_port()
        self.verify: ssl.SSLContext | bool = verify or True
        self.url = f"{'https' if verify else 'http'}://127.0.0.1:{self.port}"
        self.log = data.parent / f"server-{self.port}.log"
        self._log_fh = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "auditkeep.cli.main", "serve", "--data", str(data), "--port", str(self.port),
             "--body-timeout", "10", "--log-level", "warning", *args],
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
            env=env(**(extra_env or {})),
            cwd=data.parent,
        )
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1, verify=self.verify).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{self.output()}")
            time.sleep(0.05)
        found = KEY_RE.findall(self.output())
        self.admin = found[0] if found else ""

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def client(self, key: str | None = None) -> httpx.Client:
        """A client with ``key`` (the admin key by default; ``""``: no Authorization header)."""
        headers = {"Authorization": f"Bearer {key or self.admin}"} if key != "" else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, verify=self.verify)

    def key(self, tenant: str, scopes: str) -> str:
        with self.client() as c:
            r = c.post("/v1/keys", json={"tenant": tenant, "scopes": scopes})
            assert r.status_code == 201, r.text
            return str(r.json()["key"])

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

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_fh.close()
        return int(self.proc.returncode)
