"""Kubernetes API server audit events (``audit.k8s.io/v1``) mapped to :class:`Event`.

Three ways in: the webhook backend's POST body (:func:`parse_k8s_payload`), one line of an
audit log file (:func:`parse_k8s_log_line`), or a decoded object (:func:`map_k8s_event`,
:func:`map_k8s_record`). Managed clusters wrap the same event: EKS through CloudWatch Logs,
AKS in ``properties.log`` of a diagnostic record, GKE as a Cloud Audit Log entry;
:func:`unwrap_k8s` turns each into the native shape. The mapping rules are documented in
``docs/sources/kubernetes.md``.
"""

from __future__ import annotations

import functools
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, Literal

import msgspec
import orjson

from auditkeep.model import DEFAULT_LIMITS, Actor, Event, Resource, Source
from auditkeep.model.jsonkeys import duplicate_key_reason
from auditkeep.policy.limits import TooLarge, bounded_type, fit_metadata
from auditkeep.sources.base import SourceError
from auditkeep.sources.common import action_segment, is_ip, utc_rfc3339
from auditkeep.sources.common import derived_id as _derived

SOURCE = "kubernetes"
API_VERSIONS = frozenset({"audit.k8s.io/v1", "audit.k8s.io/v1beta1"})
FINAL_STAGES = frozenset({"ResponseComplete", "Panic"})
BODY_PATHS = ("k8s.responseObject", "k8s.requestObject")  # dropped first when too large
MAX_LINE_BYTES = 1 << 20  # one audit event; a larger line is refused before it is parsed

# Subresources that name an operation of their own: `k8s.pods.exec`, not `k8s.pods.exec.create`.
ACTION_SUBRESOURCES = frozenset(
    {"exec", "attach", "portforward", "proxy", "log", "eviction", "token", "binding"}
)
_AUTHN_RESOURCES = frozenset({"tokenreviews"})
_AUTHZ_RESOURCES = frozenset(
    {
        "subjectaccessreviews",
        "selfsubjectaccessreviews",
        "localsubjectaccessreviews",
        "selfsubjectrulesreviews",
        "roles",
        "rolebindings",
        "clusterroles",
        "clusterrolebindings",
    }
)
_CONFIG_RESOURCES = frozenset(
    {
        "configmaps",
        "validatingwebhookconfigurations",
        "mutatingwebhookconfigurations",
        "validatingadmissionpolicies",
        "validatingadmissionpolicybindings",
        "mutatingadmissionpolicies",
        "mutatingadmissionpolicybindings",
        "customresourcedefinitions",
        "apiservices",
        "flowschemas",
        "prioritylevelconfigurations",
        "priorityclasses",
        "runtimeclasses",
        "storageclasses",
        "ingressclasses",
    }
)
_ADMIN_SUBRESOURCES = frozenset({"exec", "attach", "portforward", "proxy"})
_READ_VERBS = frozenset({"get", "list", "watch"})
_WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})

UNAUTHENTICATED = "system:unauthenticated"
"""The actor of a request that failed authentication (401, ``"user": {}``). The ``system:``
prefix is reserved by Kubernetes, so no real user has this name; ``system:anonymous`` is
another caller: one that was let in anonymously."""
_ID_NAMESPACE = b"auditkeep:kubernetes:"
_loads = orjson.loads

# The native event is kept at metadata.k8s, one level below the metadata root: decoding with
# this type checks, in the same C pass, that it fits the model's limits as it is.
_Record = bounded_type(DEFAULT_LIMITS.max_depth - 1)
_record_decoder = msgspec.json.Decoder(_Record)
# Room for what the mapping adds beside the record (groups, IPs, wrapper fields).
_SIZE_MARGIN = 8192


def _decode_record(data: bytes | str) -> tuple[Any, bool]:
    """(decoded JSON, whether it already fits the limits). JSONDecodeError if not JSON."""
    if len(data) <= DEFAULT_LIMITS.max_event_bytes - _SIZE_MARGIN:
        try:
            return _record_decoder.decode(data), True
        except msgspec.ValidationError:
            pass
        except msgspec.DecodeError:
            pass  # orjson below gives the error message
    return _loads(data), False


# --------------------------------------------------------------------------- helpers


def k8s_time(text: str) -> str:
    """RFC 3339 from a Kubernetes timestamp. The API server writes every ``MicroTime`` in UTC,
    so a time whose zone was lost on the way is read as UTC; ``ValueError`` if invalid."""
    return utc_rfc3339(text)


def derived_id(*parts: str) -> str:
    """A UUID (version 5 layout) from ``parts``: same input, same id."""
    return _derived(_ID_NAMESPACE, "\x1f".join(parts).encode("utf-8", "replace"))


def actor_type(username: str, groups: Iterable[str] = ()) -> Literal["user", "service", "system"]:
    """``service`` for service accounts and nodes, ``system`` for other ``system:`` and
    provider-internal identities, ``user`` otherwise (including ``system:anonymous``)."""
    if username.startswith(("system:serviceaccount:", "system:node:")):
        return "service"
    if username == "system:anonymous":
        return "user"
    if username.startswith(("system:", "eks:", "aksService", "masterclient")):
        return "system"
    for g in groups:
        if g in ("system:serviceaccounts", "system:nodes"):
            return "service"
    return "user"


def k8s_action(verb: str, resource: str | None, subresource: str | None) -> str:
    """``k8s.<resource>.<verb>``; ``k8s.<resource>.<sub>`` for operation subresources
    (exec, attach, log, ...); ``k8s.<resource>.<sub>.<verb>`` for the others (status,
    scale); ``k8s.nonresource.<verb>`` without a resource."""
    v = action_segment(verb.lower()) if verb else "unknown"
    if not resource:
        return f"k8s.nonresource.{v}"
    r = action_segment(resource)
    if subresource:
        s = action_segment(subresource)
        if subresource in ACTION_SUBRESOURCES:
            return f"k8s.{r}.{s}"
        return f"k8s.{r}.{s}.{v}"
    return f"k8s.{r}.{v}"


def k8s_category(verb: str, resource: str | None, subresource: str | None) -> str | None:
    if not resource:
        return "system"
    if resource in _AUTHN_RESOURCES or (resource == "serviceaccounts" and subresource == "token"):
        return "authentication"
    if resource in _AUTHZ_RESOURCES:
        return "authorization"
    if subresource in _ADMIN_SUBRESOURCES:
        return "admin"
    if resource in _CONFIG_RESOURCES:
        return "configuration"
    if verb in _READ_VERBS:
        return "data_access"
    if verb in _WRITE_VERBS:
        return "data_change"
    return None


def k8s_outcome(code: Any, stage: str | None) -> str:
    if stage == "Panic":
        return "error"
    if type(code) is not int:
        return "unknown"
    if 200 <= code < 300 or code == 101:  # 101: exec/attach/watch upgraded the connection
        return "success"
    if code == 403:
        return "denied"
    return "failure"  # 401 included: the caller failed to authenticate


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
    if not isinstance(obj, dict):
        raise _fail(f"expected a JSON object, got {type(obj).__name__}", obj)
    bad = _check_kind(obj)
    if bad:
        raise _fail(bad, obj)
    user = obj.get("user")
    username = user.get("username") if type(user) is dict else None
    status = obj.get("responseStatus")
    code = status.get("code") if isinstance(status, dict) else None
    if type(username) is not str or not username:
        if code != 401:
            raise _fail("user.username is missing", obj)
        # A failed authentication: the API server records it with `"user": {}` because no
        # one was authenticated. The caller is named explicitly rather than refused.
        username = ""
    if len(username) > 1024:
        raise _fail("user.username is longer than 1024 characters", obj)
    verb = obj.get("verb")
    if type(verb) is not str or not verb:
        raise _fail("verb is missing", obj)
    groups = user.get("groups") if type(user) is dict else None
    if type(groups) is not list:
        groups = []

    ref = obj.get("objectRef")
    resource_name = sub = None
    if type(ref) is dict:
        resource_name = _str(ref.get("resource"))
        sub = _str(ref.get("subresource"))
    else:
        ref = None
    action, category = _classify(verb, resource_name, sub)

    meta: dict[str, Any] = {"k8s": obj}
    if groups:
        meta["groups"] = [g for g in groups if type(g) is str]
    imp = obj.get("impersonatedUser")
    if isinstance(imp, dict):
        meta["impersonated_user"] = imp

    ips = obj.get("sourceIPs")
    ip: str | None = None
    if isinstance(ips, list) and ips:
        meta["source_ips"] = ips
        first = ips[0]
        if isinstance(first, str) and is_ip(first):
            ip = first

    resource: Resource | None
    if ref is not None and resource_name:
        ns = _str(ref.get("namespace"))
        name = _str(ref.get("name"))
        rid = f"{ns}/{name}" if ns and name else name
        resource = Resource(type=resource_name, id=rid, name=name)
        if ns:
            meta["namespace"] = ns
        group = ref.get("apiGroup")
        if isinstance(group, str):
            meta["api_group"] = group
    else:
        uri = _str(obj.get("requestURI"))
        path = uri.split("?", 1)[0] if uri else None
        resource = Resource(type="url", id=path, name=path) if path else None

    stage = _str(obj.get("stage"))
    outcome = k8s_outcome(code, stage)
    if code == 401:
        category = "authentication"
    reason: str | None = None
    if outcome in ("denied", "failure", "error") and isinstance(status, dict):
        reason = _str(status.get("message")) or _str(status.get("reason"))
    if reason is None and outcome == "denied":
        ann = obj.get("annotations")
        if isinstance(ann, dict):
            reason = _str(ann.get("authorization.k8s.io/reason")) or None

    when: str | None = None
    for key in ("stageTimestamp", "requestReceivedTimestamp", "timestamp"):
        t = obj.get(key)
        if isinstance(t, str) and t:
            try:
                when = k8s_time(t)
            except ValueError as exc:
                raise _fail(f"{key}: {exc}", obj) from None
            break

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


# --------------------------------------------------------------------------- wrapped forms


def unwrap_k8s(obj: Any) -> dict[str, Any] | None:
    """The native audit event inside ``obj``, or None when ``obj`` holds none.

    Understands a native event, an AKS diagnostic record (``properties.log`` as JSON text),
    a CloudWatch Logs event (``message`` as JSON text) and a GKE Cloud Audit Log entry
    (``protoPayload`` from ``k8s.io``, rebuilt approximately: see the docs).
    """
    got = _unwrap(obj, False)
    return got[0] if isinstance(got, tuple) else None


_Unwrapped = tuple[dict[str, Any], dict[str, Any] | None, str | None, bool]


def _unwrap(obj: Any, fits: bool) -> _Unwrapped | str:
    """(event, wrapper metadata, cluster, fits the limits) or why there is no event."""
    if not isinstance(obj, dict):
        return f"expected a JSON object, got {type(obj).__name__}"
    if "auditID" in obj or "verb" in obj or "kind" in obj:
        return obj, None, None, fits
    props = obj.get("properties")
    if isinstance(props, dict) and "log" in props:
        inner, inner_fits = _json_text(props.get("log"))
        if not isinstance(inner, dict):
            return "AKS record: properties.log is not a JSON object"
        rest = {k: v for k, v in obj.items() if k != "properties"}
        rest_props = {k: v for k, v in props.items() if k != "log"}
        if rest_props:
            rest["properties"] = rest_props
        cluster = _aks_cluster(obj, props)
        return inner, {"azure": rest}, cluster, fits and inner_fits
    if "category" in obj or "operationName" in obj:
        return f"Azure record of category {obj.get('category')!r} holds no Kubernetes audit event"
    if "message" in obj and isinstance(obj.get("message"), str):
        inner, inner_fits = _json_text(obj["message"])
        if not isinstance(inner, dict):
            return "CloudWatch log event: message is not a JSON object"
        rest = {k: v for k, v in obj.items() if k != "message"}
        return inner, {"aws": rest} if rest else None, None, fits and inner_fits
    payload = obj.get("protoPayload")
    if isinstance(payload, dict):
        return _from_gke(obj, payload, fits)
    if "protoPayload" not in obj and ("operation" in obj or "logName" in obj):
        return "GCP log entry without protoPayload"
    return "not a Kubernetes audit event (no auditID, verb or known wrapper)"


def _aks_cluster(obj: dict[str, Any], props: dict[str, Any]) -> str | None:
    rid = obj.get("resourceId")
    if isinstance(rid, str) and "/managedClusters/" in rid:
        return rid.rsplit("/", 1)[-1].lower() or None
    return None


def _json_text(v: Any) -> tuple[Any, bool]:
    if not isinstance(v, str | bytes):
        return None, False
    try:
        return _decode_record(v)
    except orjson.JSONDecodeError:
        return None, False


_GKE_PLAIN_GROUPS = frozenset({"apps", "batch", "autoscaling", "policy", "extensions"})
_VERSION = re.compile(r"v\d+(?:(?:alpha|beta)\d+)?")
# google.rpc.Code to the HTTP status the API server would have answered.
_RPC_TO_HTTP = {0: 200, 3: 400, 5: 404, 6: 409, 7: 403, 8: 429, 9: 400, 10: 409, 16: 401}


def _from_gke(entry: dict[str, Any], p: dict[str, Any], fits: bool) -> _Unwrapped | str:
    service = p.get("serviceName")
    method = p.get("methodName")
    is_k8s = service == "k8s.io" or (isinstance(method, str) and method.startswith("io.k8s."))
    if not is_k8s:
        return f"GCP audit log for {service or method or 'an unknown service'!r}, not a Kubernetes audit event"
    if not isinstance(method, str):
        return "GKE audit log without protoPayload.methodName"
    ev: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "stage": "ResponseComplete",
    }
    parts = method.split(".")[2:]  # after io.k8s
    vi = next((i for i, t in enumerate(parts) if _VERSION.fullmatch(t)), None)
    if vi is None or len(parts) < vi + 3:
        # io.k8s.readyz, io.k8s.healthz: a non-resource URL
        ev["verb"] = "get"
        ev["requestURI"] = "/" + "/".join(parts)
    else:
        group_parts = parts[:vi]
        if group_parts == ["core"]:
            group = ""
        elif len(group_parts) == 1 and group_parts[0] in _GKE_PLAIN_GROUPS:
            group = group_parts[0]
        else:
            group = ".".join(reversed(group_parts)) + ".k8s.io"
        rest = parts[vi + 1 :]
        ref: dict[str, Any] = {"resource": rest[0], "apiVersion": parts[vi]}
        if len(rest) > 2:
            ref["subresource"] = rest[1]
        if group:
            ref["apiGroup"] = group
        ev["verb"] = rest[-1]
        ns, name = _gke_resource_name(p.get("resourceName"))
        if ns:
            ref["namespace"] = ns
        if name:
            ref["name"] = name
        ev["objectRef"] = ref
        rn = p.get("resourceName")
        if isinstance(rn, str):
            ev["requestURI"] = "/" + rn
    auth = p.get("authenticationInfo")
    if isinstance(auth, dict) and isinstance(auth.get("principalEmail"), str):
        ev["user"] = {"username": auth["principalEmail"]}
    md = p.get("requestMetadata")
    if isinstance(md, dict):
        if isinstance(md.get("callerIP"), str):
            ev["sourceIPs"] = [md["callerIP"]]
        if isinstance(md.get("callerSuppliedUserAgent"), str):
            ev["userAgent"] = md["callerSuppliedUserAgent"]
    code = _gke_code(p.get("status"), p.get("authorizationInfo"))
    if code is not None:
        ev["responseStatus"] = {"code": code}
        status = p.get("status")
        if isinstance(status, dict) and isinstance(status.get("message"), str):
            ev["responseStatus"]["message"] = status["message"]
    for src, dst in (("request", "requestObject"), ("response", "responseObject")):
        if src in p:
            ev[dst] = p[src]
    ts = entry.get("timestamp")
    if isinstance(ts, str):
        ev["stageTimestamp"] = ts
    op = entry.get("operation")
    if isinstance(op, dict) and isinstance(op.get("id"), str):
        ev["auditID"] = op["id"]
    elif isinstance(entry.get("insertId"), str):
        ev["auditID"] = entry["insertId"]
    rest_payload = {k: v for k, v in p.items() if k not in ("request", "response")}
    wrapper = {k: v for k, v in entry.items() if k != "protoPayload"}
    wrapper["protoPayload"] = rest_payload
    res = entry.get("resource")
    cluster = None
    if isinstance(res, dict) and isinstance(res.get("labels"), dict):
        cluster = _str(res["labels"].get("cluster_name"))
    # The rebuilt event only moves parts of the entry up a level, so it fits if the entry did.
    return ev, {"gcp": wrapper}, cluster, fits


def _gke_resource_name(rn: Any) -> tuple[str | None, str | None]:
    if not isinstance(rn, str):
        return None, None
    t = rn.split("/")[2:]  # drop group and version
    ns = None
    if len(t) >= 3 and t[0] == "namespaces":
        ns, t = t[1], t[2:]
    name = t[1] if len(t) >= 2 else None
    return ns, name


def _gke_code(status: Any, authz: Any) -> int | None:
    if isinstance(authz, list) and any(
        isinstance(a, dict) and a.get("granted") is False for a in authz
    ):
        return 403
    if isinstance(status, dict):
        c = status.get("code", 0)
        return _RPC_TO_HTTP.get(c, 500) if isinstance(c, int) else None
    return None


def map_k8s_record(obj: Any, *, cluster: str | None = None) -> Event:
    """A native or wrapped audit event as an :class:`Event`; SourceError if neither."""
    return _map_any(obj, cluster, False)


def _map_any(obj: Any, cluster: str | None, fits: bool) -> Event:
    got = _unwrap(obj, fits)
    if isinstance(got, str):
        raise _fail(got, obj)
    ev, wrapper, found_cluster, ok = got
    return _map(ev, cluster or found_cluster, wrapper, ok)


# --------------------------------------------------------------------------- entry points


def parse_k8s_log_line(line: bytes, *, cluster: str | None = None) -> Event:
    """One line of an audit log file (native or wrapped). Raises :class:`SourceError`."""
    got = _map_bytes(bytes(line), cluster)
    if isinstance(got, SourceError):
        raise got
    return got


def _map_bytes(raw: bytes, cluster: str | None) -> Event | SourceError:
    if len(raw) > MAX_LINE_BYTES:
        return SourceError(SOURCE, f"record is {len(raw)} bytes, more than {MAX_LINE_BYTES}", raw)
    try:
        obj, fits = _decode_record(raw)
    except orjson.JSONDecodeError as exc:
        return SourceError(SOURCE, f"malformed JSON: {exc}", raw)
    repeated = duplicate_key_reason(raw, obj)  # the record is kept in the leaf: one reading only
    if repeated is not None:
        return SourceError(SOURCE, repeated, raw)
    try:
        return _map_any(obj, cluster, fits)
    except SourceError as exc:
        return SourceError(SOURCE, exc.reason, raw)


class _EventList(msgspec.Struct):
    kind: Any = None
    apiVersion: Any = None
    items: list[msgspec.Raw] | None = None


_list_decoder = msgspec.json.Decoder(_EventList)


def parse_k8s_payload(
    body: bytes, *, cluster: str | None = None
) -> tuple[list[Event], list[SourceError]]:
    """What the API server's webhook backend POSTs: an ``EventList`` (or one ``Event``).

    Also accepts a CloudWatch Logs subscription message (``logEvents``). Each item that
    cannot be mapped becomes a :class:`SourceError` holding that item's JSON.
    """
    body = bytes(body)
    try:
        doc = _list_decoder.decode(body)
    except msgspec.ValidationError:  # (a DecodeError too, so first)
        doc = None  # not an object, or items not an array: explained below
    except msgspec.DecodeError as exc:
        return [], [SourceError(SOURCE, f"malformed JSON: {exc}", body)]
    if doc is not None and doc.kind == "EventList":
        if doc.apiVersion not in API_VERSIONS:
            reason = f"apiVersion {doc.apiVersion!r} is not audit.k8s.io/v1"
            return [], [SourceError(SOURCE, reason, body)]
        events: list[Event] = []
        errors: list[SourceError] = []
        for raw in doc.items or ():
            got = _map_bytes(bytes(raw), cluster)
            if isinstance(got, SourceError):
                errors.append(got)
            else:
                events.append(got)
        return events, errors
    if doc is not None and doc.kind == "Event":
        got = _map_bytes(body, cluster)
        return ([], [got]) if isinstance(got, SourceError) else ([got], [])
    try:
        whole = _loads(body)
    except orjson.JSONDecodeError as exc:
        return [], [SourceError(SOURCE, f"malformed JSON: {exc}", body)]
    if not isinstance(whole, dict):
        reason = f"expected an EventList object, got {type(whole).__name__}"
        return [], [SourceError(SOURCE, reason, body)]
    if whole.get("kind") == "EventList":
        return [], [SourceError(SOURCE, "EventList.items is not an array", body)]
    if isinstance(whole.get("logEvents"), list):
        if cluster is None and isinstance(whole.get("logGroup"), str):
            cluster = _eks_cluster(whole["logGroup"])
        events, errors = [], []
        for item in whole["logEvents"]:
            try:
                events.append(_map_any(item, cluster, False))
            except SourceError as exc:
                errors.append(exc)
        return events, errors
    reason = f"kind {whole.get('kind')!r} is neither EventList nor Event"
    return [], [SourceError(SOURCE, reason, body)]


def _eks_cluster(log_group: str) -> str | None:
    # EKS control-plane logs go to /aws/eks/<cluster>/cluster
    parts = log_group.strip("/").split("/")
    if len(parts) >= 3 and parts[0] == "aws" and parts[1] == "eks":
        return parts[2] or None
    return None


# --------------------------------------------------------------------------- stages


class StageMerger:
    """Folds the stages of one request (one ``auditID``) into one audit fact.

    ``mode="final"`` keeps only ResponseComplete or Panic; an earlier stage is held until
    its final stage arrives and is released on its own (marked ``final_stage_missing``)
    when none comes within ``timeout`` seconds (long watches, a lost event). ``mode="all"``
    passes every stage through. Events without an auditID or a stage always pass through.
    """

    def __init__(
        self,
        mode: Literal["final", "all"] = "final",
        timeout: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_pending: int = 100_000,
        remember: int = 100_000,
    ) -> None:
        if mode not in ("final", "all"):
            raise ValueError("mode must be 'final' or 'all'")
        self.mode = mode
        self.timeout = timeout
        self.clock = clock
        self.max_pending = max_pending
        self.remember = remember
        self._pending: OrderedDict[str, tuple[float, Event]] = OrderedDict()
        self._done: OrderedDict[str, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, events: Iterable[Event]) -> list[Event]:
        """Feed mapped events; return those ready to keep (plus any that timed out)."""
        if self.mode == "all":
            return list(events)
        now = self.clock()
        out: list[Event] = []
        for ev in events:
            key = _merge_key(ev)
            stage = _stage(ev)
            if key is None or stage is None:
                out.append(ev)  # nothing to merge it with
                continue
            if stage in FINAL_STAGES or _failed_authentication(ev):
                self._pending.pop(key, None)
                self._done[key] = None
                if len(self._done) > self.remember:
                    self._done.popitem(last=False)
                out.append(ev)
            elif key in self._done:
                continue  # an earlier stage arriving after its final one adds nothing
            else:
                self._pending.pop(key, None)  # a later stage replaces the earlier one
                self._pending[key] = (now + self.timeout, ev)
                if len(self._pending) > self.max_pending:
                    _, (_, oldest) = self._pending.popitem(last=False)
                    out.append(_incomplete(oldest))
        out.extend(self.expire(now))
        return out

    def expire(self, now: float | None = None) -> list[Event]:
        """Release the held events whose final stage did not come in time."""
        if now is None:
            now = self.clock()
        out: list[Event] = []
        while self._pending:
            key, (deadline, ev) = next(iter(self._pending.items()))
            if deadline > now:
                break
            del self._pending[key]
            out.append(_incomplete(ev))
        return out

    def pending(self) -> dict[str, Event]:
        """The held events by merge key (the caller keeps them durable: see sources.service)."""
        return {key: ev for key, (_, ev) in self._pending.items()}

    def hold(self, key: str, ev: Event) -> None:
        """Hold ``ev`` again (after a restart), with a fresh timeout."""
        self._pending[key] = (self.clock() + self.timeout, ev)

    def drain(self) -> list[Event]:
        """Release everything held (at shutdown)."""
        out = [_incomplete(ev) for _, ev in self._pending.values()]
        self._pending.clear()
        return out


def _merge_key(ev: Event) -> str | None:
    if ev.source is None or not ev.source.request_id:
        return None
    return f"{ev.source.host or ''}\x1f{ev.source.request_id}"


def _stage(ev: Event) -> str | None:
    k8s = ev.metadata.get("k8s") if ev.metadata else None
    return k8s.get("stage") if isinstance(k8s, dict) else None


def _failed_authentication(ev: Event) -> bool:
    """A 401 is recorded at ResponseStarted and never gets a ResponseComplete: the request
    stopped at authentication, before the handler that writes the later stages."""
    k8s = ev.metadata.get("k8s") if ev.metadata else None
    status = k8s.get("responseStatus") if isinstance(k8s, dict) else None
    return isinstance(status, dict) and status.get("code") == 401


def _incomplete(ev: Event) -> Event:
    if ev.metadata is not None:
        ev.metadata["final_stage_missing"] = True
    return ev
