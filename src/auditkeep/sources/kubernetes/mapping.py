"""A native ``audit.k8s.io`` event mapped to :class:`~auditkeep.model.Event`."""

from __future__ import annotations

import functools
from typing import Any, Literal

import orjson

from auditkeep.model import Actor, Event, Resource, Source
from auditkeep.policy.limits import TooLarge, fit_metadata
from auditkeep.sources.base import SourceError
from auditkeep.sources.common import is_ip
from auditkeep.sources.kubernetes.vocabulary import (
    API_VERSIONS,
    BODY_PATHS,
    SOURCE,
    UNAUTHENTICATED,
    actor_type,
    derived_id,
    k8s_action,
    k8s_category,
    k8s_outcome,
    k8s_time,
)

# --------------------------------------------------------------------------- mapping


def map_k8s_event(obj: dict[str, Any], *, cluster: str | None = None) -> Event:
    """One native audit event (a decoded ``audit.k8s.io`` Event) as an :class:`Event`.

    Raises :class:`SourceError` when it cannot be mapped (no user, no verb, bad time).
    """
    return _map(obj, cluster, None, False)


def _fail(reason: str, obj: Any) -> SourceError:
    try:
        raw = orjson.dumps(obj)
    except TypeError:
        raw = repr(obj).encode()
    return SourceError(SOURCE, reason, raw)


def _check_kind(obj: dict[str, Any]) -> str | None:
    kind = obj.get("kind")
    if kind is not None and kind != "Event":
        return f"kind {kind!r} is not Event"
    api = obj.get("apiVersion")
    if api is not None and api not in API_VERSIONS:
        return f"apiVersion {api!r} is not audit.k8s.io/v1"
    return None


def _map(
    obj: dict[str, Any], cluster: str | None, wrapper: dict[str, Any] | None, fits: bool
) -> Event:
    """The mapping, step by step: who (user, groups, source IP), what (verb and object
    reference), how it went (response status), when, and the event's id."""
    if not isinstance(obj, dict):
        raise _fail(f"expected a JSON object, got {type(obj).__name__}", obj)
    bad = _check_kind(obj)
    if bad:
        raise _fail(bad, obj)
    status = obj.get("responseStatus")
    code = status.get("code") if isinstance(status, dict) else None
    username, groups = _user(obj, code)
    verb = obj.get("verb")
    if type(verb) is not str or not verb:
        raise _fail("verb is missing", obj)

    meta: dict[str, Any] = {"k8s": obj}
    if groups:
        meta["groups"] = [g for g in groups if type(g) is str]
    imp = obj.get("impersonatedUser")
    if isinstance(imp, dict):
        meta["impersonated_user"] = imp
    ip = _source_ip(obj, meta)
    resource, resource_name, sub = _resource(obj, meta)
    action, category = _classify(verb, resource_name, sub)

    stage = _str(obj.get("stage"))
    outcome = k8s_outcome(code, stage)
    if code == 401:
        category = "authentication"
    reason = _reason(obj, status, outcome)
    when = _when(obj)  # before the size check: a bad time is the error reported
    audit_id = _str(obj.get("auditID"))
    if audit_id:
        eid = derived_id(
            cluster or "",
            audit_id,
            stage or "",
            _str(obj.get("requestReceivedTimestamp")) or "",
            verb,
            _str(obj.get("requestURI")) or "",
            username,
        )
    else:
        eid = derived_id(cluster or "", _content(obj))

    if wrapper:
        meta.update(wrapper)
    if not fits:
        try:
            fit_metadata(meta, drop_first=BODY_PATHS)
        except TooLarge as exc:
            raise _fail(str(exc), obj) from None

    ua = _str(obj.get("userAgent"))
    return Event(
        actor=Actor(
            id=username or UNAUTHENTICATED,
            type=(_user_type(username) or actor_type(username, groups)) if username else "user",
            name=username or None,
            ip=ip,
            user_agent=ua[:8192] if ua else None,
        ),
        action=action,
        id=eid,
        time=when,
        category=category,  # type: ignore[arg-type]
        resource=resource,
        outcome=outcome,  # type: ignore[arg-type]
        reason=reason[:8192] if reason else None,
        source=Source(service="kube-apiserver", host=cluster, request_id=audit_id),
        metadata=meta,
    )


def _user(obj: dict[str, Any], code: Any) -> tuple[str, list[Any]]:
    """The username ("" for a failed authentication) and the groups of the request."""
    user = obj.get("user")
    username = user.get("username") if type(user) is dict else None
    if type(username) is not str or not username:
        if code != 401:
            raise _fail("user.username is missing", obj)
        # A failed authentication: the API server records it with `"user": {}` because no
        # one was authenticated. The caller is named explicitly rather than refused.
        username = ""
    if len(username) > 1024:
        raise _fail("user.username is longer than 1024 characters", obj)
    groups = user.get("groups") if type(user) is dict else None
    return username, groups if type(groups) is list else []


def _source_ip(obj: dict[str, Any], meta: dict[str, Any]) -> str | None:
    """The first source IP (all of them kept in ``meta``), when it is an address."""
    ips = obj.get("sourceIPs")
    if not isinstance(ips, list) or not ips:
        return None
    meta["source_ips"] = ips
    first = ips[0]
    return first if isinstance(first, str) and is_ip(first) else None


def _resource(obj: dict[str, Any], meta: dict[str, Any]) -> tuple[Resource | None, str | None, str | None]:
    """The resource (from ``objectRef``, else the request URI's path), its type and subresource."""
    ref = obj.get("objectRef")
    resource_name = sub = None
    if type(ref) is dict:
        resource_name = _str(ref.get("resource"))
        sub = _str(ref.get("subresource"))
    if type(ref) is dict and resource_name:
        ns = _str(ref.get("namespace"))
        name = _str(ref.get("name"))
        rid = f"{ns}/{name}" if ns and name else name
        if ns:
            meta["namespace"] = ns
        group = ref.get("apiGroup")
        if isinstance(group, str):
            meta["api_group"] = group
        return Resource(type=resource_name, id=rid, name=name), resource_name, sub
    uri = _str(obj.get("requestURI"))
    path = uri.split("?", 1)[0] if uri else None
    return (Resource(type="url", id=path, name=path) if path else None), resource_name, sub


def _reason(obj: dict[str, Any], status: Any, outcome: str) -> str | None:
    """Why a request was denied or failed: the status message, else the authorizer's reason."""
    reason: str | None = None
    if outcome in ("denied", "failure", "error") and isinstance(status, dict):
        reason = _str(status.get("message")) or _str(status.get("reason"))
    if reason is None and outcome == "denied":
        ann = obj.get("annotations")
        if isinstance(ann, dict):
            reason = _str(ann.get("authorization.k8s.io/reason")) or None
    return reason


def _when(obj: dict[str, Any]) -> str | None:
    """The event's time: the stage's timestamp, else when the request was received."""
    for key in ("stageTimestamp", "requestReceivedTimestamp", "timestamp"):
        t = obj.get(key)
        if isinstance(t, str) and t:
            try:
                return k8s_time(t)
            except ValueError as exc:
                raise _fail(f"{key}: {exc}", obj) from None
    return None


def _content(obj: Any) -> str:
    """The record's content as stable text, for ids derived from it."""
    try:
        return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:  # not from JSON: keys that are not text, integers beyond 64 bits
        return repr(obj)


def _str(v: Any) -> str | None:
    return v if type(v) is str and v else None


@functools.lru_cache(maxsize=4096)  # few verb and resource combinations recur
def _classify(verb: str, resource: str | None, sub: str | None) -> tuple[str, str | None]:
    return k8s_action(verb, resource, sub), k8s_category(verb, resource, sub)


@functools.lru_cache(maxsize=4096)
def _user_type(username: str) -> Literal["service", "system"] | None:
    """The actor type when the name alone decides it (None: the groups decide)."""
    kind = actor_type(username)
    return None if kind == "user" else kind
