"""The one event model every source maps to.

``msgspec`` decodes and type-checks an event in one pass; :mod:`auditkeep.model.validate`
then applies the limits that a schema cannot express (depth, key counts, numeric range) and
normalises ids and times.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from auditkeep.model.ids import UUID_PATTERN
from auditkeep.model.timefmt import RFC3339_PATTERN

ActorType = Literal["user", "service", "agent", "system"]
Category = Literal[
    "authentication",
    "authorization",
    "data_access",
    "data_change",
    "configuration",
    "admin",
    "system",
]
Outcome = Literal["success", "failure", "denied", "error", "unknown"]
Severity = Literal["debug", "info", "low", "medium", "high", "critical"]

ACTOR_TYPES: tuple[str, ...] = ("user", "service", "agent", "system")
CATEGORIES: tuple[str, ...] = (
    "authentication",
    "authorization",
    "data_access",
    "data_change",
    "configuration",
    "admin",
    "system",
)
OUTCOMES: tuple[str, ...] = ("success", "failure", "denied", "error", "unknown")
SEVERITIES: tuple[str, ...] = ("debug", "info", "low", "medium", "high", "critical")

# The schema-level bound on top-level strings; the configurable limit is applied in
# validation. This one only stops a pathological value before any other work is done.
Text = Annotated[str, msgspec.Meta(max_length=1 << 20)]
Ident = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
Action = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$",
        max_length=256,
        description="A dotted verb such as user.login, db.query or k8s.pods.create",
    ),
]
EventId = Annotated[str, msgspec.Meta(pattern=UUID_PATTERN, description="A UUID; UUIDv7 when assigned")]
Timestamp = Annotated[
    str,
    msgspec.Meta(
        pattern=RFC3339_PATTERN,
        description="RFC 3339 with a timezone, up to nanosecond precision",
    ),
]
TenantName = Annotated[
    str,
    msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$", description="lowercase letters, digits, . _ -"),
]


# The event structs are not tracked by the cyclic collector (``gc=False``): they hold JSON
# values only, so they cannot be part of a reference cycle, and the append path makes two
# of each an event; tracked, they made the collector run twice as often (full collections,
# which walk everything the application holds: 9.5 -> 4.8 µs an event in bench_headline's
# process, gc callbacks timing them over 40,000 events).
class Actor(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    """Who did it."""

    id: Ident
    type: ActorType | None = None
    name: Text | None = None
    ip: Text | None = None
    user_agent: Text | None = None
    session_id: Text | None = None


class Resource(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    """What it was done to."""

    type: Text | None = None
    id: Text | None = None
    name: Text | None = None


class Source(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    """Where the event came from."""

    service: Text | None = None
    host: Text | None = None
    request_id: Text | None = None
    trace_id: Text | None = None


SubmitterKind = Literal["key", "cert", "collector", "cli", "embedded", "server"]
SUBMITTER_KINDS: tuple[str, ...] = ("key", "cert", "collector", "cli", "embedded", "server")


class Submitter(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, frozen=True, gc=False):
    """Who appended an event, as the server established it (never as a client claims it):
    an API key id (``key``), a client-certificate subject (``cert``), a collector's source
    name (``collector``), the command line (``cli``), a program embedding the ledger
    (``embedded``), or the server's own code (``server``, with the key whose request caused
    the event when there is one)."""

    kind: SubmitterKind
    id: Ident | None = None

    def label(self) -> str:
        """``kind`` or ``kind:id``, the form ``submitter=`` filters take."""
        return self.kind if self.id is None else f"{self.kind}:{self.id}"


def parse_submitter_filter(text: str) -> tuple[str, str | None]:
    """A ``submitter=`` filter, ``KIND`` or ``KIND:ID`` (the id may hold colons), as
    (kind, id or None); ValueError names what is wrong."""
    kind, sep, ident = text.partition(":")
    if kind not in SUBMITTER_KINDS:
        raise ValueError(f"expected KIND or KIND:ID with KIND one of {', '.join(SUBMITTER_KINDS)}")
    if sep and not ident:
        raise ValueError("an empty id after ':'")
    if len(ident) > 1024 or "\x00" in ident:
        raise ValueError("the id is longer than 1024 characters or holds a NUL character")
    return kind, ident if sep else None


class Event(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    """One audit event: who did what, to what, when, from where, with what outcome.

    ``received_at`` and ``sealed`` are set by the ledger and ``submitter`` by the server; a
    client that sends them is refused.
    """

    actor: Actor
    action: Action
    id: EventId | None = None
    time: Timestamp | None = None
    received_at: Timestamp | None = None
    tenant: TenantName | None = None
    category: Category | None = None
    resource: Resource | None = None
    outcome: Outcome | None = None
    reason: Text | None = None
    source: Source | None = None
    severity: Severity | None = None
    metadata: dict[str, Any] | None = None
    sealed: dict[str, str] | None = None
    submitter: Submitter | None = None



class StoredEvent(Event):
    """An :class:`Event` as a stored leaf is read back to be formatted (exports, forwarding):
    the same fields in the same order, without the string patterns (event id, times, action,
    tenant), which the leaf passed when it was appended and which its hash in the tree keeps;
    they were a third of an OCSF export's time. Compares unequal to an ``Event``."""

    action: str
    id: str | None = None
    time: str | None = None
    received_at: str | None = None
    tenant: str | None = None


FIELD_PATHS: tuple[str, ...] = (
    "id",
    "time",
    "received_at",
    "tenant",
    "actor.id",
    "actor.type",
    "actor.name",
    "actor.ip",
    "actor.user_agent",
    "actor.session_id",
    "action",
    "category",
    "resource.type",
    "resource.id",
    "resource.name",
    "outcome",
    "reason",
    "source.service",
    "source.host",
    "source.request_id",
    "source.trace_id",
    "severity",
    "submitter.kind",
    "submitter.id",
)

# Actions only auditkeep's own code writes (key changes, read audits, alerts, approvals).
RESERVED_PREFIX = "auditkeep."
