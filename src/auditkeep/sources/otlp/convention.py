"""The attribute convention that makes an OpenTelemetry log record an audit event, and the
limits of the OTLP intake."""

from __future__ import annotations

import re

from auditkeep.errors import UserError
from auditkeep.model import (
    ACTOR_TYPES,
    CATEGORIES,
    OUTCOMES,
    SEVERITIES,
)

SOURCE = "otlp"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MAX_BODY_BYTES = 64 << 20
BODY_PATHS = ("otel.body",)

# The convention: log record attributes that fill the event's fields.
ATTR_ACTION = "audit.action"
ATTR_ACTOR_ID = "audit.actor.id"
_STRING_FIELDS: dict[str, str] = {
    "audit.actor.id": "actor.id",
    "audit.actor.type": "actor.type",
    "audit.actor.name": "actor.name",
    "audit.actor.ip": "actor.ip",
    "audit.actor.user_agent": "actor.user_agent",
    "audit.actor.session_id": "actor.session_id",
    "audit.action": "action",
    "audit.outcome": "outcome",
    "audit.category": "category",
    "audit.severity": "severity",
    "audit.reason": "reason",
    "audit.resource.type": "resource.type",
    "audit.resource.id": "resource.id",
    "audit.resource.name": "resource.name",
    "audit.id": "id",
    "audit.tenant": "tenant",
    "audit.request_id": "source.request_id",
}
# Semantic-convention attributes used when the audit.* one is absent.
_FALLBACKS: dict[str, tuple[str, ...]] = {
    "actor.id": ("user.id", "enduser.id"),
    "actor.user_agent": ("user_agent.original",),
    "actor.session_id": ("session.id",),
}
_CHOICES: dict[str, tuple[str, ...]] = {
    "actor.type": ACTOR_TYPES,
    "outcome": OUTCOMES,
    "category": CATEGORIES,
    "severity": SEVERITIES,
}
_ACTION = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_TENANT = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
_HEX = re.compile(r"[0-9a-fA-F]*")
_ID_NAMESPACE = b"auditkeep:otlp:"


class _Bad(UserError, ValueError):
    """A record that breaks the convention or the encoding; the message is the reason."""
