"""What the MCP gateway survives: malformed and oversize messages, a server that dies, a
client that goes away, a server that cannot start, a stop signal."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import anyio
import mcp_gateway_support as gw
import pytest
from mcp import ClientSession, stdio_client
from mcp.shared.exceptions import MCPError

PARSE_ERROR, INVALID_REQUEST, INVALID_PARAMS, INTERNAL_ERROR = -32700, -32600, -32602, -32603


def _error(msg: dict[str, Any] | None) -> tuple[Any, int, str]:
    assert msg is not None and set(msg) == {"jsonrpc", "id", "error"}, msg
    return msg["id"], msg["error"]["code"], msg["error"]["message"]


def test_malformed_and_oversize_messages_are_answered_and_the_session_goes_on(tmp_path: Path) -> None:
    c = gw.RawClient(tmp_path / "data", "--max-message-bytes", "4096")
    c.handshake()
    c.send(b"this is not json")
    rid, code, message = _error(c.recv())
    assert (rid, code) == (None, PARSE_ERROR) and message.startswith("not JSON")
    c.send(b"[1, 2, 3]")
    assert _error(c.recv())[:2] == (None, INVALID_REQUEST)
    c.send(b'{"jsonrpc": "2.0", "id": 1.5, "method": "tools/list"}')
    assert _error(c.recv())[:2] == (None, INVALID_REQUEST)
    c.send(b'{"jsonrpc": "1.0", "id": 7, "method": "tools/list"}')
    assert _error(c.recv())[:2] == (7, INVALID_REQUEST)
    # A tools/call whose params do not match the SDK's types is refused, not forwarded.
    assert _error(c.request(8, "tools/call", {"name": 42}))[:2] == (8, INVALID_PARAMS)
    # Too large: answered with an error naming the request, read through without keeping it.
    c.send({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "y" * 100_000}}})  # fmt: skip
    rid, code, message = _error(c.recv())
    assert (rid, code) == (9, INVALID_REQUEST) and "over the gateway's limit of 4096" in message
    # The server's answer too large: the client gets an error for that request.
    rid, code, message = _error(c.request(10, "tools/call", {"name": "big", "arguments": {"size": 20_000}}))
    assert (rid, code) == (10, INTERNAL_ERROR) and "the server's message" in message
    # And the session still works.
    ok = c.request(11, "tools/call", {"name": "add", "arguments": {"a": 1, "b": 1}})
    assert ok["result"]["structuredContent"] == {"result": 2}
    assert c.close() == 0

    events = gw.recorded(tmp_path / "data")
    calls = [e for e in events if e["action"] == "mcp.tools.call"]
    assert [(e["metadata"]["mcp"]["request_id"], e["resource"]["id"], e["outcome"]) for e in calls] == [
        ("8", "-", "failure"), ("9", "-", "failure"), ("10", "big", "error"), ("11", "add", "success"),
    ]  # fmt: skip
    end = events[-1]
    assert end["action"] == "mcp.session.end"
    assert end["metadata"]["mcp"]["counts"]["malformed"] == 6


async def _call_crash(params: Any) -> MCPError:
    async with stdio_client(params) as (r, w), ClientSession(r, w) as s:
        await s.initialize()
        assert (await s.call_tool("add", {"a": 1, "b": 2})).structured_content == {"result": 3}
        with pytest.raises(MCPError) as caught:
            await s.call_tool("crash", {"code": 3})
        return caught.value


def test_a_server_that_dies_leaves_the_agent_an_error_and_the_session_an_end(tmp_path: Path) -> None:
    err = anyio.run(_call_crash, gw.gateway_params(tmp_path / "data"))
    assert "the MCP server exited with code 3" in str(err)

    events = gw.recorded(tmp_path / "data")
    # (the SDK client lists the tools after its first call, to check results against them)
    assert gw.actions(events) == [
        "mcp.session.start", "mcp.tools.call", "mcp.tools.list", "mcp.tools.call", "mcp.session.end",
    ]  # fmt: skip
    crash, end = events[3], events[4]
    assert crash["resource"]["id"] == "crash" and crash["outcome"] == "error"
    assert crash["reason"] == "the MCP server exited with code 3 before answering"
    assert end["outcome"] == "error" and end["reason"] == "the MCP server exited with code 3"


def test_a_client_that_goes_away_mid_call(tmp_path: Path) -> None:
    c = gw.RawClient(tmp_path / "data")
    c.handshake()
    c.send({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "slow", "arguments": {"seconds": 30}}})
    assert c.close() == 0  # the gateway stops the server rather than wait 30 s

    events = gw.recorded(tmp_path / "data")
    assert gw.actions(events) == ["mcp.session.start", "mcp.tools.call", "mcp.session.end"]
    call, end = events[1], events[2]
    assert call["resource"]["id"] == "slow" and call["outcome"] == "error"
    assert call["reason"] == "the client closed the connection"
    assert end["outcome"] == "success" and end["reason"] == "the client closed the connection"


def test_a_server_that_cannot_start(tmp_path: Path) -> None:
    c = gw.RawClient(tmp_path / "data", server=[str(tmp_path / "no-such-server")])
    assert c.close() == 2
    events = gw.recorded(tmp_path / "data")
    assert gw.actions(events) == ["mcp.session.start", "mcp.session.end"]
    assert events[1]["outcome"] == "error" and "could not be started" in events[1]["reason"]


def test_sigterm_stops_the_server_and_records_the_end(tmp_path: Path) -> None:
    c = gw.RawClient(tmp_path / "data")
    c.handshake()
    c.proc.send_signal(signal.SIGTERM)
    assert c.close() == 0
    events = gw.recorded(tmp_path / "data")
    assert events[-1]["action"] == "mcp.session.end"
    assert events[-1]["reason"] == "the gateway was stopped (SIGTERM)"


def test_bad_command_lines_exit_2_with_one_line(tmp_path: Path) -> None:
    import subprocess

    base = [sys.executable, "-m", "auditkeep.cli.main", "gateway", "mcp", "--data", str(tmp_path / "d")]
    for args, needle in (
        (["--tenant", "acme"], "give the MCP server's command"),
        (["--tenant", "Not A Tenant", "--", "true"], "--tenant"),
        (["--tenant", "acme", "--listen", "127.0.0.1:1"], "--listen and --upstream go together"),
        (["--tenant", "acme", "--listen", "nonsense", "--upstream", "http://127.0.0.1:1/mcp"], "HOST:PORT"),
    ):
        r = subprocess.run(base + args, capture_output=True, text=True, timeout=60)
        assert r.returncode == 2, (args, r.stderr)
        assert needle in r.stderr and "Traceback" not in r.stderr
