"""The real auditkeep server in a subprocess on 127.0.0.1, for the SDK's delivery tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import httpx

AUDITKEEP = [sys.executable, "-m", "auditkeep.cli.main"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AUDITKEEP, *args, "--data", str(data)], capture_output=True, text=True, timeout=60)


class AuditServer:
    """``auditkeep serve`` on a data directory; stop and start it again on the same port."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        done = cli("init", data=data)
        assert done.returncode == 0, done.stderr

    def create_key(self, tenant: str = "t", scopes: str = "ingest,read") -> str:
        done = cli("keys", "create", "--tenant", tenant, "--scopes", scopes, "--json", data=self.data)
        assert done.returncode == 0, done.stderr
        key: str = json.loads(done.stdout)["key"]
        return key

    def start(self) -> None:
        assert self._proc is None
        self._log = (self.data.parent / f"server-{self.port}.log").open("ab")
        self._proc = subprocess.Popen(
            [*AUDITKEEP, "serve", "--data", str(self.data), "--port", str(self.port), "--log-level", "warning"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise AssertionError(f"server exited with {self._proc.returncode}: {self.log_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError(f"server did not start: {self.log_text()}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_text(self) -> str:
        path = self.data.parent / f"server-{self.port}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def verify(self) -> dict[str, Any]:
        """``auditkeep verify --json`` on the data directory (the server stopped)."""
        done = cli("verify", "--json", data=self.data)
        assert done.returncode == 0, done.stdout + done.stderr
        report: dict[str, Any] = json.loads(done.stdout)
        return report
