"""The one harness for tests that need a real ``auditkeep serve``: a free port, a clean
environment, a process started and stopped, its log, and an httpx client.

Every suite's helper (tests/server/http_server_support.py, tests/sources/sources_e2e_support.py,
tests/client/sdk_server.py, tests/multinode/multinode_support.py, tests/alerts/alerts_live_support.py,
tests/gateway_mcp/mcp_gateway_support.py) builds on this module rather than on its own copy.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import httpx

AUDITKEEP = [sys.executable, "-m", "auditkeep.cli.main"]
KEY_RE = re.compile(r"ak_[a-z2-7]{12}_[A-Za-z0-9_-]{43}")


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1 that nothing listens on now (TCP, or UDP with ``SOCK_DGRAM``)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[Any] | None = None, timeout: float = 60.0) -> None:
    """Until something listens on ``port`` (fails at once if ``proc`` exits)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any ``AUDITKEEP_*`` variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITKEEP_")}
    env.update(extra)
    return env


def run_cli(
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    input: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """``auditkeep ARGS`` run in this process (its ``main()``, with ``env`` as the whole
    environment, ``cwd``, ``input`` on stdin), as ``subprocess.run`` would report it.

    A CLI process spends 0.1-0.3 s of CPU starting (benchmarks/bench_startup.py); tests of
    what a short command does, rather than of the process around it, call this instead. Each command keeps a test
    that runs it as a real process. Not for commands that serve or install signal handlers."""
    import io

    from auditkeep.cli.main import main

    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    saved = sys.argv, sys.stdin, sys.stdout, sys.stderr
    out, err = io.BytesIO(), io.BytesIO()
    stdout = io.TextIOWrapper(out, encoding="utf-8", errors="backslashreplace", write_through=True)
    stderr = io.TextIOWrapper(err, encoding="utf-8", errors="backslashreplace", write_through=True)
    stdin = io.TextIOWrapper(io.BytesIO(input or b""), encoding="utf-8")
    os.environ.clear()
    os.environ.update(env)
    code: int = 0
    try:
        if cwd is not None:
            os.chdir(cwd)
        sys.argv = ["auditkeep", *args]
        sys.stdin, sys.stdout, sys.stderr = stdin, stdout, stderr
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if isinstance(exc.code, str):
                stderr.write(exc.code + "\n")
        stdout.flush()
        stderr.flush()
    finally:
        sys.argv, sys.stdin, sys.stdout, sys.stderr = saved
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return subprocess.CompletedProcess(["auditkeep", *args], code, out.getvalue(), err.getvalue())


class ServeProcess:
    """``auditkeep serve ARGS --port PORT`` on 127.0.0.1, its output in ``log``.

    ``start()`` waits until ``/healthz`` answers; ``stop()`` sends ``sig`` (SIGKILL after a
    grace period) and can be followed by another ``start()`` on the same port. ``admin`` is
    the admin key the first start of a new data directory prints (empty otherwise)."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        log: Path,
        env: Mapping[str, str],
        cwd: Path | None = None,
        verify: ssl.SSLContext | None = None,
        port: int | None = None,
        ready_timeout: float = 120.0,  # a start waits for imports: 30 s was exceeded at load 20
        name: str = "server",
    ) -> None:
        self.port = port or free_port()
        self.tls = verify  # set for a TLS server: how clients trust it
        self.url = f"{'https' if verify else 'http'}://127.0.0.1:{self.port}"
        self.log = log
        self.admin = ""
        self._args = list(args)
        self._env = dict(env)
        self._cwd = cwd
        self._ready_timeout = ready_timeout
        self._name = name
        self._log_fh: IO[bytes] | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, mode: str = "wb") -> ServeProcess:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self._log_fh = self.log.open(mode)
        self.proc = subprocess.Popen(
            [*AUDITKEEP, "serve", *self._args, "--port", str(self.port)],
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
            env=self._env,
            cwd=self._cwd,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop(signal.SIGKILL)
            raise
        found = KEY_RE.findall(self.output())
        self.admin = self.admin or (found[0] if found else "")
        return self

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self._ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self._name} exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1, verify=self.tls or True).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self._name} did not start:\n{self.output()}")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def client(self, key: str | None = None, **kw: Any) -> httpx.Client:
        """An httpx client of this server, with ``key`` as its bearer token if given."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        kw.setdefault("verify", self.tls or True)
        kw.setdefault("timeout", 30)
        return httpx.Client(base_url=self.url, headers=headers, **kw)

    def key(self, tenant: str, scopes: str, **extra: str) -> str:
        """A new key made through the API with the admin key."""
        with self.client(self.admin) as c:
            r = c.post("/v1/keys", json={"tenant": tenant, "scopes": scopes, **extra})
            assert r.status_code == 201, r.text
            return str(r.json()["key"])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Stop the process with ``sig`` (SIGKILL after ``timeout``); its exit status."""
        status = 0
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(sig)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            status = int(self.proc.returncode)
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None
        return status
