"""Legal holds: events matching an active hold are never expired or erased until it is released.

Holds are kept in the store's ``holds`` document collection; adding and releasing one is
recorded in the tenant's log (``auditkeep.hold.added`` / ``auditkeep.hold.released``).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from typing import Any

import msgspec

from auditkeep.errors import UserError
from auditkeep.model.errors import ValidationError
from auditkeep.model.timefmt import format_rfc3339, parse_rfc3339
from auditkeep.store.base import Doc, Store

COLLECTION = "holds"
MAX_REASON = 1000
MAX_FIELD = 256
MAX_ACTIVE = 10_000  # holds are checked against every candidate event


class Hold(msgspec.Struct, omit_defaults=True):
    id: str
    tenant: str
    reason: str
    created_at: str
    created_by: str
    actor: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    since: str | None = None  # on event time, inclusive
    until: str | None = None  # exclusive
    released_at: str | None = None
    released_by: str | None = None
    release_reason: str | None = None

    @property
    def active(self) -> bool:
        return self.released_at is None

    def covers(self, actor: str, resource_type: str | None, resource_id: str | None, time_ns: int) -> bool:
        if self.actor is not None and actor != self.actor:
            return False
        if self.resource_type is not None and resource_type != self.resource_type:
            return False
        if self.resource_id is not None and resource_id != self.resource_id:
            return False
        if self.since is not None and time_ns < parse_rfc3339(self.since):
            return False
        return not (self.until is not None and time_ns >= parse_rfc3339(self.until))

    def scope(self) -> dict[str, Any]:
        """What the hold covers, as recorded in its events."""
        out: dict[str, Any] = {}
        for name in ("actor", "resource_type", "resource_id", "since", "until"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


_dec = msgspec.json.Decoder(Hold)
_enc = msgspec.json.Encoder()


class HoldError(UserError, ValueError):
    """An erasure the active holds forbid (the message names the holds)."""


def _text(value: str | None, name: str, limit: int = MAX_FIELD) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit or "\x00" in value:
        raise ValidationError(f"must be 1-{limit} characters without NUL", name)
    return value


def new_hold(
    tenant: str,
    reason: str,
    created_by: str,
    *,
    actor: str | None = None,
    resource_type: str | None = None,
    resource_id: str | None = None,
    since_ns: int | None = None,
    until_ns: int | None = None,
) -> Hold:
    if resource_id is not None and resource_type is None:
        raise ValidationError("a resource id needs a resource type", "resource_id")
    if since_ns is not None and until_ns is not None and until_ns <= since_ns:
        raise ValidationError("must be after since", "until")
    return Hold(
        id="hold_" + secrets.token_hex(8),
        tenant=tenant,
        reason=_text(reason, "reason", MAX_REASON) or "",
        created_at=format_rfc3339(time.time_ns()),
        created_by=created_by,
        actor=_text(actor, "actor"),
        resource_type=_text(resource_type, "resource_type"),
        resource_id=_text(resource_id, "resource_id"),
        since=format_rfc3339(since_ns) if since_ns is not None else None,
        until=format_rfc3339(until_ns) if until_ns is not None else None,
    )


class HoldBook:
    """The holds of one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def put(self, hold: Hold) -> None:
        if hold.active and self.store.doc_count(COLLECTION, status="active") >= MAX_ACTIVE:
            raise ValidationError(f"at most {MAX_ACTIVE} active holds", "holds")
        self.store.doc_put(
            Doc(COLLECTION, hold.id, hold.tenant, parse_rfc3339(hold.created_at), "active" if hold.active else "released",
                _enc.encode(hold))
        )

    def get(self, hold_id: str) -> Hold | None:
        doc = self.store.doc_get(COLLECTION, hold_id)
        return _dec.decode(doc.data) if doc else None

    def all(self, tenant: str | None = None, *, active_only: bool = False, limit: int = 1000) -> list[Hold]:
        docs = self.store.doc_list(COLLECTION, tenant=tenant, status="active" if active_only else None, limit=limit)
        return [_dec.decode(d.data) for d in docs]

    def active(self, tenant: str) -> list[Hold]:
        return self.all(tenant, active_only=True, limit=MAX_ACTIVE)


def covering(holds: Sequence[Hold], actor: str, resource_type: str | None, resource_id: str | None, time_ns: int) -> Hold | None:
    for h in holds:
        if h.covers(actor, resource_type, resource_id, time_ns):
            return h
    return None
