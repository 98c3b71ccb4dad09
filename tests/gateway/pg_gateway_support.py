"""Support for the PostgreSQL gateway tests: a gateway running in a thread of its own over a
real ledger, the machine's PostgreSQL (127.0.0.1:5432, trust) as upstream, and a private
PostgreSQL instance (initdb/pg_ctl on a free port) whose pg_hba.conf asks for passwords —
cleartext, MD5 and SCRAM-SHA-256 — and which a test may stop and start."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from auditkeep.gateway.approvals import ApprovalBook
from auditkeep.gateway.postgres import Gateway, GatewayConfig
from auditkeep.gateway.postgres.server import new_event_loop
from auditkeep.gateway.sink import EventSink, LedgerSink
from auditkeep.ledger import Ledger

UPSTREAM = ("127.0.0.1", 5432)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def dsn(port: int, user: str = "postgres", dbname: str = "test", **extra: str) -> str:
    parts = [f"host=127.0.0.1 port={port} dbname={dbname} user={user}", *(f"{k}={v}" for k, v in extra.items())]
    return " ".join(parts)


def unique(prefix: str = "gw") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


class RunningGateway:
    """A :class:`Gateway` serving in a background thread with its own event loop."""

    def __init__(self, ledger: Ledger, tenant: str = "acme", rules: Path | None = None, *,
                 sink: EventSink | None = None, upstream: tuple[str, int] = UPSTREAM, approvals: bool = True,
                 **config: Any) -> None:  # fmt: skip
        self.ledger = ledger
        self.tenant = tenant
        self.sink = sink or LedgerSink(ledger, tenant, "postgres-gateway")
        self.book = ApprovalBook(ledger)
        cfg = GatewayConfig(listen=("127.0.0.1", 0), upstream=upstream, tenant=tenant,
                            rules=str(rules) if rules else None, **config)  # fmt: skip
        self.gw = Gateway(cfg, self.sink, self.book if approvals else None)
        self.loop = new_event_loop()  # uvloop, as `auditkeep gateway postgres` runs
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.gw.start())
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        if not started.wait(10):
            raise RuntimeError("gateway did not start")
        self.port = self.gw.address[1]

    def dsn(self, user: str = "postgres", dbname: str = "test", **extra: str) -> str:
        return dsn(self.port, user, dbname, **extra)

    def connect(self, user: str = "postgres", **kw: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn(user), autocommit=True, **kw)

    def sessions(self) -> int:
        return len(self.gw._sessions)

    def wait_idle(self, timeout: float = 10) -> None:
        """Until every session has ended (their end events are emitted)."""
        deadline = time.monotonic() + timeout
        while self.sessions() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.sessions() == 0, "sessions did not end"

    def events(self, timeout: float = 20) -> list[Any]:
        """Every event of the tenant, once all sessions ended and the sink is flushed."""
        self.wait_idle()
        assert self.sink.flush(timeout)
        try:
            size = self.ledger.head(self.tenant).size
        except Exception:
            return []
        return [r.event for r in self.ledger.records(0, size, self.tenant)]

    def stop(self) -> None:
        fut = asyncio.run_coroutine_threadsafe(self.gw.stop(), self.loop)
        fut.result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        self.sink.close()


def db_events(events: list[Any], action: str | None = None) -> list[dict[str, Any]]:
    """The ``metadata.db`` of the events (of one action), with action and outcome added."""
    out = []
    for e in events:
        if action is not None and e.action != action:
            continue
        db = dict((e.metadata or {}).get("db", {}))
        db["_action"], db["_outcome"], db["_reason"] = e.action, e.outcome, e.reason
        out.append(db)
    return out


def wait_for(check: Callable[[], Any], timeout: float = 20, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# -- a private PostgreSQL instance ---------------------------------------------------------


def _as_postgres() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for base in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (base / name).exists():
            return str(base / name)
    raise RuntimeError(f"{name} not found (PostgreSQL server binaries are needed)")


HBA = """\
local all all trust
host all postgres 127.0.0.1/32 trust
host all pw_plain 127.0.0.1/32 password
host all pw_md5 127.0.0.1/32 md5
host all all 127.0.0.1/32 scram-sha-256
"""
PASSWORD = "s3cret-Pw"


class PrivatePostgres:
    """initdb + pg_ctl on a free port; roles pw_plain (cleartext), pw_md5 (MD5), pw_scram
    (SCRAM-SHA-256), all with :data:`PASSWORD`."""

    def __init__(self, port: int) -> None:
        # Under /tmp itself: pytest's own temporary directories are closed to other users.
        root = self.root = Path(tempfile.mkdtemp(prefix="auditkeep-pg-"))
        self.port = port
        os.chmod(root, 0o777)
        self.data = root / "pgdata"
        self.log = root / "pg.log"
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
        subprocess.run([*_as_postgres(), _bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                        "--no-sync", "-E", "UTF8"], check=True, capture_output=True, timeout=120)  # fmt: skip
        (self.data / "pg_hba.conf").write_text(HBA)
        with (self.data / "postgresql.conf").open("a") as f:
            f.write(f"port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{root}'\n"
                    "fsync = off\nshared_buffers = 16MB\nmax_connections = 40\n")  # fmt: skip
        self.start()
        with psycopg.connect(self.url(), autocommit=True) as c:
            c.execute("SET password_encryption = 'md5'")
            c.execute(f"CREATE ROLE pw_md5 LOGIN PASSWORD '{PASSWORD}'")
            c.execute("SET password_encryption = 'scram-sha-256'")
            c.execute(f"CREATE ROLE pw_scram LOGIN PASSWORD '{PASSWORD}'")
            c.execute(f"CREATE ROLE pw_plain LOGIN PASSWORD '{PASSWORD}'")

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def _ctl(self, *args: str) -> None:
        subprocess.run([*_as_postgres(), _bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", *args],
                       check=True, capture_output=True, timeout=90)  # fmt: skip

    def start(self) -> None:
        self._ctl("start")

    def stop(self) -> None:
        self._ctl("stop", "-m", "fast")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
