"""A :class:`SyslogMessage` as an :class:`Event`.

The convention (documented for users in ``docs/sources/syslog.md``):

* An ``audit`` structured-data element (SD-ID ``audit`` or ``audit@<enterprise number>``)
  says who did what: ``actor``, ``actor_type``, ``actor_name``, ``actor_ip``,
  ``session_id``, ``user_agent``, ``action``, ``outcome``, ``category``, ``severity``,
  ``reason``, ``resource_type``, ``resource_id``, ``resource_name``, ``request_id``,
  ``trace_id``. A value the model would refuse (an action with a space, an unknown
  outcome, an address that is not one) is not used; it stays in ``metadata.sd``.
* Otherwise the sending host is the actor (``host:<hostname>``, type ``system``) and the
  action is ``syslog.<app-name>`` (``syslog.<facility>`` without one).
* Severity from the syslog severity (:data:`.message.SEVERITY_TO_MODEL`); category
  ``authentication`` for the auth and authpriv facilities, else ``system``.
* The message text is the ``reason``; a text longer than the string limit is cut there and
  kept whole in ``metadata.message`` as consecutive pieces.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import msgspec

from auditkeep.model import (
    ACTOR_TYPES,
    CATEGORIES,
    DEFAULT_LIMITS,
    OUTCOMES,
    SEVERITIES,
    Event,
    Limits,
    ValidationError,
    convert_event,
    format_rfc3339,
    validate_event,
)
from auditkeep.sources.base import SourceError
from auditkeep.sources.common import derived_id, is_ip
from auditkeep.sources.syslog.message import SEVERITY_TO_MODEL, SOURCE, SDParams, SyslogMessage

_ACTION = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
_BAD_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")
_AUTH_FACILITIES = (4, 10)
_ID_NAMESPACE = b"auditkeep:syslog:"
# A timestamp with a fraction of a second: the message (with its sender) is then unique
# enough for its bytes to be its identity.
_FINE_TIME = re.compile(r"\d:\d\d[.,]\d")
_encoder = msgspec.json.Encoder()


def audit_params(sd: dict[str, SDParams]) -> dict[str, str] | None:
    """The ``audit`` (or ``audit@N``) element's parameters, first values only."""
    for sd_id, params in sd.items():
        if sd_id == "audit" or sd_id.startswith("audit@"):
            return {k: (v[0] if isinstance(v, list) else v) for k, v in params.items()}
    return None


def default_action(msg: SyslogMessage) -> str:
    """``syslog.<app-name>`` made a valid action, else ``syslog.<facility>``."""
    return _default_action(msg.app_name, msg.facility_name)


@functools.lru_cache(maxsize=4096)
def _default_action(app_name: str | None, facility: str) -> str:
    if app_name:
        parts = [p for p in _BAD_CHARS.sub("_", app_name).split(".") if p]
        if parts:
            return ("syslog." + ".".join(parts))[:256].rstrip(".")
    return "syslog." + facility


def map_syslog(
    msg: SyslogMessage,
    *,
    peer: str | None = None,
    received_ns: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
    validate: bool = True,
) -> Event:
    """The Event for one message; :class:`SourceError` if the model refuses it.

    ``peer`` is the sender's address (``ip`` or ``ip:port``), used for the actor when the
    message names no host; ``received_ns`` is the time for a message that has none.

    The event is built within ``limits`` (the sender-controlled structured data is checked
    against them, the size too); ``validate`` also runs
    :func:`auditkeep.model.validate_event`, which the ledger repeats: turn it off to save
    that work when the ledger's verdict on a batch is handled.
    """
    try:
        _check_sd(msg.sd, limits)
        ev = convert_event(_fields(msg, peer, received_ns, limits))
        if validate:
            validate_event(ev, limits)
        # Everything in the event comes from the message, at most twice over (the text as
        # reason and in pieces, an SD value in metadata and in the actor), each byte at most
        # 6 bytes of JSON once escaped; below that bound the encoding need not be measured.
        if 12 * len(msg.raw) + 4096 > limits.max_event_bytes:
            size = len(_encoder.encode(ev))
            if size > limits.max_event_bytes:
                raise ValidationError(
                    f"event of {size} bytes exceeds the limit of {limits.max_event_bytes}"
                )
    except ValidationError as exc:
        raise SourceError(SOURCE, f"cannot map message: {exc}", msg.raw) from None
    return ev


def finely_timed(msg: SyslogMessage) -> bool:
    """Whether the message's timestamp has a fraction of a second."""
    return msg.timestamp is not None and _FINE_TIME.search(msg.timestamp) is not None


def message_id(msg: SyslogMessage, peer: str | None) -> str:
    """An event id derived from the message's bytes and the sender's IP address: a
    message a sender writes again (rsyslog resends its last message after a reconnect)
    gets the id it had the first time, so it is stored once. Meant for messages timed to
    a fraction of a second (:func:`finely_timed`): two such messages alike to the byte,
    from one sender, are one message written twice."""
    ip = _peer_ip(peer) or ""
    return derived_id(_ID_NAMESPACE + ip.encode() + b"\x00", msg.raw)


def _fields(
    msg: SyslogMessage, peer: str | None, received_ns: int | None, limits: Limits
) -> dict[str, Any]:
    cap = limits.max_string
    audit = audit_params(msg.sd) or {}
    host = msg.hostname
    peer_ip = _peer_ip(peer)

    actor: dict[str, str]
    actor_id = audit.get("actor")
    if actor_id:
        actor = {"id": actor_id[:1024]}
        atype = audit.get("actor_type")
        actor["type"] = atype if atype in ACTOR_TYPES else "user"
        for src, dst in (("actor_name", "name"), ("session_id", "session_id"),
                         ("user_agent", "user_agent")):  # fmt: skip
            v = audit.get(src)
            if v:
                actor[dst] = v[:cap]
        ip = audit.get("actor_ip")
        if ip and is_ip(ip):
            actor["ip"] = ip
    else:
        who = host or peer_ip or "unknown"
        actor = {"id": ("host:" + who)[:1024], "type": "system"}

    action = audit.get("action")
    if not action or len(action) > 256 or _ACTION.match(action) is None:
        action = default_action(msg)
    ev: dict[str, Any] = {"actor": actor, "action": action}

    if msg.time_text is not None:
        ev["time"] = msg.time_text  # already RFC 3339 with an offset; the ledger normalises
    else:
        ns = msg.time_ns if msg.time_ns is not None else received_ns
        if ns is not None:
            ev["time"] = format_rfc3339(ns)
    category = audit.get("category")
    if category in CATEGORIES:
        ev["category"] = category
    else:
        ev["category"] = "authentication" if msg.facility in _AUTH_FACILITIES else "system"
    outcome = audit.get("outcome")
    if outcome in OUTCOMES:
        ev["outcome"] = outcome
    severity = audit.get("severity")
    ev["severity"] = severity if severity in SEVERITIES else SEVERITY_TO_MODEL[msg.severity]

    resource = {
        k: audit[f"resource_{k}"][:cap]
        for k in ("type", "id", "name")
        if audit.get(f"resource_{k}")
    }
    if resource:
        ev["resource"] = resource
    source: dict[str, str] = {}
    if host or peer_ip:
        source["host"] = (host or peer_ip or "")[:cap]
    if msg.app_name:
        source["service"] = msg.app_name[:cap]
    for k in ("request_id", "trace_id"):
        if audit.get(k):
            source[k] = audit[k][:cap]
    if source:
        ev["source"] = source

    meta: dict[str, Any] = {}
    text = msg.msg
    reason = audit.get("reason")
    if reason:
        ev["reason"] = reason[:cap]
        if text:
            meta["message"] = _pieces(text, cap)
    elif text:
        ev["reason"] = text[:cap]
        if len(text) > cap:
            meta["message"] = _pieces(text, cap)
    info: dict[str, Any] = {
        "format": msg.format,
        "facility": msg.facility_name,
        "severity": msg.severity_name,
    }
    if msg.procid is not None:
        info["procid"] = msg.procid[:cap]
    if msg.msgid is not None:
        info["msgid"] = msg.msgid[:cap]
    if msg.timestamp is not None and msg.time_text is None:
        # A local time as written (BSD syslog); an RFC 3339 one is the event's time itself.
        info["timestamp"] = msg.timestamp[:cap]
    if msg.time_ns is None:
        info["time_from"] = "received"
    if peer:
        info["peer"] = peer[:cap]
    meta["syslog"] = info
    if msg.sd:
        # Kept as received: a value over the limits sends the message to quarantine whole
        # rather than keep structured data cut short.
        meta["sd"] = msg.sd
    ev["metadata"] = meta
    return ev


def _check_sd(sd: dict[str, SDParams], limits: Limits) -> None:
    """Structured data is the sender's: hold it to the metadata limits here."""
    if not sd:
        return
    if len(sd) > limits.max_keys:
        raise ValidationError(f"{len(sd)} structured data elements, more than {limits.max_keys}")
    m = limits.max_string
    for sd_id, params in sd.items():
        if len(params) > limits.max_keys:
            raise ValidationError(
                f"[{sd_id[:64]}] has {len(params)} params, more than {limits.max_keys}"
            )
        if len(sd_id) > m:
            raise ValidationError(f"SD-ID longer than {m}")
        for name, value in params.items():
            if len(name) > m:
                raise ValidationError(f"param name longer than {m}")
            values = value if isinstance(value, list) else (value,)
            if len(values) > limits.max_array:
                raise ValidationError(
                    f"param {name[:64]} repeated more than {limits.max_array} times"
                )
            if any(len(v) > m for v in values):
                raise ValidationError(f"param {name[:64]} longer than {m}")


def _pieces(text: str, cap: int) -> list[str]:
    return [text[i : i + cap] for i in range(0, len(text), cap)]


@functools.lru_cache(maxsize=4096)
def _peer_ip(peer: str | None) -> str | None:
    if not peer:
        return None
    if is_ip(peer):
        return peer
    host = peer.rsplit(":", 1)[0].strip("[]")
    return host if is_ip(host) else None
