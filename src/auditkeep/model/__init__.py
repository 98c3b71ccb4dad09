"""The event model: one shape for every source, its limits and its canonical bytes."""

from auditkeep.model.canonical import canonical_bytes, needs_exact
from auditkeep.model.errors import ConflictError, ValidationError
from auditkeep.model.event import (
    ACTOR_TYPES,
    CATEGORIES,
    OUTCOMES,
    SEVERITIES,
    Actor,
    Event,
    Resource,
    Source,
    Submitter,
)
from auditkeep.model.ids import uuid7, uuid7_batch
from auditkeep.model.paths import get_path, pop_path, set_path
from auditkeep.model.timefmt import format_rfc3339, parse_rfc3339
from auditkeep.model.validate import (
    DEFAULT_LIMITS,
    Limits,
    convert_batch,
    convert_event,
    decode_batch,
    decode_event,
    decode_lines,
    validate_event,
)

__all__ = [
    "ACTOR_TYPES",
    "CATEGORIES",
    "DEFAULT_LIMITS",
    "OUTCOMES",
    "SEVERITIES",
    "Actor",
    "ConflictError",
    "Event",
    "Limits",
    "Resource",
    "Source",
    "Submitter",
    "ValidationError",
    "canonical_bytes",
    "convert_batch",
    "convert_event",
    "decode_batch",
    "decode_event",
    "decode_lines",
    "format_rfc3339",
    "get_path",
    "needs_exact",
    "parse_rfc3339",
    "pop_path",
    "set_path",
    "uuid7",
    "uuid7_batch",
    "validate_event",
]
