"""The embedded MCP gateway bounds the events it holds in memory: while the log does not
commit, past ``gateway_max_queue`` the oldest go to the overflow spool in the data
directory, and every call still reaches the log once when it commits again.

The log is stalled for real: another connection holds SQLite's write lock."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import mcp_gateway_support as gw
import pytest

from auditkeep.errors import NotFound
from auditkeep.ledger import Ledger

CALLS = 1500
BOUND = 500  # the smallest bound the sink takes (one batch)


def _echo_texts(data: Path) -> list[str]:
    try:
        events = gw.recorded(data)
    except NotFound:  # nothing committed yet
        return []
    return [e["metadata"]["mcp"]["arguments"]["text"] for e in events if e["action"] == "mcp.tools.call"]


def test_a_stalled_log_sends_the_excess_to_the_data_dirs_spool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    Ledger.open(data).close()
    monkeypatch.setenv("AUDITKEEP_GATEWAY_MAX_QUEUE", str(BOUND))
    c = gw.RawClient(data)  # no --spool
    c.handshake()
    held = sqlite3.connect(data / "log.db", isolation_level=None, timeout=30)
    held.execute("BEGIN IMMEDIATE")
    try:
        for i in range(CALLS):  # pipelined: the answers are read after
            c.send({"jsonrpc": "2.0", "id": i + 1, "method": "tools/call",
                    "params": {"name": "echo", "arguments": {"text": str(i)}}})  # fmt: skip
        for _ in range(CALLS):
            got = c.recv()
            assert got is not None and "result" in got
        # The agent was answered while nothing was committed; the excess is on disk.
        assert any((data / "mcp-spool" / "overflow").rglob("*.seg"))
    finally:
        held.execute("ROLLBACK")
        held.close()
    deadline = time.monotonic() + 120
    while len(_echo_texts(data)) < CALLS and time.monotonic() < deadline:
        time.sleep(0.2)
    assert c.close() == 0
    # Each once (pipelined calls are recorded as they complete, not always in the order sent).
    got = _echo_texts(data)
    assert len(got) == CALLS and sorted(map(int, got)) == list(range(CALLS))
    assert gw.actions(gw.recorded(data))[-1] == "mcp.session.end"
