"""Events as CEF (ArcSight Common Event Format, version 0) lines.

``CEF:0|auditkeep|auditkeep|<version>|<action>|<name>|<severity>|<extension>``. Header
fields escape ``\\`` and ``|``; extension values escape ``\\`` and ``=``; a line break in
either is written ``\\n`` / ``\\r`` so one event stays one line.
"""

from __future__ import annotations

import re

import msgspec

from auditkeep import __version__
from auditkeep.model.event import Event
from auditkeep.model.timefmt import parse_rfc3339

CEF_SEVERITY = {"debug": "0", "info": "1", "low": "3", "medium": "5", "high": "8", "critical": "10"}
_json = msgspec.json.Encoder()

_HEADER_SPECIAL = re.compile(r"[\\|\n\r]")
_VALUE_SPECIAL = re.compile(r"[\\=\n\r]")


def _escape(text: str, special: str) -> str:
    # backslash first, so the escapes added after it are not escaped again
    text = text.replace("\\", "\\\\").replace(special, "\\" + special)
    return text.replace("\n", "\\n").replace("\r", "\\r")


def escape_header(text: str) -> str:
    return _escape(text, "|") if _HEADER_SPECIAL.search(text) else text


def escape_value(text: str) -> str:
    return _escape(text, "=") if _VALUE_SPECIAL.search(text) else text


def cef_line(header: list[str], extension: list[tuple[str, str]]) -> str:
    """One CEF line from its seven header fields (after ``CEF:0``) and extension pairs
    (keys are the spec's names: letters and digits, never escaped)."""
    head = "|".join(escape_header(h) for h in header)
    ext = " ".join(f"{k}={escape_value(v)}" for k, v in extension)
    return f"CEF:0|{head}|{ext}"


def _is_ipv4(text: str) -> bool:
    parts = text.split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p) < 256 and len(p) <= 3 for p in parts)


def to_cef(ev: Event, *, tenant: str | None = None, index: int | None = None, leaf_hash: str | None = None) -> str:
    """One CEF line for an event."""
    name = ev.action if not ev.outcome else f"{ev.action} {ev.outcome}"
    header = ["auditkeep", "auditkeep", __version__, ev.action, name, CEF_SEVERITY.get(ev.severity or "", "Unknown")]
    ext: list[tuple[str, str]] = []
    add = ext.append
    when = ev.time or ev.received_at
    if when:
        add(("rt", str(parse_rfc3339(when) // 1_000_000)))
    if ev.id:
        add(("externalId", ev.id))
    add(("act", ev.action))
    add(("suser", ev.actor.id))
    if ev.actor.name:
        add(("suid", ev.actor.name))
    if ev.actor.ip:
        add(("src" if _is_ipv4(ev.actor.ip) else "c6a2", ev.actor.ip))
    if ev.actor.user_agent:
        add(("requestClientApplication", ev.actor.user_agent))
    if ev.outcome:
        add(("outcome", ev.outcome))
    if ev.reason:
        add(("reason", ev.reason))
    if ev.category:
        add(("cat", ev.category))
    if ev.source and ev.source.host:
        add(("dvchost", ev.source.host))
    if ev.source and ev.source.service:
        add(("deviceProcessName", ev.source.service))
    custom: list[tuple[str, str | None]] = [
        ("tenant", tenant or ev.tenant),
        ("resource", "/".join(x for x in (ev.resource.type, ev.resource.id or ev.resource.name) if x) if ev.resource else None),
        ("leafHash", leaf_hash),
        ("metadata", _json.encode(ev.metadata).decode() if ev.metadata else None),
        ("sessionId", ev.actor.session_id),
        ("traceId", ev.source.trace_id if ev.source else None),
    ]
    for i, (label, value) in enumerate(custom, start=1):
        if value:
            add((f"cs{i}", value))
            add((f"cs{i}Label", label))
    if index is not None:
        add(("cn1", str(index)))
        add(("cn1Label", "index"))
    return cef_line(header, ext)

