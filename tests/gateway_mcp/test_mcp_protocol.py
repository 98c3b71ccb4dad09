"""Both eras of the protocol through the gateway (the initialize handshake and the
per-request envelope of 2026-07-28), and changes of a server's tools."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import mcp
import mcp_gateway_support as gw
from mcp import ClientSession, stdio_client


async def _modern(params: Any) -> tuple[str, Any]:
    async with mcp.Client(params) as c:  # mode="auto": server/discover, no handshake
        result = await c.call_tool("add", {"a": 20, "b": 22})
        return c.protocol_version, result.structured_content


def test_the_handshake_free_revision_is_recorded_too(tmp_path: Path) -> None:
    version, result = anyio.run(_modern, gw.gateway_params(tmp_path / "data"))
    assert version == "2026-07-28" and result == {"result": 42}
    events = gw.recorded(tmp_path / "data")
    assert gw.actions(events)[:2] == ["mcp.session.start", "mcp.tools.call"]
    start, call = events[0], events[1]
    assert start["metadata"]["mcp"]["server"] == {"name": "demo-server", "version": "1.2.3"}
    assert start["metadata"]["mcp"]["client"]["name"] == "mcp"
    assert start["metadata"]["mcp"]["protocol"] == "2026-07-28"
    assert call["actor"]["id"] == "mcp"  # no --agent: the client's own name
    assert call["metadata"]["mcp"]["arguments"] == {"a": 20, "b": 22}


async def _grow(params: Any) -> list[list[str]]:
    listings: list[list[str]] = []
    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        if getattr(message, "method", None) == "notifications/tools/list_changed":
            changed.set()

    async with stdio_client(params) as (r, w), ClientSession(r, w, message_handler=on_message) as s:
        await s.initialize()
        listings.append(sorted(t.name for t in (await s.list_tools()).tools))
        listings.append(sorted(t.name for t in (await s.list_tools()).tools))  # same again
        await s.call_tool("grow", {"name": "fresh"})
        with anyio.fail_after(30):
            await changed.wait()
        listings.append(sorted(t.name for t in (await s.list_tools()).tools))
    return listings


def test_tool_listings_are_recorded_when_they_change(tmp_path: Path) -> None:
    listings = anyio.run(_grow, gw.gateway_params(tmp_path / "data"))
    assert "fresh" not in listings[0] and listings[0] == listings[1]
    assert listings[2] == sorted([*listings[0], "fresh"])
    lists = [e for e in gw.recorded(tmp_path / "data") if e["action"] == "mcp.tools.list"]
    assert len(lists) == 2  # the first listing, then only the one that changed
    first, second = (e["metadata"]["mcp"] for e in lists)
    assert first["tools"] == listings[0] and "added" not in first
    assert second["added"] == ["fresh"] and second["removed"] == [] and second["changed"] == []
    assert lists[1]["reason"] == "the server's tools changed"
