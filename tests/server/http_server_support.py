"""A real ``auditkeep serve`` in a subprocess on 127.0.0.1 (a free port), reached with httpx."""

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

import httpx

KEY_RE = re.compile(r"ak_[a-z2-7]{12}_[A-Za-z0-9_-]{43}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """One server process over one data directory; ``admin`` is its first-start admin key."""

    def __init__(
        self,
        data: Path,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
        verify: ssl.SSLContext | None = None,
    ) -> None:
        self.data = data
        self.port = free_port()
        self.verify = verify  # set for a TLS server: how clients trust it
        self.url = f"{'https' if verify else 'http'}://127.0.0.1:{self.port}"
        self.log = data.parent / f"server-{self.port}.log"
        full_env = {**os.environ, "AUDITKEEP_RATE_LIMIT": "0", **(env or {})}
        full_env.pop("AUDITKEEP_CONFIG", None)
        self._log_fh = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "auditkeep.cli.main", "serve", "--data", str(data), "--port", str(self.port),
             "--heartbeat", "0.5", "--body-timeout", "2", "--log-level", "warning", *args],
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=data.parent,
        )
        self._wait_ready()
        found = KEY_RE.findall(self.output())
        self.admin = found[0] if found else ""

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1, verify=self.verify or True).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not start:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def client(self, key: str | None = None, **kw: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        kw.setdefault("verify", self.verify or True)
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kw)  # type: ignore[arg-type]

    def key(self, tenant: str, scopes: str, **extra: str) -> str:
        """A new key made through the API with the admin key."""
        with self.client(self.admin) as c:
            r = c.post("/v1/keys", json={"tenant": tenant, "scopes": scopes, **extra})
            assert r.status_code == 201, r.text
            return str(r.json()["key"])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_fh.close()
        return int(self.proc.returncode)



def event(i: int = 0, **fields: object) -> dict[str, object]:
    ev: dict[str, object] = {"actor": {"id": f"user{i}", "type": "user"}, "action": "doc.read",
                             "resource": {"type": "doc", "id": f"d{i}"}, "outcome": "success"}
    ev.update(fields)
    return ev
