"""Running the MCP gateway as the agent's server in tests, and reading what it recorded."""

# free_port and wait_port come from tests/server_harness.py (re-exported for the tests here)

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from mcp import StdioServerParameters

from auditkeep.ledger import Ledger
from server_harness import free_port, wait_port

HERE = Path(__file__).parent
DEMO_SERVER = str(HERE / "mcp_demo_server.py")
TENANT = "acme"


def gateway_params(data: Path, *extra: str, server: list[str] | None = None) -> StdioServerParameters:
    """Spawn ``auditkeep gateway mcp`` (stdio) in front of the demo server (or ``server``)."""
    command = server or [sys.executable, DEMO_SERVER]
    args = ["-m", "auditkeep.cli.main", "gateway", "mcp", "--data", str(data), "--tenant", TENANT,
            *extra, "--", *command]  # fmt: skip
    # The whole environment (the SDK passes only a few variables by default): the gateway
    # and the server run with the same interpreter settings as the test.
    return StdioServerParameters(command=sys.executable, args=args, env=dict(os.environ))


def direct_params(server: list[str] | None = None) -> StdioServerParameters:
    command = server or [sys.executable, DEMO_SERVER]
    return StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))


def recorded(data: Path, tenant: str = TENANT) -> list[dict[str, Any]]:
    """Every event of the tenant's log, in log order, as plain dicts."""
    import msgspec

    with Ledger.open(data, create=False, background=False) as lg:
        size = lg.head(tenant).size
        return [msgspec.to_builtins(r.event) for r in lg.records(0, size, tenant)]


def actions(events: list[dict[str, Any]]) -> list[str]:
    return [e["action"] for e in events]


class Running:
    """A process started for a test, stopped (SIGTERM, then SIGKILL) at the end."""

    def __init__(self, args: list[str], port: int | None = None) -> None:
        import subprocess

        self.proc = subprocess.Popen(args)
        if port is not None:
            try:
                wait_port(port, self.proc)
            except BaseException:
                self.stop()
                raise

    def stop(self) -> int:
        import subprocess

        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def http_server(json_response: bool = False) -> tuple[Running, str]:
    """The demo server on Streamable HTTP; its endpoint URL."""
    port = free_port()
    mode = "http-json" if json_response else "http"
    return Running([sys.executable, DEMO_SERVER, mode, str(port)], port), f"http://127.0.0.1:{port}/mcp"


def http_gateway(data: Path, upstream: str, *extra: str) -> tuple[Running, str]:
    """``auditkeep gateway mcp --listen`` in front of ``upstream``; the URL the agent uses."""
    port = free_port()
    args = [sys.executable, "-m", "auditkeep.cli.main", "gateway", "mcp", "--data", str(data),
            "--tenant", TENANT, "--listen", f"127.0.0.1:{port}", "--upstream", upstream, *extra]  # fmt: skip
    return Running(args, port), f"http://127.0.0.1:{port}/mcp"


class RawClient:
    """The gateway (stdio) driven line by line, for what an SDK client would never send."""

    def __init__(self, data: Path, *extra: str, server: list[str] | None = None) -> None:
        import queue
        import subprocess
        import threading

        params = gateway_params(data, *extra, server=server)
        self.proc = subprocess.Popen([params.command, *params.args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)  # fmt: skip
        self._lines: queue.Queue[bytes | None] = queue.Queue()

        def pump() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self._lines.put(line)
            self._lines.put(None)

        self._pump = threading.Thread(target=pump, daemon=True)
        self._pump.start()

    def send(self, message: dict[str, Any] | bytes) -> None:
        import json

        assert self.proc.stdin is not None
        data = message if isinstance(message, bytes) else json.dumps(message).encode()
        self.proc.stdin.write(data + b"\n")
        self.proc.stdin.flush()

    def recv(self, timeout: float = 30.0) -> dict[str, Any] | None:
        """The next message from the gateway (None: it closed its stdout)."""
        import json

        line = self._lines.get(timeout=timeout)
        return None if line is None else dict(json.loads(line))

    def request(self, rid: int, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)
        got = self.recv()
        assert got is not None
        return got

    def handshake(self) -> None:
        init = self.request(0, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                              "clientInfo": {"name": "raw", "version": "0"}})  # fmt: skip
        assert "result" in init, init
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def close(self, timeout: float = 30.0) -> int:
        assert self.proc.stdin is not None
        if not self.proc.stdin.closed:
            self.proc.stdin.close()
        code = int(self.proc.wait(timeout))
        self._pump.join(timeout)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return code
