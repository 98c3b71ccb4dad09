"""``auditkeep gateway postgres --server URL --key KEY``: events through the SDK (with its
spool) into a real server, under the gateway's own capture policy source, and a held
statement decided through ``/v1/approvals``."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from http_server_support import Server, free_port
from pg_gateway_support import UPSTREAM, dsn, wait_for


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "data")
    yield srv
    srv.stop()


def test_events_and_approvals_through_a_server(server: Server, tmp_path: Path) -> None:
    key = server.key("acme", "ingest", name="pg-gateway")
    admin = server.key("acme", "admin,read", name="bob")
    rules = tmp_path / "rules.yml"
    rules.write_text("review_timeout: 30s\nrules:\n  - {name: ddl-review, action: review, kinds: [ddl]}\n")
    port = free_port()
    log = tmp_path / "gateway.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "auditkeep.cli.main", "gateway", "postgres", "--server", server.url, "--key", key,
             "--listen", f"127.0.0.1:{port}", "--upstream", f"{UPSTREAM[0]}:{UPSTREAM[1]}", "--tenant", "acme",
             "--rules", str(rules), "--spool", str(tmp_path / "spool")],
            stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path,
        )  # fmt: skip
    try:
        wait_for(lambda: _listening(port), what="the gateway to listen")

        def approve() -> None:
            with server.client(admin) as c:
                pending = wait_for(lambda: c.get("/v1/approvals", params={"status": "pending"}).json()["approvals"],
                                   what="a pending request")  # fmt: skip
                r = c.post(f"/v1/approvals/{pending[0]['id']}/approve", json={"note": "fine"})
                assert r.status_code == 200, r.text

        with psycopg.connect(dsn(port), autocommit=True) as conn:
            assert conn.execute("SELECT 6 * 7").fetchone() == (42,)
            t = threading.Thread(target=approve)
            t.start()
            conn.execute("CREATE TEMP TABLE held_for_review (a int)")  # waits for bob
            t.join(30)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with server.client(admin) as c:
        def events() -> list[dict[str, object]]:
            r = c.get("/v1/events", params={"action": "db.*", "order": "oldest", "limit": "100"})
            return [e["event"] for e in r.json()["events"]]

        got = wait_for(lambda: (lambda ev: ev if len(ev) >= 4 else None)(events()), what="the events")
    assert [e["action"] for e in got] == ["db.session.start", "db.query", "db.query", "db.session.end"]
    query = got[2]["metadata"]["db"]  # type: ignore[index]
    assert query["approval"]["status"] == "approved" and query["approval"]["by"] == "bob"
    assert got[1]["source"]["service"] == "postgres-gateway"  # type: ignore[index]
    assert "Traceback" not in log.read_text()


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        time.sleep(0.05)
        return False
