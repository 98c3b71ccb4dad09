"""The real auditkeep server in a subprocess on 127.0.0.1, for the SDK's delivery tests
(tests/server_harness.py runs it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from server_harness import ServeProcess, free_port

AUDITKEEP = [sys.executable, "-m", "auditkeep.cli.main"]


def cli(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AUDITKEEP, *args, "--data", str(data)], capture_output=True, text=True, timeout=60)


class AuditServer(ServeProcess):
    """``auditkeep serve`` on a data directory; stop and start it again on the same port."""

    def __init__(self, data: Path) -> None:
        self.data = data
        port = free_port()
        super().__init__(
            ["--data", str(data), "--log-level", "warning"],
            log=data.parent / f"server-{port}.log",
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            port=port,
        )
        done = cli("init", data=data)
        assert done.returncode == 0, done.stderr

    def create_key(self, tenant: str = "t", scopes: str = "ingest,read") -> str:
        done = cli("keys", "create", "--tenant", tenant, "--scopes", scopes, "--json", data=self.data)
        assert done.returncode == 0, done.stderr
        key: str = json.loads(done.stdout)["key"]
        return key

    def start(self, mode: str = "ab") -> AuditServer:
        """Start (again): the log is appended to, so a restart keeps the earlier output."""
        super().start(mode)
        return self

    def log_text(self) -> str:
        return self.output()[-4000:]

    def verify(self) -> dict[str, Any]:
        """``auditkeep verify --json`` on the data directory (the server stopped)."""
        done = cli("verify", "--json", data=self.data)
        assert done.returncode == 0, done.stdout + done.stderr
        report: dict[str, Any] = json.loads(done.stdout)
        return report
