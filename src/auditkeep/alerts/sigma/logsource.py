"""Sigma log sources mapped onto auditkeep events.

Each source mapper keeps the original record under ``metadata``; a Sigma rule for that log
source reads its fields there, by their native names:

=================================  ===================================  ====================
logsource                          subject the detection runs on         notes
=================================  ===================================  ====================
kubernetes / audit                 ``metadata.k8s`` (audit.k8s.io Event)  aliases below
aws / cloudtrail                   ``metadata.cloudtrail`` (one record)
gcp / gcp.audit                    ``metadata.gcp`` (a Cloud Logging      ``gcp.audit.*`` and
                                   LogEntry of an audit log)              ``data.*`` names
linux / auditd                     each of ``metadata.auditd.records``    one record must
                                                                          satisfy it all
auditkeep (any service)            the event itself                       ``actor.id`` …
=================================  ===================================  ====================

Any other log source is refused: no source produces those events, and a rule that can
never fire must not look loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from auditkeep.alerts.errors import RuleError
from auditkeep.alerts.fields import MISSING, Getter, compile_path
from auditkeep.alerts.sigma.syscalls import syscall_name

Subjects = Callable[[dict[str, Any]], list[Any]]


@dataclass
class Mapping:
    kind: str
    label: str
    subjects: Subjects
    aliases: dict[str, str] = field(default_factory=dict)
    virtual: dict[str, Getter] = field(default_factory=dict)
    prefix_strip: tuple[str, ...] = ()
    #: fields preferred as the index key, most selective first
    priority: tuple[str, ...] = ()
    #: whether the engine may skip events without ``metadata.<kind>``
    scoped: bool = True

    def getter(self, name: str) -> Getter:
        if name in self.virtual:
            return self.virtual[name]
        path = self.aliases.get(name)
        if path is None:
            path = name
            for prefix in self.prefix_strip:
                if name.startswith(prefix):
                    path = name[len(prefix):]
                    break
        return compile_path(path)


def _under(key: str) -> Subjects:
    def subjects(event: dict[str, Any]) -> list[Any]:
        meta = event.get("metadata")
        if isinstance(meta, dict):
            sub = meta.get(key)
            if isinstance(sub, dict):
                return [sub]
        return []

    return subjects


def _auditd_records(event: dict[str, Any]) -> list[Any]:
    meta = event.get("metadata")
    if isinstance(meta, dict):
        au = meta.get("auditd")
        if isinstance(au, dict):
            recs = au.get("records")
            if isinstance(recs, list):
                return [r for r in recs if isinstance(r, dict)]
    return []


def _syscall(record: Any) -> Any:
    # an enriched log (log_format=ENRICHED) carries the name itself
    if isinstance(record, dict):
        name = record.get("SYSCALL")
        if name is not None:
            return name
        num = record.get("syscall")
        if num is not None:
            resolved = syscall_name(record.get("arch"), num)
            if resolved is not None:
                return resolved
    return MISSING


KUBERNETES = Mapping(
    kind="k8s",
    label="Kubernetes audit",
    subjects=_under("k8s"),
    aliases={
        # names some Sigma rules use for parts of the audit event
        "apiGroup": "objectRef.apiGroup",
        "hostPath": "requestObject.spec.volumes.hostPath",
        "capabilities": "requestObject.spec.containers.securityContext.capabilities",
    },
    priority=("objectRef.resource", "verb", "objectRef.subresource"),
)
CLOUDTRAIL = Mapping(
    kind="cloudtrail",
    label="AWS CloudTrail",
    subjects=_under("cloudtrail"),
    priority=("eventName", "eventSource", "eventType"),
)
GCP = Mapping(
    kind="gcp",
    label="GCP audit log",
    subjects=_under("gcp"),
    aliases={
        # the Elastic Common Schema names used by Sigma's GCP rules
        "gcp.audit.method_name": "protoPayload.methodName",
        "gcp.audit.service_name": "protoPayload.serviceName",
        "gcp.audit.resource_name": "protoPayload.resourceName",
        "gcp.audit.authentication_info.principal_email": "protoPayload.authenticationInfo.principalEmail",
        "gcp.audit.status.code": "protoPayload.status.code",
    },
    # other GCP rules prefix the LogEntry with "data."
    prefix_strip=("data.",),
    priority=("gcp.audit.method_name", "data.protoPayload.methodName"),
)
AUDITD = Mapping(
    kind="auditd",
    label="Linux auditd",
    subjects=_auditd_records,
    virtual={"SYSCALL": _syscall},
    priority=("type",),
)
AUDITKEEP = Mapping(
    kind="event",
    label="auditkeep",
    subjects=lambda event: [event],
    priority=("action",),
    scoped=False,
)

_BY_PAIR: dict[tuple[str, str], Mapping] = {
    ("kubernetes", "audit"): KUBERNETES,
    ("aws", "cloudtrail"): CLOUDTRAIL,
    ("gcp", "gcp.audit"): GCP,
    ("linux", "auditd"): AUDITD,
}


def resolve_logsource(logsource: Any) -> Mapping:
    """The mapping for a rule's ``logsource``; ``RuleError`` when none applies."""
    if not isinstance(logsource, dict):
        raise RuleError("'logsource' must be a mapping")
    product = logsource.get("product")
    service = logsource.get("service")
    category = logsource.get("category")
    if product == "auditkeep":
        return AUDITKEEP
    mapping = _BY_PAIR.get((str(product), str(service)))
    if mapping is None or category not in (None, "application"):
        shown = ", ".join(f"{k}={logsource[k]}" for k in ("category", "product", "service") if k in logsource)
        supported = "; ".join(f"product={p}, service={s}" for p, s in _BY_PAIR) + "; product=auditkeep"
        raise RuleError(
            f"unsupported logsource ({shown or 'empty'}): no auditkeep source produces these "
            f"events (supported: {supported})"
        )
    return mapping
