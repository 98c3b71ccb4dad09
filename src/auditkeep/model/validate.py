"""Decoding and validation of events, with limits that name the offending field."""

from __future__ import annotations

import functools
import ipaddress
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from msgspec.structs import astuple

from auditkeep.model.errors import MalformedJSON, ValidationError, from_msgspec
from auditkeep.model.event import Event, TenantName
from auditkeep.model.jsonkeys import check_unique_keys, keys_unique
from auditkeep.model.timefmt import RANGE_MESSAGE, in_range, normalize_rfc3339

MAX_SAFE_INT = 2**53 - 1


@dataclass(frozen=True)
class Limits:
    """Bounds on one event. All configurable; the defaults suit most audit trails."""

    max_event_bytes: int = 64 * 1024  # canonical (leaf) size
    max_keys: int = 64  # keys per metadata object
    max_depth: int = 8  # nesting of metadata objects and arrays
    max_string: int = 8192  # characters per string, anywhere in the event
    max_array: int = 1024  # items per metadata array


DEFAULT_LIMITS = Limits()

_one = msgspec.json.Decoder(Event)
_many = msgspec.json.Decoder(list[Event])
_raw = msgspec.json.Decoder()
_EventList = list[Event]


def decode_event(data: bytes | str) -> Event:
    """One event from JSON; ValidationError on malformed JSON or a schema violation."""
    try:
        ev = _one.decode(data)
    except msgspec.ValidationError as exc:
        raise from_msgspec(exc) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise MalformedJSON(f"malformed JSON: {_decode_reason(exc)}") from None
    check_unique_keys(data, ev)
    return ev


def decode_batch(data: bytes) -> list[Event]:
    """A JSON array of events, a single JSON object, or NDJSON (one event per line)."""
    body = data.lstrip()
    if body[:1] == b"[":
        try:
            events = _many.decode(body)
        except msgspec.ValidationError as exc:
            raise from_msgspec(exc, batch=True) from None
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise MalformedJSON(f"malformed JSON: {_decode_reason(exc)}") from None
        check_unique_keys(body, events, array=True)
        return events
    return decode_lines(body.split(b"\n"))


def decode_lines(lines: Iterable[bytes | str], first_position: int = 0) -> list[Event]:
    """NDJSON: one event per non-blank line; errors carry the line's position (0-based)."""
    out: list[Event] = []
    kept: list[tuple[int, bytes | str]] = []
    for i, line in enumerate(lines, first_position):
        if not line.strip():
            continue
        try:
            out.append(_one.decode(line))
        except msgspec.ValidationError as exc:
            raise from_msgspec(exc).at(i) from None
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise MalformedJSON(f"malformed JSON: {_decode_reason(exc)}", "", i) from None
        kept.append((i, line))
    # One check over all lines; only when it fails are the lines checked one by one.
    if not keys_unique(kept_text(kept), out):
        for (i, line), ev in zip(kept, out, strict=True):
            try:
                check_unique_keys(line, ev)
            except ValidationError as exc:
                raise exc.at(i) from None
    return out


def kept_text(kept: list[tuple[int, bytes | str]]) -> bytes:
    return b"\n".join(x.encode() if isinstance(x, str) else x for _, x in kept)


def convert_event(fields: Mapping[str, Any] | Event) -> Event:
    """An Event from Python data (as given to ``record(**fields)``)."""
    if isinstance(fields, Event):
        return fields
    try:
        return msgspec.convert(fields, Event)
    except msgspec.ValidationError as exc:
        raise from_msgspec(exc) from None


def convert_batch(items: Sequence[Mapping[str, Any] | Event | bytes | str]) -> list[Event]:
    if items and all(type(x) is dict for x in items):
        # One conversion of the whole batch (what record_many hands over); on an error the
        # loop below runs to name the position.
        try:
            return msgspec.convert(items, _EventList)
        except msgspec.ValidationError:
            pass
    out: list[Event] = []
    for i, item in enumerate(items):
        try:
            if isinstance(item, bytes | str):
                out.append(decode_event(item))
            else:
                out.append(convert_event(item))
        except ValidationError as exc:
            raise exc.at(i) from None
    return out


def _decode_reason(exc: Exception) -> str:
    text = str(exc)
    if "utf-8" in text.lower() or "codec" in text:
        return "invalid UTF-8"
    return text


class Checked(msgspec.Struct, gc=False):
    """What validation learned about an event, for the ledger's later steps (not tracked by
    the cyclic collector: it holds an int and a bool, and a batch makes a thousand)."""

    time_ns: int
    exact: bool  # canonicalise with the reference implementation


def validate_event(ev: Event, limits: Limits = DEFAULT_LIMITS, tenant: str | None = None) -> Checked:
    """Check the limits a schema cannot express and normalise in place.

    Sets ``time`` to its normalised UTC form, lowercases a client-chosen ``id`` and fills a
    missing ``outcome`` with ``unknown``. A missing ``time`` is left for the ledger (which
    uses the receive time).
    """
    if ev.received_at is not None:
        raise ValidationError("set by the ledger; do not send it", "received_at")
    if ev.sealed is not None:
        raise ValidationError("set by the ledger; do not send it", "sealed")
    if ev.submitter is not None:
        raise ValidationError("set by the server from the credentials of the request; do not send it", "submitter")
    if tenant is not None and ev.tenant is not None and ev.tenant != tenant:
        raise ValidationError(f"event is for tenant {ev.tenant!r}, not {tenant!r}", "tenant")
    if ev.id is not None:
        ev.id = ev.id.lower()
    time_ns = 0
    if ev.time is not None:
        try:
            ev.time, time_ns = normalize_rfc3339(ev.time)
        except ValueError as exc:
            raise ValidationError(str(exc), "time") from None
        if not in_range(time_ns):
            raise ValidationError(RANGE_MESSAGE, "time")
    if ev.outcome is None:
        ev.outcome = "unknown"
    check_strings(ev, limits)
    ip = ev.actor.ip
    if ip is not None and not is_ip(ip):
        raise ValidationError(f"not an IP address: {_clip(ip)!r}", "actor.ip")
    exact = False
    if ev.metadata is not None:
        exact = _walk(ev.metadata, "metadata", 1, limits)
    return Checked(time_ns, exact)


def check_strings(ev: Event, limits: Limits) -> None:
    """The per-string limit over the top-level fields (metadata is checked by the walk)."""
    m = limits.max_string
    # A quick pass over the values (no field names); the walk below runs only to name the
    # field when one is too long (or a part built in Python holds something not a string).
    fits = ev.reason is None or len(ev.reason) <= m
    try:
        for part in (ev.actor, ev.resource, ev.source):
            if fits and part is not None:
                for v in astuple(part):
                    if v is not None and len(v) > m:
                        fits = False
                        break
    except TypeError:
        fits = False
    if fits:
        return
    for group in ("actor", "resource", "source"):
        part = getattr(ev, group)
        if part is None:
            continue
        for field in part.__struct_fields__:
            value = getattr(part, field)
            if isinstance(value, str) and len(value) > m:
                raise ValidationError(f"string longer than {m}", f"{group}.{field}")
    if ev.reason is not None and len(ev.reason) > m:
        raise ValidationError(f"string longer than {m}", "reason")


def _walk(value: Any, path: str, depth: int, limits: Limits) -> bool:
    """Check a metadata value; True when it needs exact canonicalisation."""
    exact = False
    if isinstance(value, dict):
        if depth > limits.max_depth:
            raise ValidationError(f"nested deeper than {limits.max_depth}", path)
        if len(value) > limits.max_keys:
            raise ValidationError(f"object has {len(value)} keys, more than {limits.max_keys}", path)
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValidationError("object keys must be strings", path)
            if len(k) > limits.max_string:
                raise ValidationError(f"key longer than {limits.max_string}", path)
            if not k.isascii():
                _check_text(k, path)
                if any(ord(c) > 0xFFFF for c in k):
                    exact = True
            # Strings and integers, most values, are checked here: a call and a path string
            # for each was most of the walk's cost; the path is built only to name an error.
            t = type(v)
            if t is str:
                if len(v) > limits.max_string:
                    raise ValidationError(f"string longer than {limits.max_string}", f"{path}.{k}")
                if not v.isascii():
                    _check_text(v, f"{path}.{k}")
            elif v is None or t is bool:
                continue
            elif t is int:
                if not -MAX_SAFE_INT <= v <= MAX_SAFE_INT:
                    raise ValidationError("integer outside ±(2^53-1), which JSON cannot carry exactly", f"{path}.{k}")
            elif _walk(v, f"{path}.{k}", depth + 1, limits):
                exact = True
        return exact
    if isinstance(value, list):
        if depth > limits.max_depth:
            raise ValidationError(f"nested deeper than {limits.max_depth}", path)
        if len(value) > limits.max_array:
            raise ValidationError(f"array has {len(value)} items, more than {limits.max_array}", path)
        for i, v in enumerate(value):
            t = type(v)
            if t is str and len(v) <= limits.max_string and v.isascii():
                continue
            if v is None or t is bool or (t is int and -MAX_SAFE_INT <= v <= MAX_SAFE_INT):
                continue
            if _walk(v, f"{path}[{i}]", depth + 1, limits):
                exact = True
        return exact
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, int):
        if not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
            raise ValidationError("integer outside ±(2^53-1), which JSON cannot carry exactly", path)
        return False
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError("NaN and Infinity are not JSON numbers", path)
        return True
    if isinstance(value, str):
        if len(value) > limits.max_string:
            raise ValidationError(f"string longer than {limits.max_string}", path)
        if not value.isascii():
            _check_text(value, path)
        return False
    raise ValidationError(f"unsupported value of type {type(value).__name__}", path)


_IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])")


def is_ip(text: str) -> bool:
    """An IPv4 dotted quad (the common case, by regex) or any address ``ipaddress`` accepts."""
    return _IPV4.fullmatch(text) is not None or _is_ip_slow(text)


@functools.lru_cache(maxsize=4096)
def _is_ip_slow(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _check_text(s: str, path: str) -> None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("string is not valid Unicode (lone surrogate)", path) from None


def _clip(s: str, n: int = 64) -> str:
    return s if len(s) <= n else s[:n] + "…"


_TENANT = msgspec.json.Decoder(TenantName)


def check_tenant(name: str) -> str:
    """``name`` if it is a valid tenant name, else a :class:`ValidationError` on ``tenant``."""
    try:
        return _TENANT.decode(msgspec.json.encode(name))
    except msgspec.ValidationError:
        raise ValidationError("expected 1-63 lowercase letters, digits, '.', '_' or '-'", "tenant") from None
