"""A real MCP server written with the SDK, for the gateway's tests and benchmark.

Run as ``python mcp_demo_server.py`` (stdio) or ``python mcp_demo_server.py http PORT``
(Streamable HTTP at /mcp; ``http-json`` answers with JSON bodies instead of SSE streams).
"""

from __future__ import annotations

import os
import sys
import time

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

app = MCPServer("demo-server", version="1.2.3", log_level="ERROR")
CALLS = os.environ.get("MCP_DEMO_LOG")  # when set, each shell and sql call is noted here


def _note(tool: str, text: str) -> None:
    if CALLS:
        with open(CALLS, "a", encoding="utf-8") as f:
            f.write(f"{tool}: {text}\n")


@app.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@app.tool()
def echo(text: str) -> str:
    """Say it back."""
    return text


@app.tool()
def shell(command: str) -> str:
    """Pretend to run a shell command (nothing is run)."""
    _note("shell", command)
    return f"ran: {command}"


@app.tool()
def sql(query: str) -> str:
    """Pretend to run a SQL statement."""
    _note("sql", query)
    return f"ok: {query}"


@app.tool()
def boom() -> str:
    """Fail: the tool reports an error."""
    raise ToolError("kaboom")


@app.tool()
def crash(code: int = 3) -> str:
    """Exit the server process at once."""
    os._exit(code)


@app.tool()
def big(size: int) -> str:
    """A result of about ``size`` bytes."""
    return "x" * size


@app.tool()
def slow(seconds: float) -> str:
    time.sleep(seconds)
    return "done"


@app.tool()
async def grow(name: str, ctx: Context) -> str:
    """Add a tool called ``name`` and tell the client the list changed."""

    def extra() -> str:
        return "extra"

    app.add_tool(extra, name=name)
    await ctx.session.send_tool_list_changed()
    return f"added {name}"


@app.resource("note://hello")
def hello() -> str:
    return "hello world"


@app.prompt()
def greet(name: str) -> str:
    return f"Hello {name}, how can I help?"


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1].startswith("http"):
        app.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]), json_response=sys.argv[1] == "http-json")
    else:
        app.run()
