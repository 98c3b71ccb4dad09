"""The vocabulary of the Kubernetes mapping: its constants, the bounded record decoder, and
how a verb, a resource and a response become an action, a category, an outcome and an
actor type."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import msgspec
import orjson

from auditkeep.model import DEFAULT_LIMITS
from auditkeep.policy.limits import bounded_type
from auditkeep.sources.common import action_segment, utc_rfc3339
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
