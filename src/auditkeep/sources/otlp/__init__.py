"""OpenTelemetry logs (OTLP/HTTP ``/v1/logs``) mapped to :class:`Event`.

A log record becomes an audit event through a small attribute convention (``audit.action``,
``audit.actor.id``, ...; see ``docs/sources/opentelemetry.md``). Both encodings are read:
``application/x-protobuf`` (``ExportLogsServiceRequest``, decoded with the
``opentelemetry-proto`` classes) and ``application/json`` (the OTLP JSON mapping:
lowerCamelCase keys, hex trace and span ids, integer enums, 64-bit integers as decimal
strings or numbers). :func:`otlp_response` and :func:`otlp_status` build the answers the
OTLP specification asks for.

The package by job: ``convention`` (attribute names and limits), ``json_form`` and
``protobuf_form`` (the two encodings), ``mapping`` (a record to an event), ``parse`` (a
request body) and ``responses`` (the answers).
"""

from auditkeep.sources.otlp.convention import (
    ATTR_ACTION,
    ATTR_ACTOR_ID,
    BODY_PATHS,
    JSON,
    MAX_BODY_BYTES,
    PROTOBUF,
    SOURCE,
)
from auditkeep.sources.otlp.parse import parse_otlp_logs
from auditkeep.sources.otlp.responses import otlp_partial_success, otlp_response, otlp_status

__all__ = [
    "ATTR_ACTION",
    "ATTR_ACTOR_ID",
    "BODY_PATHS",
    "JSON",
    "MAX_BODY_BYTES",
    "PROTOBUF",
    "SOURCE",
    "otlp_partial_success",
    "otlp_response",
    "otlp_status",
    "parse_otlp_logs",
]
