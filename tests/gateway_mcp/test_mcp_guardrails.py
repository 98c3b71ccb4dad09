"""Guardrails of the MCP gateway: denials answered with a JSON-RPC error (the server never
sees the call), and calls held for another person's approval (approved, rejected, self-
approval refused, timed out), with the shared rules file and approvals."""

from __future__ import annotations

import getpass
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import mcp_gateway_support as gw
import pytest
from mcp import ClientSession, stdio_client
from mcp.shared.exceptions import MCPError

from auditkeep.gateway.approvals import ApprovalBook
from auditkeep.ledger import Ledger

DENIED, APPROVAL_TIMEOUT = -32010, -32011

DENY_RULES = r"""
rules:
  - name: no-rm-rf
    action: deny
    message: recursive deletes are not allowed
    tools: [shell]
    arguments: {command: 'rm\s+-rf'}
  - name: no-drop
    action: deny
    tools: [sql]
    any_argument: '(?i)\bdrop\s+(table|database)\b'
  - name: never-crash
    action: deny
    tools: ["cra*"]
"""


async def _calls(params: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with stdio_client(params) as (r, w), ClientSession(r, w) as s:
        await s.initialize()
        for label, tool, args in (
            ("ls", "shell", {"command": "ls -la /srv"}),
            ("rm", "shell", {"command": "rm  -rf /srv"}),
            ("drop", "sql", {"query": "select 1; DROP table users"}),
            ("select", "sql", {"query": "select 1"}),
            ("crash", "crash", {"code": 1}),
            ("after", "add", {"a": 1, "b": 1}),
        ):
            try:
                got = await s.call_tool(tool, args)
                out[label] = got.content[0].text  # type: ignore[union-attr]
            except MCPError as exc:
                out[label] = (exc.error.code, exc.error.message, exc.error.data)
    return out


def test_denied_calls_get_a_json_rpc_error_and_never_reach_the_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(DENY_RULES)
    seen = tmp_path / "server-calls.txt"
    monkeypatch.setenv("MCP_DEMO_LOG", str(seen))
    got = anyio.run(_calls, gw.gateway_params(tmp_path / "data", "--agent", "bot", "--rules", str(rules)))

    assert got["ls"] == "ran: ls -la /srv" and got["select"] == "ok: select 1" and got["after"] == "2"
    assert got["rm"] == (DENIED, "denied by the gateway: recursive deletes are not allowed",
                         {"gateway": "auditkeep", "rule": "no-rm-rf"})  # fmt: skip
    assert got["drop"][0] == DENIED and got["drop"][2]["rule"] == "no-drop"
    assert got["crash"][0] == DENIED  # and so the server is still there for the next call
    assert seen.read_text().splitlines() == ["shell: ls -la /srv", "sql: select 1"]

    calls = [e for e in gw.recorded(tmp_path / "data") if e["action"] == "mcp.tools.call"]
    assert [(e["resource"]["id"], e["outcome"], e["metadata"]["mcp"].get("rule")) for e in calls] == [
        ("shell", "success", None), ("shell", "denied", "no-rm-rf"), ("sql", "denied", "no-drop"),
        ("sql", "success", None), ("crash", "denied", "never-crash"), ("add", "success", None),
    ]  # fmt: skip
    assert calls[1]["reason"] == "recursive deletes are not allowed"
    assert calls[1]["metadata"]["mcp"]["arguments"] == {"command": "rm  -rf /srv"}


def test_bad_rules_files_are_refused_with_file_and_line(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: x\n    action: deny\n    arguments: {command: '(unclosed'}\n")
    r = subprocess.run([sys.executable, "-m", "auditkeep.cli.main", "gateway", "mcp", "--data", str(tmp_path / "d"),
                        "--tenant", "acme", "--rules", str(rules), "--", "true"],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "rules.yaml:4" in r.stderr and "not a regular expression" in r.stderr


def _review_rules(tmp_path: Path, timeout: str) -> Path:
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"review_timeout: {timeout}\nrules:\n  - name: sql-review\n    action: review\n    tools: [sql]\n")
    return rules


def _pending(data: Path, timeout: float = 60.0) -> list[dict[str, Any]]:
    """The pending approval requests, as `auditkeep gateway approvals --json` lists them."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r = subprocess.run([sys.executable, "-m", "auditkeep.cli.main", "gateway", "approvals", "--data", str(data),
                            "--status", "pending", "--json"], capture_output=True, text=True, timeout=60)  # fmt: skip
        assert r.returncode == 0, r.stderr
        found = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError("no approval request was filed")


def test_a_held_call_runs_once_another_person_approves_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = tmp_path / "server-calls.txt"
    monkeypatch.setenv("MCP_DEMO_LOG", str(seen))
    data = tmp_path / "data"
    me = getpass.getuser()  # the agent runs as the person who will try to approve it
    c = gw.RawClient(data, "--agent", me, "--rules", str(_review_rules(tmp_path, "2m")))
    c.handshake()
    c.send({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "sql", "arguments": {"query": "delete from t"}}})
    [req] = _pending(data)
    assert req["requester"] == me and req["rule"] == "sql-review" and "delete from t" in req["summary"]
    assert not seen.exists()  # held: the server has not seen it

    r = subprocess.run([sys.executable, "-m", "auditkeep.cli.main", "gateway", "approve", req["id"], "--data", str(data)],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 2 and "another person must decide" in r.stderr  # self-approval refused

    with Ledger.open(data, create=False, background=False) as lg:
        ApprovalBook(lg).approve(req["id"], "alice", note="looks fine")
    got = c.recv()
    assert got is not None and got["id"] == 1 and got["result"]["content"][0]["text"] == "ok: delete from t"
    # A second held call, rejected this time.
    c.send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "sql", "arguments": {"query": "drop x"}}})
    [req2] = _pending(data)
    with Ledger.open(data, create=False, background=False) as lg:
        ApprovalBook(lg).reject(req2["id"], "bob", note="not today")
    rejected = c.recv()
    assert rejected is not None and rejected["id"] == 2
    assert rejected["error"]["code"] == DENIED and "bob rejected the call: not today" in rejected["error"]["message"]
    assert c.close() == 0
    assert seen.read_text().splitlines() == ["sql: delete from t"]

    events = gw.recorded(data)
    calls = [e for e in events if e["action"] == "mcp.tools.call"]
    assert [c_["outcome"] for c_ in calls] == ["success", "denied"]
    approved = calls[0]["metadata"]["mcp"]["approval"]
    assert approved["id"] == req["id"] and approved["approved"] is True and approved["by"] == "alice"
    assert calls[1]["metadata"]["mcp"]["approval"]["by"] == "bob"
    kinds = [e["action"] for e in events if e["action"].startswith("auditkeep.approval.")]
    assert kinds == ["auditkeep.approval.requested", "auditkeep.approval.approved",
                     "auditkeep.approval.requested", "auditkeep.approval.rejected"]  # fmt: skip


def test_a_held_call_nobody_approves_times_out(tmp_path: Path) -> None:
    data = tmp_path / "data"
    c = gw.RawClient(data, "--agent", "bot", "--rules", str(_review_rules(tmp_path, "1s")))
    c.handshake()
    got = c.request(1, "tools/call", {"name": "sql", "arguments": {"query": "select 2"}})
    assert got["error"]["code"] == APPROVAL_TIMEOUT and got["error"]["data"]["rule"] == "sql-review"
    assert c.close() == 0
    events = gw.recorded(data)
    call = next(e for e in events if e["action"] == "mcp.tools.call")
    assert call["outcome"] == "denied" and call["metadata"]["mcp"]["approval"]["timed_out"] is True
    assert "auditkeep.approval.expired" in [e["action"] for e in events]


def test_without_rules_nothing_is_held(tmp_path: Path) -> None:
    c = gw.RawClient(tmp_path / "data")
    c.handshake()
    got = c.request(1, "tools/call", {"name": "sql", "arguments": {"query": "drop table x"}})
    assert got["result"]["content"][0]["text"] == "ok: drop table x"
    assert c.close() == 0
