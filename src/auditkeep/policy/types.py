"""The shapes shared by the policy steps: capture levels, processors, config errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypeAlias

from auditkeep.errors import ConfigError
from auditkeep.model import Event
from auditkeep.model.json_text import JSON_TEXT_KEY

Level: TypeAlias = Literal["none", "metadata", "request", "full"]
LEVELS: tuple[str, ...] = ("none", "metadata", "request", "full")

Processor: TypeAlias = Callable[[Event, str], "Event | None"]
"""One step of a pipeline: takes an event and its source name, returns the event (changed
in place or not) or None to drop it. Processors are plain callables, structlog style."""

GATEWAY_SOURCES: tuple[str, ...] = ("postgres-gateway", "mcp-gateway")
"""The gateways' source names; a client may name one of them when it posts events."""
SOURCES: tuple[str, ...] = ("kubernetes", "cloudtrail", "auditd", "syslog", "otlp", "api", *GATEWAY_SOURCES)
"""Source names the project's sources use; rules may name others (custom sources)."""

REDACTED_KEY = "_redacted"
DROPPED_KEY = "_dropped"
OMITTED_KEY = "_omitted"
BOOKKEEPING_KEYS = frozenset({REDACTED_KEY, DROPPED_KEY, OMITTED_KEY, JSON_TEXT_KEY})


class PolicyError(ConfigError):
    """A policy or redaction configuration that cannot be used; ``where`` names the place
    (``capture.rules[2].level``)."""

    def __init__(self, where: str, message: str) -> None:
        self.where = where
        self.message = message
        super().__init__(f"{where}: {message}" if where else message)
