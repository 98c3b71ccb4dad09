"""RFC 5424 syslog messages, framed by octet counting (RFC 6587 section 3.4.1) for TLS
transport (RFC 5425)."""

from __future__ import annotations

from auditkeep.ledger.reader import Record
from auditkeep.model.timefmt import format_rfc3339, parse_rfc3339

FACILITY = 13  # log audit
SEVERITY = {"debug": 7, "info": 6, "low": 5, "medium": 4, "high": 3, "critical": 2}
SD_ID = "auditkeep@32473"  # 32473: the enterprise number RFC 5612 sets aside for examples
_BOM = b"\xef\xbb\xbf"


def _field(text: str | None, limit: int) -> str:
    """A header field: printable US-ASCII without spaces, at most ``limit`` long, or ``-``."""
    if not text:
        return "-"
    out = "".join(c if 33 <= ord(c) <= 126 else "_" for c in text)[:limit]
    return out or "-"


def _param(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def timestamp(rec: Record) -> str:
    """The event time (else the received time) in RFC 5424's form: at most microseconds."""
    when = rec.event.time or rec.event.received_at
    if not when:
        return "-"
    ns = parse_rfc3339(when)
    return format_rfc3339(ns - ns % 1000)


def message(rec: Record, body: bytes, app_name: str = "auditkeep") -> bytes:
    """One syslog message carrying ``body`` (the record in the target's format)."""
    ev = rec.event
    pri = FACILITY * 8 + SEVERITY.get(ev.severity or "info", 6)
    host = ev.source.host if ev.source and ev.source.host else None
    sd = f'[{SD_ID} id="{_param(ev.id or "")}" tenant="{_param(rec.tenant)}" index="{rec.index}"]'
    head = f"<{pri}>1 {timestamp(rec)} {_field(host, 255)} {_field(app_name, 48)} - {_field(ev.action, 32)} {sd} "
    return head.encode() + _BOM + body


def frame(msg: bytes) -> bytes:
    """Octet counting: the length in decimal, a space, the message."""
    return str(len(msg)).encode() + b" " + msg
