"""The MCP gateway with a remote ledger (``--server URL --key KEY``): approvals through
``/v1/approvals`` decided by another key, and an outage of the server that neither blocks
the agent nor loses an event."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import http_server_support as hss
import mcp_gateway_support as gw
import pytest


def _pending(srv: hss.Server, key: str, timeout: float = 60.0) -> dict[str, Any]:
    end = time.monotonic() + timeout
    with srv.client(key) as c:
        while time.monotonic() < end:
            found = c.get("/v1/approvals", params={"status": "pending"}).json()["approvals"]
            if found:
                return dict(found[0])
            time.sleep(0.2)
    raise AssertionError("no approval request reached the server")


def test_remote_ledger_approvals_and_an_outage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "srv").mkdir()
    srv = hss.Server(tmp_path / "srv" / "data")
    port = srv.port
    gw_key = srv.key("acme", "ingest", name="mcp-gateway")
    admin = srv.key("acme", "admin", name="bob")
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: sql-review\n    action: review\n    tools: [sql]\n")
    c = gw.RawClient(tmp_path / "unused", "--agent", "bot", "--rules", str(rules), "--server", srv.url,
                     "--key", gw_key, "--spool", str(tmp_path / "spool"))  # fmt: skip
    try:
        c.handshake()
        assert c.request(1, "tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}})["result"]["content"][0]["text"] == "3"

        c.send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "sql", "arguments": {"query": "vacuum"}}})
        req = _pending(srv, admin)
        assert req["requester"] == "bot" and req["gateway"] == "mcp" and req["requested_by"]
        with srv.client(gw_key) as http:  # the key that filed it cannot decide it
            assert http.post(f"/v1/approvals/{req['id']}/approve").status_code == 403
        with srv.client(admin) as http:
            assert http.post(f"/v1/approvals/{req['id']}/approve").status_code == 200
        held = c.recv()
        assert held is not None and held["id"] == 2 and held["result"]["content"][0]["text"] == "ok: vacuum"

        srv.stop()  # the ledger is down: the agent goes on, the events wait in the spool
        for i in range(3, 8):
            got = c.request(i, "tools/call", {"name": "echo", "arguments": {"text": f"during outage {i}"}})
            assert got["result"]["content"][0]["text"] == f"during outage {i}"
        assert c.close(60) == 0  # the rest stays in the spool
        monkeypatch.setattr(hss, "free_port", lambda: port)
        srv = hss.Server(tmp_path / "srv" / "data")  # back, on the same address
        # The next run with that spool delivers what waited, before its own events.
        c = gw.RawClient(tmp_path / "unused", "--agent", "bot", "--server", srv.url, "--key", gw_key,
                         "--spool", str(tmp_path / "spool"))  # fmt: skip
        c.handshake()
        assert c.close(60) == 0
    finally:
        if c.proc.poll() is None:
            c.proc.kill()
        srv.stop()

    events = [e for e in gw.recorded(tmp_path / "srv" / "data") if e["action"].startswith("mcp.")]
    calls = [e for e in events if e["action"] == "mcp.tools.call"]
    assert [e["resource"]["id"] for e in calls] == ["add", "sql"] + ["echo"] * 5
    assert [e["metadata"]["mcp"]["arguments"].get("text") for e in calls[2:]] == [f"during outage {i}" for i in range(3, 8)]
    assert calls[1]["metadata"]["mcp"]["approval"]["by"] == "bob"
    sessions = [e["metadata"]["mcp"]["session"] for e in events]
    first, second = sessions[0], sessions[-1]
    assert first != second and sessions == [first] * (len(sessions) - 2) + [second] * 2
    assert [e["action"] for e in events if e["metadata"]["mcp"]["session"] == first][-1] == "mcp.session.end"
