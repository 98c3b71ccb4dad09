"""The MCP gateway over stdio, with a real SDK server behind it and a real SDK client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import mcp_gateway_support as gw
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.types import TextContent


async def _use_everything(params: StdioServerParameters) -> dict[str, Any]:
    """Tools, resources and prompts through ``params``; what the client saw."""
    async with stdio_client(params) as (r, w), ClientSession(r, w) as s:
        return await _summary(s)


async def _summary(s: ClientSession) -> dict[str, Any]:
    init = await s.initialize()
    tools = await s.list_tools()
    added = await s.call_tool("add", {"a": 2, "b": 40})
    failed = await s.call_tool("boom", {})
    res = await s.read_resource("note://hello")
    prompt = await s.get_prompt("greet", {"name": "Ada"})
    return {
        "server": (init.server_info.name, init.server_info.version),
        "tools": sorted(t.name for t in tools.tools),
        "added": (added.structured_content, added.is_error),
        "failed": failed.is_error,
        "resource": [c.text for c in res.contents],  # type: ignore[union-attr]
        "prompt": [m.content.text for m in prompt.messages if isinstance(m.content, TextContent)],
    }


def test_tools_resources_prompts_work_unchanged_and_are_recorded_in_order(tmp_path: Path) -> None:
    direct = anyio.run(_use_everything, gw.direct_params())
    through = anyio.run(_use_everything, gw.gateway_params(tmp_path / "data", "--agent", "claude-test"))
    assert through == direct
    assert through["added"] == ({"result": 42}, False)

    events = gw.recorded(tmp_path / "data")
    assert gw.actions(events) == [
        "mcp.session.start", "mcp.tools.list", "mcp.tools.call", "mcp.tools.call",
        "mcp.resources.read", "mcp.prompts.get", "mcp.session.end",
    ]  # fmt: skip
    start, listing, add, boom, read, prompt, end = events
    for e in events:
        assert e["actor"]["id"] == "claude-test" and e["actor"]["type"] == "agent"
        assert e["metadata"]["mcp"]["session"] == start["metadata"]["mcp"]["session"]
    assert start["metadata"]["mcp"]["client"]["name"] == "mcp"
    assert start["metadata"]["mcp"]["server"] == {"name": "demo-server", "version": "1.2.3"}
    assert start["resource"] == {"type": "mcp.server", "id": "demo-server"}
    assert "add" in listing["metadata"]["mcp"]["tools"]
    assert add["resource"] == {"type": "mcp.tool", "id": "add", "name": "demo-server"}
    assert add["outcome"] == "success"
    assert add["metadata"]["mcp"]["arguments"] == {"a": 2, "b": 40}
    assert add["metadata"]["mcp"]["result_bytes"] > 0
    assert add["metadata"]["mcp"]["duration_ms"] >= 0
    assert boom["outcome"] == "failure" and "kaboom" in boom["reason"]
    assert read["resource"]["id"] == "note://hello" and read["outcome"] == "success"
    assert prompt["resource"]["id"] == "greet" and prompt["metadata"]["mcp"]["arguments"] == {"name": "Ada"}
    assert end["outcome"] == "success" and end["reason"] == "the client closed the connection"
    assert end["metadata"]["mcp"]["counts"]["tool_calls"] == 2


def test_arguments_pass_the_redaction_policy_but_reach_the_server_whole(tmp_path: Path) -> None:
    import json

    secret = "curl -H 'Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlc2ln' https://x"
    c = gw.RawClient(tmp_path / "data")
    c.handshake()
    got = c.request(1, "tools/call", {"name": "shell", "arguments": {"command": secret}})
    assert got["result"]["content"][0]["text"] == f"ran: {secret}"  # the server saw it all
    assert c.close() == 0
    call = next(e for e in gw.recorded(tmp_path / "data") if e["action"] == "mcp.tools.call")
    recorded = call["metadata"]["mcp"]["arguments"]["command"]
    assert "eyJhbGciOiJIUzI1NiJ9" not in json.dumps(call)
    assert "[REDACTED:" in recorded and recorded.startswith("curl -H")
    assert "metadata.mcp.arguments.command" in call["metadata"]["_redacted"]
