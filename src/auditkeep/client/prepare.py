"""The caller's side of ``record()``: merge the context, validate, stamp, encode.

Everything that can reject an event happens here, in the caller's thread, so a bad event
raises :class:`~auditkeep.model.ValidationError` where it was made. What leaves this module
is the event's JSON bytes, ready to be batched, spooled and sent unchanged (a resend is
byte-for-byte the same event, which the server recognises by its id).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import msgspec

from auditkeep.client.context import merge_into
from auditkeep.client.ids import new_id
from auditkeep.model.errors import ValidationError, from_msgspec
from auditkeep.model.event import Event
from auditkeep.model.validate import (
    DEFAULT_LIMITS,
    Limits,
    check_strings,
    check_tenant,
    validate_event,
)

__all__ = ["Prepared", "prepare", "prepare_many", "tenant_name", "utc_now"]

_encode = msgspec.json.Encoder().encode
_convert = msgspec.convert


class _Clock:
    """RFC 3339 UTC timestamps with nanoseconds; the date-and-second prefix is cached."""

    __slots__ = ("_prefix", "_sec")

    def __init__(self) -> None:
        self._sec = -1
        self._prefix = ""

    def __call__(self) -> str:
        ns = time.time_ns()
        sec, frac = divmod(ns, 1_000_000_000)
        if sec != self._sec:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
            self._sec = sec
        if frac:
            return f"{self._prefix}.{frac:09d}".rstrip("0") + "Z"
        return self._prefix + "Z"


utc_now = _Clock()


Prepared = tuple[str, bytes]
"""An event ready to queue: its id and its JSON bytes (a tuple: cheapest to build)."""


_good_tenants: set[str] = set()


def tenant_name(tenant: str | None) -> str | None:
    """``tenant`` if it is a valid tenant name (or None); ValidationError otherwise."""
    if tenant is None or tenant in _good_tenants:
        return tenant
    check_tenant(tenant)
    if len(_good_tenants) < 4096:
        _good_tenants.add(tenant)
    return tenant


def prepare(fields: dict[str, Any], tenant: str | None = None, limits: Limits = DEFAULT_LIMITS) -> Prepared:
    """Validate one event given as ``record()`` keyword arguments; raise ValidationError.

    ``fields`` is consumed (the context is merged into it). The event gets an id (UUIDv7)
    and a time (now) unless it has them, so that a delayed or repeated delivery keeps
    both.
    """
    merge_into(fields)
    try:
        ev = _convert(fields, Event)
    except msgspec.ValidationError as exc:
        raise from_msgspec(exc) from None
    return _finish(ev, tenant, limits)


def prepare_event(ev: Event | Mapping[str, Any], tenant: str | None = None, limits: Limits = DEFAULT_LIMITS) -> Prepared:
    """As :func:`prepare`, for an Event object (copied, never changed) or a mapping."""
    if isinstance(ev, Event):
        return prepare(msgspec.to_builtins(ev), tenant, limits)
    return prepare(dict(ev), tenant, limits)


def _finish(ev: Event, tenant: str | None, limits: Limits) -> Prepared:
    validate_event(ev, limits, tenant)
    if ev.id is None:
        ev.id = new_id()
    if ev.time is None:
        ev.time = utc_now()
    data = _encode(ev)
    size = len(data)
    if size > limits.max_string:
        # No string can be longer than the JSON holding it, so short events skip the walk.
        check_strings(ev, limits)
    if size > limits.max_event_bytes:
        raise ValidationError(f"event is {size} bytes, more than {limits.max_event_bytes}")
    return ev.id, data


def prepare_many(
    events: list[Event | Mapping[str, Any]], tenant: str | None = None, limits: Limits = DEFAULT_LIMITS
) -> list[Prepared]:
    """All or nothing: the first invalid event raises, naming its position."""
    out: list[Prepared] = []
    for i, ev in enumerate(events):
        try:
            out.append(prepare_event(ev, tenant, limits))
        except ValidationError as exc:
            raise exc.at(i) from None
    return out
