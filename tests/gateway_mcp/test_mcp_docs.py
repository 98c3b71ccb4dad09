"""The MCP gateway's documented snippets are valid: the rules files load with the
gateway's condition kinds and decide as the text says, the MCP configurations are JSON
that start the gateway with options it has."""

from __future__ import annotations

import json
import re
from pathlib import Path

from auditkeep.cli.gateway_mcp import mcp
from auditkeep.gateway.guardrails import parse_rules
from auditkeep.gateway.mcp.guard import MCP_KINDS, ToolCall

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "docs" / "gateway-mcp.md", ROOT / "README.md"]


def _blocks(lang: str) -> list[str]:
    out = []
    for path in DOCS:
        text = path.read_text()
        if path.name == "README.md":
            text = text[text.index("## AI agents: the MCP gateway") :]
            text = text[: text.index("\n## ", 10)]
        out += re.findall(rf"```{lang}\n(.*?)```", text, re.S)
    return out


def _call(tool: str, agent: str = "bot", **arguments: object) -> ToolCall:
    return ToolCall(tool, arguments, agent, "demo", "s", "acme")


def test_documented_rules_load_and_decide_as_described() -> None:
    blocks = _blocks("yaml")
    assert len(blocks) == 2
    full = parse_rules(blocks[0], MCP_KINDS)
    assert full.decide(_call("shell", command="rm -rf /srv")).rule_name == "no-recursive-delete"
    assert full.decide(_call("shell", command="ls")).action == "allow"
    assert full.decide(_call("pg_sql", query="select 1; DROP TABLE users")).rule_name == "no-drop"
    assert full.decide(_call("sql_execute", query="update t set x = 1")).action == "review"
    assert full.decide(_call("fs_write", agent="intern-7")).rule_name == "interns-read-only"
    assert full.decide(_call("fs_read", agent="intern-7")).action == "allow"
    assert full.review_timeout == 300
    short = parse_rules(blocks[1], MCP_KINDS)
    assert short.decide(_call("github_merge_pull_request")).action == "review"


def test_documented_mcp_configurations_use_real_options() -> None:
    blocks = _blocks("json")
    assert blocks
    known = {opt for p in mcp.params for opt in getattr(p, "opts", [])}
    for block in blocks:
        for entry in json.loads(block)["mcpServers"].values():
            assert entry["command"] == "auditkeep"
            args = entry["args"]
            assert args[:2] == ["gateway", "mcp"] and "--" in args
            ours = args[2 : args.index("--")]
            assert {a for a in ours if a.startswith("--")} <= known
