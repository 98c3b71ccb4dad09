"""One log record, whatever its encoding, mapped to :class:`~auditkeep.model.Event`."""

from __future__ import annotations

import ipaddress
from typing import Any

import msgspec

from auditkeep.model import (
    Actor,
    Event,
    Resource,
    Source,
)
from auditkeep.model.timefmt import MAX_NS, format_rfc3339
from auditkeep.policy.limits import TooLarge, fit_metadata
from auditkeep.sources.common import derived_id
from auditkeep.sources.otlp.convention import (
    _ACTION,
    _CHOICES,
    _FALLBACKS,
    _ID_NAMESPACE,
    _STRING_FIELDS,
    _TENANT,
    _UUID,
    ATTR_ACTION,
    ATTR_ACTOR_ID,
    BODY_PATHS,
    _Bad,
)

# --------------------------------------------------------------------------- mapping


class _Record(msgspec.Struct):
    """A log record in neutral form, whichever encoding it came in."""

    time: int
    observed: int
    severity_number: int | str
    severity_text: str
    body: Any
    attributes: dict[str, Any]
    trace_id: str | None
    span_id: str | None
    flags: int
    event_name: str
    dropped: int


def _text_attr(attrs: dict[str, Any], key: str) -> str | None:
    v = attrs.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, str | int):
        raise _Bad(f"attribute {key} must be a string")
    text = str(v)
    if len(text) > 8192:
        raise _Bad(f"attribute {key} is longer than 8192 characters")
    return text or None


def _map_record(
    rec: _Record, resource: dict[str, Any], scope: dict[str, Any] | None, id_seed: bytes
) -> Event:
    """The record's convention attributes checked and placed in the event; everything else
    of the record kept below ``metadata.otel``."""
    fields, consumed = _convention_fields(rec.attributes)
    _check_fields(fields)
    ns = rec.time or rec.observed
    if not 0 <= ns <= MAX_NS:
        raise _Bad("timeUnixNano is outside the years 1970 to 2261")
    meta = _otel_metadata(rec, consumed, resource, scope)
    service = resource.get("service.name")
    host = resource.get("host.name")
    resource_fields = {
        k: fields[f"resource.{k}"] for k in ("type", "id", "name") if f"resource.{k}" in fields
    }
    eid = fields.get("id")
    return Event(
        actor=Actor(
            id=fields["actor.id"],
            type=fields.get("actor.type"),  # type: ignore[arg-type]
            name=fields.get("actor.name"),
            ip=fields.get("actor.ip"),
            user_agent=fields.get("actor.user_agent"),
            session_id=fields.get("actor.session_id"),
        ),
        action=fields["action"],
        id=eid.lower() if eid else _derived_id(id_seed),
        time=format_rfc3339(ns) if ns > 0 else None,
        tenant=fields.get("tenant"),
        category=fields.get("category"),  # type: ignore[arg-type]
        resource=Resource(**resource_fields) if resource_fields else None,
        outcome=fields.get("outcome"),  # type: ignore[arg-type]
        reason=fields.get("reason"),
        source=Source(
            service=service[:8192] if isinstance(service, str) and service else None,
            host=host[:8192] if isinstance(host, str) and host else None,
            request_id=fields.get("source.request_id"),
            trace_id=rec.trace_id,
        ),
        severity=fields.get("severity"),  # type: ignore[arg-type]
        metadata=meta,
    )


def _convention_fields(attrs: dict[str, Any]) -> tuple[dict[str, str], set[str]]:
    """The event fields the ``audit.*`` attributes (or their semantic-convention fallbacks)
    give, and the attributes consumed (the fallbacks stay in the metadata too)."""
    fields: dict[str, str] = {}
    consumed: set[str] = set()
    for key, field in _STRING_FIELDS.items():
        v = _text_attr(attrs, key)
        if v is not None:
            fields[field] = v
            consumed.add(key)
    for field, keys in _FALLBACKS.items():
        if field not in fields:
            for key in keys:
                v = _text_attr(attrs, key)
                if v is not None:
                    fields[field] = v
                    break
    return fields, consumed


def _check_fields(fields: dict[str, str]) -> None:
    """Refuse the record (``_Bad``, the reason) when a convention attribute is missing or
    not of its form."""
    action = fields.get("action")
    if action is None:
        raise _Bad(f"attribute {ATTR_ACTION} is missing")
    if len(action) > 256 or not _ACTION.fullmatch(action):
        raise _Bad(f"attribute {ATTR_ACTION} {action[:40]!r} is not a dotted name like user.login")
    actor_id = fields.get("actor.id")
    if actor_id is None:
        raise _Bad(f"attribute {ATTR_ACTOR_ID} is missing (nor user.id, enduser.id)")
    if len(actor_id) > 1024:
        raise _Bad(f"attribute {ATTR_ACTOR_ID} is longer than 1024 characters")
    for field, allowed in _CHOICES.items():
        v = fields.get(field)
        if v is not None and v not in allowed:
            raise _Bad(f"attribute audit.{field} {v[:20]!r} is not one of {', '.join(allowed)}")
    ip = fields.get("actor.ip")
    if ip is not None:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise _Bad(f"attribute audit.actor.ip {ip[:40]!r} is not an IP address") from None
    eid = fields.get("id")
    if eid is not None and not _UUID.fullmatch(eid):
        raise _Bad(f"attribute audit.id {eid[:40]!r} is not a UUID")
    tenant = fields.get("tenant")
    if tenant is not None and not _TENANT.fullmatch(tenant):
        raise _Bad(f"attribute audit.tenant {tenant[:40]!r} is not a tenant name")


def _otel_metadata(
    rec: _Record, consumed: set[str], resource: dict[str, Any], scope: dict[str, Any] | None
) -> dict[str, Any] | None:
    """What the event's fields do not hold, under ``otel`` (None when there is nothing),
    fitted to the size limits (the body goes first)."""
    otel: dict[str, Any] = {}
    if rec.body is not None:
        otel["body"] = rec.body
    rest = {k: v for k, v in rec.attributes.items() if k not in consumed}
    if rest:
        otel["attributes"] = rest
    res_rest = {k: v for k, v in resource.items() if k not in ("service.name", "host.name")}
    if res_rest:
        otel["resource"] = res_rest
    if scope:
        otel["scope"] = scope
    optional = (
        ("severity_text", rec.severity_text),
        ("severity_number", rec.severity_number),
        ("span_id", rec.span_id),
        ("flags", rec.flags),
        ("event_name", rec.event_name),
        ("dropped_attributes_count", rec.dropped),
    )
    otel.update((key, value) for key, value in optional if value)
    if not otel:
        return None
    meta: dict[str, Any] = {"otel": otel}
    try:
        fit_metadata(meta, drop_first=BODY_PATHS)
    except TooLarge as exc:
        raise _Bad(str(exc)) from None
    return meta


def _derived_id(seed: bytes) -> str:
    """An id from the record's own bytes, so an exporter's retry is idempotent."""
    return derived_id(_ID_NAMESPACE, seed)
