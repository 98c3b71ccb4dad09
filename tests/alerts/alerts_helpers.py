"""Test helpers: locate the shared test data and wrap raw records into events of the
shapes the source mappers produce (the original record under ``metadata.<source>``)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from testdata_path import require_testdata

REPO = Path(__file__).resolve().parents[2]


def shared_testdata() -> Path:
    """The sample data directory (tests/testdata or ``$AUDITKEEP_TESTDATA``)."""
    return require_testdata()


_BAD = re.compile(r"[^A-Za-z0-9_-]+")


def _action(*parts: str) -> str:
    return ".".join(_BAD.sub("_", p).strip("_") or "x" for p in parts if p)


def _iso(ts: Any) -> str | None:
    if not isinstance(ts, str) or not ts:
        return None
    ts = ts.strip().replace(" ", "T")
    if not ts.endswith("Z") and not re.search(r"[+-]\d\d:\d\d$", ts):
        ts += "Z"
    return ts


def k8s_event(raw: dict[str, Any], tenant: str = "acme") -> dict[str, Any]:
    user = raw.get("user") or {}
    ref = raw.get("objectRef") or {}
    res = ref.get("resource", "")
    if ref.get("subresource"):
        res += "_" + ref["subresource"]
    ev: dict[str, Any] = {
        "actor": {"id": user.get("username") or "unknown", "type": "user"},
        "action": _action("k8s", res or "nonresource", raw.get("verb", "unknown")),
        "time": _iso(raw.get("stageTimestamp") or raw.get("requestReceivedTimestamp") or raw.get("timestamp")),
        "tenant": tenant,
        "metadata": {"k8s": raw},
    }
    ips = raw.get("sourceIPs")
    if ips:
        ev["actor"]["ip"] = ips[0]
    if raw.get("userAgent"):
        ev["actor"]["user_agent"] = raw["userAgent"]
    return {k: v for k, v in ev.items() if v is not None}


def cloudtrail_event(raw: dict[str, Any], tenant: str = "acme") -> dict[str, Any]:
    ui = raw.get("userIdentity") or {}
    ev: dict[str, Any] = {
        "actor": {"id": ui.get("arn") or ui.get("principalId") or ui.get("invokedBy") or "unknown"},
        "action": _action("aws", str(raw.get("eventSource", "")).split(".")[0], str(raw.get("eventName", "unknown"))),
        "time": _iso(raw.get("eventTime") or raw.get("@timestamp")),
        "tenant": tenant,
        "outcome": "failure" if raw.get("errorCode") else "success",
        "metadata": {"cloudtrail": raw},
    }
    if raw.get("sourceIPAddress"):
        ev["actor"]["ip"] = raw["sourceIPAddress"]
    return {k: v for k, v in ev.items() if v is not None}


def gcp_event(raw: dict[str, Any], tenant: str = "acme") -> dict[str, Any]:
    proto = raw.get("protoPayload") or {}
    who = (proto.get("authenticationInfo") or {}).get("principalEmail") or "unknown"
    ev: dict[str, Any] = {
        "actor": {"id": who},
        "action": _action("gcp", str(proto.get("methodName", "unknown"))),
        "time": _iso(raw.get("timestamp") or raw.get("receiveTimestamp")),
        "tenant": tenant,
        "metadata": {"gcp": raw},
    }
    return {k: v for k, v in ev.items() if v is not None}


_REC = re.compile(r"^type=(\S+) msg=audit\((\d+)\.(\d+):(\d+)\):\s*(.*)$")
_KV = re.compile(r"""(\w+)=("[^"]*"|'[^']*'|\S+)""")
_ENCODED = {"proctitle", "name", "cwd", "exe", "comm", "path", "data", "key"}


def _decode(rtype: str, key: str, value: str) -> Any:
    if value.startswith('"') and value.endswith('"'):
        return value[1:-1]
    hexish = re.fullmatch(r"(?:[0-9A-F]{2})+", value) is not None
    if hexish and ((rtype == "EXECVE" and re.fullmatch(r"a\d+", key)) or key in _ENCODED):
        raw = bytes.fromhex(value)
        return raw.replace(b"\x00", b" ").decode("utf-8", "replace").strip()
    return value


def parse_auditd(lines: list[str]) -> list[dict[str, Any]]:
    """Group raw auditd lines into ``metadata.auditd`` structures (one per serial)."""
    groups: dict[int, dict[str, Any]] = {}
    for line in lines:
        m = _REC.match(line.strip())
        if not m:
            continue
        rtype, sec, ms, seq, body = m.groups()
        rec: dict[str, Any] = {"type": rtype}
        inner = re.search(r"msg='(.*)'", body)
        if inner:
            body = body[: inner.start()] + " " + inner.group(1)
        for k, v in _KV.findall(body):
            rec[k] = _decode(rtype, k, v)
        g = groups.setdefault(int(seq), {"sequence": int(seq), "time": (int(sec), int(ms)), "records": []})
        g["records"].append(rec)
    return list(groups.values())


def auditd_event(group: dict[str, Any], tenant: str = "acme", host: str = "host-1") -> dict[str, Any]:
    sec, ms = group["time"]
    recs = group["records"]
    first = recs[0]
    sysc = next((r for r in recs if r["type"] == "SYSCALL"), first)
    ts = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ms:03d}Z"
    return {
        "actor": {"id": str(sysc.get("auid") or sysc.get("uid") or "unknown"), "type": "user"},
        "action": _action("auditd", first["type"].lower()),
        "time": ts,
        "tenant": tenant,
        "source": {"host": host},
        "metadata": {"auditd": {"sequence": group["sequence"], "records": recs}},
    }


def auditd_events(path: Path, tenant: str = "acme") -> list[dict[str, Any]]:
    return [auditd_event(g, tenant) for g in parse_auditd(path.read_text(errors="replace").splitlines())]


def jsonl(path: Path) -> Iterator[dict[str, Any]]:
    for line in path.read_text().splitlines():
        if line.strip():
            yield json.loads(line)


def json_lines_or_doc(path: Path) -> list[dict[str, Any]]:
    text = path.read_text()
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if isinstance(doc, dict) and isinstance(doc.get("items"), list):
        return list(doc["items"])
    return doc if isinstance(doc, list) else [doc]


def panther_events(path: Path) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(test record, event) for each Panther test line whose log we can wrap."""
    out = []
    for t in jsonl(path):
        log = t["log"]
        if "protoPayload" in log:
            out.append((t, gcp_event(log)))
        elif "eventSource" in log or "eventName" in log:
            out.append((t, cloudtrail_event(log)))
        elif log.get("kind") == "Event" or "verb" in log:
            out.append((t, k8s_event(log)))
    return out
