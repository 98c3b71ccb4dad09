"""``/v1/approvals`` on a real server, the remote approvals client, and the
``auditkeep gateway approvals/approve/reject`` commands against a server and a data dir."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from http_server_support import Server

from auditkeep.gateway.approvals import ApprovalBook, ApprovalConflict, SelfApproval
from auditkeep.gateway.remote import RemoteApprovals
from auditkeep.ledger import Ledger
from server_harness import run_cli


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("approvals") / "data")
    try:
        yield srv
    finally:
        srv.stop()
    assert "Traceback" not in srv.output(), srv.output()


def _file(srv: Server, key: str, **extra: Any) -> dict[str, Any]:
    body = {"gateway": "postgres", "requester": "alice", "action": "db.query", "summary": "DROP TABLE t",
            "timeout": 60, "rule": "ddl-review", **extra}
    with srv.client(key) as c:
        r = c.post("/v1/approvals", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_file_list_approve_with_scopes_and_tenants(server: Server) -> None:
    gw = server.key("acme", "ingest", name="pg-gateway")
    admin = server.key("acme", "admin", name="bob")
    other = server.key("globex", "admin", name="carol")
    reader = server.key("acme", "read")
    req = _file(server, gw)
    aid = req["id"]
    assert req["status"] == "pending" and req["tenant"] == "acme"
    with server.client(admin) as c:
        listed = c.get("/v1/approvals", params={"status": "pending"}).json()["approvals"]
        assert aid in [a["id"] for a in listed]
    with server.client(reader) as c:
        assert c.get("/v1/approvals").status_code == 403
        assert c.post(f"/v1/approvals/{aid}/approve").status_code == 403
    with server.client(other) as c:
        assert c.get(f"/v1/approvals/{aid}").status_code == 404
        assert c.post(f"/v1/approvals/{aid}/approve").status_code == 404
    with server.client(gw) as c:  # the filing key sees its request but cannot decide it
        assert c.get(f"/v1/approvals/{aid}").json()["status"] == "pending"
        assert c.post(f"/v1/approvals/{aid}/approve").status_code == 403
    with server.client(admin) as c:
        r = c.post(f"/v1/approvals/{aid}/approve", json={"note": "ok"})
        assert r.status_code == 200, r.text
        assert r.json()["decided_by"] == "bob" and r.json()["status"] == "approved"
        r = c.post(f"/v1/approvals/{aid}/reject")
        assert r.status_code == 409 and r.json()["current"] == "approved"
        events = c.get("/v1/events", params={"action": "auditkeep.approval.*", "order": "oldest"})
    with server.client(reader) as c:
        events = c.get("/v1/events", params={"action": "auditkeep.approval.*", "order": "oldest"})
        actions = [e["event"]["action"] for e in events.json()["events"] if e["event"]["resource"]["id"] == aid]
    assert actions == ["auditkeep.approval.requested", "auditkeep.approval.approved"]


def test_a_key_named_like_the_requester_cannot_decide(server: Server) -> None:
    gw = server.key("acme", "ingest")
    alice = server.key("acme", "admin", name="alice")
    aid = _file(server, gw)["id"]
    with server.client(alice) as c:
        r = c.post(f"/v1/approvals/{aid}/reject")
    assert r.status_code == 403 and "another person" in r.json()["error"] and r.json()["kind"] == "self_approval"


def test_bad_input_is_a_clear_4xx(server: Server) -> None:
    gw = server.key("acme", "ingest")
    admin = server.key("acme", "admin")
    with server.client(gw) as c:
        assert c.post("/v1/approvals", content=b"{nope").status_code == 400
        r = c.post("/v1/approvals", json={"gateway": "postgres"})
        assert r.status_code == 422
        r = c.post("/v1/approvals", json={"gateway": "p", "requester": "a", "action": "x", "summary": "s", "timeout": -1})
        assert r.status_code == 422 and r.json()["field"] == "timeout"
        assert c.post("/v1/approvals", content=b"x" * 100_000).status_code == 413
        r = c.post("/v1/approvals", json={"gateway": "p", "requester": "a", "action": "x", "summary": "s",
                                          "timeout": 5, "surprise": 1})
        assert r.status_code == 422
    with server.client(admin) as c:
        assert c.get("/v1/approvals", params={"status": "maybe"}).status_code == 422
        assert c.get("/v1/approvals", params={"cursor": "zz"}).status_code == 422
        assert c.get("/v1/approvals/../../etc").status_code == 404
        assert c.get("/v1/approvals/" + "a" * 32).status_code == 404
        assert c.get("/v1/approvals/" + "a" * 32, params={"wait": "600"}).status_code == 422


def test_remote_wait_sees_a_decision_and_a_timeout(server: Server) -> None:
    gw = RemoteApprovals(server.url, server.key("acme", "ingest", name="gw"))
    admin = RemoteApprovals(server.url, server.key("acme", "admin", name="dave"))
    try:
        req = gw.request("acme", gateway="postgres", requester="alice", action="db.query", summary="x", timeout=30)
        got: list[str] = []
        t = threading.Thread(target=lambda: got.append(gw.wait(req.id, 30).status))
        t.start()
        time.sleep(0.3)
        assert admin.approve(req.id, "ignored").decided_by == "dave"
        t.join(10)
        assert got == ["approved"]
        with pytest.raises(ApprovalConflict):
            admin.reject(req.id, "ignored")
        short = gw.request("acme", gateway="postgres", requester="alice", action="db.query", summary="y", timeout=0.5)
        assert gw.wait(short.id, 0.5).status == "expired"
        assert [a.id for a in admin.find(status="expired")[0]][:1] == [short.id]
        mine = gw.request("acme", gateway="postgres", requester="dave", action="db.query", summary="z", timeout=30)
        with pytest.raises(SelfApproval):
            admin.approve(mine.id, "ignored")
    finally:
        gw.close()
        admin.close()


def test_ingest_names_a_gateway_source(server: Server) -> None:
    key = server.key("acme", "ingest,read")
    ev = [{"actor": {"id": "alice"}, "action": "db.query"}]
    with server.client(key) as c:
        assert c.post("/v1/events", json=ev, params={"source": "postgres-gateway"}).status_code == 200
        r = c.post("/v1/events", json=ev, params={"source": "kubernetes"})
        assert r.status_code == 422 and r.json()["field"] == "source"


def _cli(*args: str, cwd: Path, process: bool = True) -> subprocess.CompletedProcess[str]:
    """``auditkeep ARGS``: a real process, or (``process=False``) its main() in this process."""
    if not process:
        got = run_cli(args, env=dict(os.environ), cwd=cwd)
        return subprocess.CompletedProcess(got.args, got.returncode, got.stdout.decode(), got.stderr.decode())
    return subprocess.run([sys.executable, "-m", "auditkeep.cli.main", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def test_cli_against_a_server(server: Server, tmp_path: Path) -> None:
    gw = server.key("acme", "ingest")
    admin = server.key("acme", "admin", name="erin")
    aid = _file(server, gw)["id"]
    remote = ("--server", server.url, "--key", admin)
    r = _cli("gateway", "approvals", "--status", "pending", "--json", *remote, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert aid in r.stdout
    r = _cli("gateway", "reject", aid, "--note", "no", *remote, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "rejected (by erin)" in r.stdout
    r = _cli("gateway", "approve", aid, *remote, cwd=tmp_path)
    assert r.returncode == 2 and "rejected" in r.stderr and "Traceback" not in r.stderr
    r = _cli("gateway", "approve", aid, "--server", server.url, "--key", "ak_bad", cwd=tmp_path, process=False)
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_cli_against_a_data_dir(tmp_path: Path) -> None:
    import getpass

    data = tmp_path / "data"
    with Ledger.open(data) as lg:
        book = ApprovalBook(lg)
        mine = book.request("acme", gateway="postgres", requester=getpass.getuser(), action="db.query",
                            summary="TRUNCATE t", timeout=600).id
        theirs = book.request("acme", gateway="postgres", requester="someone-else", action="db.query",
                              summary="TRUNCATE u", timeout=600).id
    # each command runs as a real process once in this module; these through main() in this process
    r = _cli("gateway", "approvals", "--data", str(data), cwd=tmp_path, process=False)
    assert r.returncode == 0 and "2 request(s)" in r.stdout, r.stderr
    r = _cli("gateway", "approvals", "--data", str(data), "--json", "--status", "pending", cwd=tmp_path, process=False)
    assert r.stdout.count("TRUNCATE") == 2, r.stderr
    r = _cli("gateway", "approve", mine, "--data", str(data), cwd=tmp_path, process=False)
    assert r.returncode == 2 and "another person" in r.stderr
    r = _cli("gateway", "approve", theirs, "--data", str(data), "--note", "fine", cwd=tmp_path, process=False)
    assert r.returncode == 0, r.stderr
    r = _cli("gateway", "show", theirs, "--data", str(data), cwd=tmp_path)
    assert '"status":"approved"' in r.stdout
    r = _cli("gateway", "approve", "f" * 32, "--data", str(data), cwd=tmp_path, process=False)
    assert r.returncode == 2 and "no approval request" in r.stderr
