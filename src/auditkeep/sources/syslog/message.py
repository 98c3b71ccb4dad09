"""A parsed syslog message, whatever its format, and the names of its numbers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

SOURCE = "syslog"

FACILITY_NAMES: tuple[str, ...] = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
    "authpriv", "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2",
    "local3", "local4", "local5", "local6", "local7",
)  # fmt: skip
"""By facility code (RFC 5424 §6.2.1): 13 is "log audit", 14 "log alert", 15 the clock daemon."""

SEVERITY_NAMES: tuple[str, ...] = (
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
)  # fmt: skip

SEVERITY_TO_MODEL: tuple[str, ...] = (
    "critical",  # 0 emergency: system is unusable
    "critical",  # 1 alert: action must be taken immediately
    "critical",  # 2 critical
    "high",  # 3 error
    "medium",  # 4 warning
    "low",  # 5 notice: normal but significant
    "info",  # 6 informational
    "debug",  # 7 debug
)
"""Syslog severity code -> the model's severity (``debug`` ... ``critical``)."""

SDParams = dict[str, str | list[str]]


@dataclass(slots=True)
class SyslogMessage:
    """One syslog message. Absent parts (``-`` in RFC 5424, missing in BSD syslog) are None."""

    format: Literal["rfc5424", "rfc3164"]
    facility: int
    severity: int
    time_ns: int | None
    hostname: str | None
    app_name: str | None
    procid: str | None
    msgid: str | None
    msg: str
    raw: bytes
    sd: dict[str, SDParams] = field(default_factory=dict)
    """Structured data: ``{sd-id: {param: value}}``; a repeated param holds a list."""
    version: int | None = None
    timestamp: str | None = None
    """The timestamp as written."""
    time_text: str | None = None
    """The timestamp when it is a complete RFC 3339 one (with its offset), else None."""

    @property
    def pri(self) -> int:
        return self.facility * 8 + self.severity

    @property
    def facility_name(self) -> str:
        return (
            FACILITY_NAMES[self.facility]
            if self.facility < len(FACILITY_NAMES)
            else str(self.facility)
        )

    @property
    def severity_name(self) -> str:
        return SEVERITY_NAMES[self.severity]
