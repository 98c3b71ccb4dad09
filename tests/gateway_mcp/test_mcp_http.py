"""The MCP gateway on the Streamable HTTP transport: a real SDK server (SSE and JSON
answers) behind it, the SDK's Streamable HTTP client in front."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import mcp_gateway_support as gw
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from test_mcp_stdio import _summary


async def _session(url: str) -> dict[str, Any]:
    async with streamable_http_client(url) as (r, w), ClientSession(r, w) as s:
        return await _summary(s)


@pytest.mark.parametrize("json_response", [False, True], ids=["sse", "json"])
def test_http_works_unchanged_and_is_recorded(tmp_path: Path, json_response: bool) -> None:
    server, upstream = gw.http_server(json_response)
    with server:
        direct = anyio.run(_session, upstream)
        gateway, url = gw.http_gateway(tmp_path / "data", upstream, "--agent", "agent-7")
        with gateway:
            through = anyio.run(_session, url)
        assert gateway.proc.returncode == 0
    assert through == direct

    events = gw.recorded(tmp_path / "data")
    assert gw.actions(events) == [
        "mcp.session.start", "mcp.tools.list", "mcp.tools.call", "mcp.tools.call",
        "mcp.resources.read", "mcp.prompts.get", "mcp.session.end",
    ]  # fmt: skip
    start, end = events[0], events[-1]
    assert start["metadata"]["mcp"]["transport"] == "http"
    assert start["metadata"]["mcp"]["server"]["name"] == "demo-server"
    assert len(start["metadata"]["mcp"]["upstream_session"]) == 16  # a digest, never the id
    assert {e["metadata"]["mcp"]["session"] for e in events} == {start["metadata"]["mcp"]["session"]}
    assert all(e["actor"]["id"] == "agent-7" for e in events)
    assert end["reason"] == "the client ended the session"


async def _denied(url: str) -> tuple[Any, Any]:
    from mcp.shared.exceptions import MCPError

    async with streamable_http_client(url) as (r, w), ClientSession(r, w) as s:
        await s.initialize()
        ok = await s.call_tool("shell", {"command": "ls"})
        try:
            await s.call_tool("shell", {"command": "rm -rf /"})
        except MCPError as exc:
            return ok.content[0].text, (exc.error.code, exc.error.data)  # type: ignore[union-attr]
    raise AssertionError("the call went through")


def test_http_denials_and_bad_requests(tmp_path: Path) -> None:
    import httpx

    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: no-rm\n    action: deny\n    tools: [shell]\n    arguments: {command: 'rm -rf'}\n")
    server, upstream = gw.http_server()
    with server:
        gateway, url = gw.http_gateway(tmp_path / "data", upstream, "--rules", str(rules), "--max-message-bytes", "4096")
        with gateway:
            ok, denied = anyio.run(_denied, url)
            assert ok == "ran: ls" and denied == (-32010, {"gateway": "auditkeep", "rule": "no-rm"})
            headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
            with httpx.Client(headers=headers, timeout=30) as http:
                r = http.post(url, content=b"{not json")
                assert r.status_code == 400 and r.json()["error"]["code"] == -32700
                r = http.post(url, content=b'{"jsonrpc": "2.0", "id": 4, "method": 5}')
                assert r.status_code == 400 and r.json()["id"] == 4 and r.json()["error"]["code"] == -32600
                big = b'{"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "' + b"z" * 10_000 + b'"}}}'
                r = http.post(url, content=big)
                assert r.status_code == 413 and r.json()["id"] == 5 and "4096" in r.json()["error"]["message"]
                r = http.post(url, content=b"{}", headers={"Host": "evil.example:80"})
                assert r.status_code == 421  # DNS rebinding: only loopback names on a loopback listener
                assert http.get(url.replace("/mcp", "/elsewhere")).status_code == 404  # passed through
            server.stop()  # the MCP server dies
            with httpx.Client(headers=headers, timeout=30) as http:
                r = http.post(url, json={"jsonrpc": "2.0", "id": 6, "method": "tools/list"})
                assert r.status_code == 502 and r.json()["id"] == 6 and "could not be reached" in r.json()["error"]["message"]
        assert gateway.proc.returncode == 0
    events = gw.recorded(tmp_path / "data")
    calls = [e for e in events if e["action"] == "mcp.tools.call"]
    assert [(e["resource"]["id"], e["outcome"]) for e in calls] == [("shell", "success"), ("shell", "denied"), ("-", "failure")]
    ends = [e for e in events if e["action"] == "mcp.session.end"]
    assert ends and all(e["metadata"]["mcp"]["transport"] == "http" for e in ends)


def test_http_client_that_hangs_up_while_its_call_awaits_approval(tmp_path: Path) -> None:
    import httpx

    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: sql-review\n    action: review\n    tools: [sql]\n")
    server, upstream = gw.http_server()
    with server:
        gateway, url = gw.http_gateway(tmp_path / "data", upstream, "--rules", str(rules))
        with gateway:
            call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "sql", "arguments": {"query": "x"}}}
            with pytest.raises(httpx.ReadTimeout), httpx.Client(timeout=httpx.Timeout(30, read=3)) as http:
                http.post(url, json=call, headers={"Accept": "application/json, text/event-stream"})
            end = time.monotonic() + 30  # until the gateway has noticed the hang-up
            while not any(e["action"] == "mcp.tools.call" for e in gw.recorded(tmp_path / "data")):
                assert time.monotonic() < end, "the hang-up was not recorded"
                time.sleep(0.05)
    events = gw.recorded(tmp_path / "data")
    [held] = [e for e in events if e["action"] == "mcp.tools.call"]
    assert held["outcome"] == "unknown" and held["reason"] == "cancelled by the client"
    assert "auditkeep.approval.requested" in [e["action"] for e in events]
