"""Latency the MCP gateway adds to a tool call over stdio: the same SDK client calls the
same SDK server directly and through ``auditkeep gateway mcp`` in the same run.

    python benchmarks/bench_gateway_mcp.py [--calls 2000] [--rounds 3]

One client session per path is open at once and the calls take turns (each path first,
second, third in rotation), so load from elsewhere on the machine hits every path alike; each call is
timed from the client's ``call_tool`` to its result. The headline row is the default a user gets:
``--data DIR`` (embedded ledger, every call recorded, fsync'd). Added latency is the
difference of the percentiles, over all rounds. Targets: added p50 < 2 ms, p99 < 10 ms.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests" / "gateway_mcp"))

import anyio  # noqa: E402
from mcp import ClientSession, StdioServerParameters, stdio_client  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

DEMO = str(ROOT / "tests" / "gateway_mcp" / "mcp_demo_server.py")
RULES = """\
rules:
  - name: no-rm
    action: deny
    tools: [shell]
    arguments: {command: 'rm\\s+-rf'}
  - name: no-drop
    action: deny
    tools: [sql]
    any_argument: '(?i)\\bdrop\\s+table\\b'
"""


# A second baseline: a process that copies lines both ways and does nothing else, so the
# gateway's own work (parse, validate, decide, record) shows apart from the extra hop.
RELAY = """
import asyncio, sys
async def pump(r, w):
    while line := await r.readline():
        w.write(line)
        await w.drain()
    w.close()
async def main():
    loop = asyncio.get_running_loop()
    cin = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(cin), sys.stdin.buffer)
    t, p = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, sys.stdout.buffer)
    cout = asyncio.StreamWriter(t, p, None, loop)
    proc = await asyncio.create_subprocess_exec(*sys.argv[1:], stdin=-1, stdout=-1, limit=1 << 24)
    await asyncio.wait([asyncio.ensure_future(pump(cin, proc.stdin)), asyncio.ensure_future(pump(proc.stdout, cout))],
                       return_when=asyncio.FIRST_COMPLETED)
    proc.terminate()
asyncio.run(main())
"""


def gateway(data: Path, *extra: str) -> StdioServerParameters:
    args = ["-m", "auditkeep.cli.main", "gateway", "mcp", "--data", str(data), "--tenant", "bench",
            *extra, "--", sys.executable, DEMO]  # fmt: skip
    return StdioServerParameters(command=sys.executable, args=args, env=dict(os.environ))


async def timed_calls(paths: dict[str, StdioServerParameters], calls: int, warmup: int = 50) -> dict[str, list[float]]:
    """Milliseconds per call_tool("echo") on each path, the paths taking turns."""
    from contextlib import AsyncExitStack

    out: dict[str, list[float]] = {name: [] for name in paths}
    async with AsyncExitStack() as stack:
        sessions: dict[str, ClientSession] = {}
        for name, params in paths.items():
            r, w = await stack.enter_async_context(stdio_client(params))
            s = await stack.enter_async_context(ClientSession(r, w))
            await s.initialize()
            await s.list_tools()
            sessions[name] = s
        order = list(sessions.items())
        for i in range(warmup + calls):
            k = i % len(order)  # each path takes each position in turn
            for name, s in order[k:] + order[:k]:
                t = time.perf_counter()
                got = await s.call_tool("echo", {"text": f"hello {i}"})
                dt = (time.perf_counter() - t) * 1000
                assert not got.is_error
                if i >= warmup:
                    out[name].append(dt)
    return out


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def in_process(calls: int, data: Path) -> list[float]:
    """Microseconds of the gateway's own work per tool call (request and answer parsed and
    validated with the SDK's types, shown to the session, the event built and queued for
    the embedded ledger), without the pipes: a floor under what the gateway adds."""
    import orjson

    from auditkeep.config import load_settings, open_ledger
    from auditkeep.gateway.mcp.events import Identity
    from auditkeep.gateway.mcp.messages import parse
    from auditkeep.gateway.mcp.session import Session
    from auditkeep.gateway.sink import LedgerSink

    sys.setswitchinterval(0.0005)  # as `auditkeep gateway mcp` sets it
    ledger = open_ledger(load_settings(None, overrides={"data": str(data)}), create=True, background=False)
    sink = LedgerSink(ledger, "bench", "mcp-gateway")
    session = Session(Identity("bench", "bench-agent", "s-1", "stdio"), sink)
    init = parse(orjson.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "c", "version": "1"}}}))
    session.from_client(init)
    answer = orjson.dumps({"jsonrpc": "2.0", "id": 0, "result": {"protocolVersion": "2025-11-25", "capabilities": {},
                           "serverInfo": {"name": "demo-server", "version": "1"}}})  # fmt: skip
    session.from_server(parse(answer), len(answer))
    out: list[float] = []
    for i in range(1, calls + 1):
        request = orjson.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                                "params": {"name": "echo", "arguments": {"text": f"hello {i}"}}})  # fmt: skip
        reply = orjson.dumps({"jsonrpc": "2.0", "id": i, "result": {"content": [{"type": "text", "text": f"hello {i}"}],
                              "structuredContent": {"result": f"hello {i}"}, "isError": False}})  # fmt: skip
        t = time.perf_counter()
        session.from_client(parse(request))
        session.from_server(parse(reply), len(reply))
        out.append((time.perf_counter() - t) * 1e6)
    sink.close(30)
    ledger.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-mcp-"))
    rules = tmp / "rules.yaml"
    rules.write_text(RULES)
    paths: dict[str, Any] = {
        "direct (no gateway)": lambda i: StdioServerParameters(command=sys.executable, args=[DEMO], env=dict(os.environ)),
        "plain line relay (an extra process, no work)": lambda i: StdioServerParameters(
            command=sys.executable, args=["-c", RELAY, sys.executable, DEMO], env=dict(os.environ)),
        "gateway --data (embedded ledger, default)": lambda i: gateway(tmp / f"d{i}"),
    }
    paths["gateway --data --rules (2 deny rules, none matching)"] = lambda i: gateway(tmp / f"r{i}", "--rules", str(rules))
    times: dict[str, list[float]] = {name: [] for name in paths}
    load = os.getloadavg()
    names = list(paths)
    for rnd in range(args.rounds):
        order = names if rnd % 2 == 0 else names[::-1]
        got = anyio.run(timed_calls, {name: paths[name](rnd) for name in order}, args.calls)
        for name in names:
            times[name] += got[name]
    load_after = os.getloadavg()

    base = times[names[0]]
    table = Table(title=f"tool call latency over stdio, {args.calls} calls x {args.rounds} rounds per path")
    relay = times[names[1]]
    for col in ("path", "p50 ms", "p90 ms", "p99 ms", "mean ms", "added p50 ms", "added p99 ms",
                "vs relay p50", "vs relay p99"):
        table.add_column(col, justify="left" if col == "path" else "right")
    for name in names:
        t = times[name]
        added = ("-", "-") if t is base else (f"{pct(t, 50) - pct(base, 50):.3f}", f"{pct(t, 99) - pct(base, 99):.3f}")
        over = ("-", "-") if t is base or t is relay else (
            f"{pct(t, 50) - pct(relay, 50):.3f}", f"{pct(t, 99) - pct(relay, 99):.3f}")
        table.add_row(name, f"{pct(t, 50):.3f}", f"{pct(t, 90):.3f}", f"{pct(t, 99):.3f}",
                      f"{statistics.fmean(t):.3f}", *added, *over)  # fmt: skip
    console = Console(width=160)
    console.print(table)
    work = in_process(max(args.calls * args.rounds, 5000), tmp / "inproc")
    console.print(f"gateway's own work per tool call, in process ({len(work)} calls): "
                  f"p50 {pct(work, 50):.1f} µs, p99 {pct(work, 99):.1f} µs, mean {statistics.fmean(work):.1f} µs")  # fmt: skip
    console.print(f"nproc {os.cpu_count()}, {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
                  f"load average {load[0]:.2f} before, {load_after[0]:.2f} after")  # fmt: skip


if __name__ == "__main__":
    main()
