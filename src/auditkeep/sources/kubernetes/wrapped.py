"""Managed clusters' wrappers of the native event: EKS (CloudWatch Logs), AKS (a diagnostic
record's ``properties.log``) and GKE (a Cloud Audit Log entry), unwrapped to the native shape."""

from __future__ import annotations

import re
from typing import Any

import orjson

from auditkeep.model import Event
from auditkeep.sources.kubernetes.mapping import _fail, _map, _str
from auditkeep.sources.kubernetes.vocabulary import _decode_record

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
