"""Kubernetes API server audit events (``audit.k8s.io/v1``) mapped to :class:`Event`.

Three ways in: the webhook backend's POST body (:func:`parse_k8s_payload`), one line of an
audit log file (:func:`parse_k8s_log_line`), or a decoded object (:func:`map_k8s_event`,
:func:`map_k8s_record`). Managed clusters wrap the same event: EKS through CloudWatch Logs,
AKS in ``properties.log`` of a diagnostic record, GKE as a Cloud Audit Log entry;
:func:`unwrap_k8s` turns each into the native shape. The mapping rules are documented in
``docs/sources/kubernetes.md``.

The package by job: ``vocabulary`` (constants and classification), ``mapping`` (the native
event), ``wrapped`` (EKS, AKS, GKE), ``payload`` (log lines and webhook bodies) and
``stages`` (merging the stages of one request).
"""

from auditkeep.sources.kubernetes.mapping import map_k8s_event
from auditkeep.sources.kubernetes.payload import parse_k8s_log_line, parse_k8s_payload
from auditkeep.sources.kubernetes.stages import StageMerger
from auditkeep.sources.kubernetes.vocabulary import (
    ACTION_SUBRESOURCES,
    API_VERSIONS,
    BODY_PATHS,
    FINAL_STAGES,
    MAX_LINE_BYTES,
    SOURCE,
    UNAUTHENTICATED,
    actor_type,
    derived_id,
    k8s_action,
    k8s_category,
    k8s_outcome,
    k8s_time,
)
from auditkeep.sources.kubernetes.wrapped import map_k8s_record, unwrap_k8s

__all__ = [
    "ACTION_SUBRESOURCES",
    "API_VERSIONS",
    "BODY_PATHS",
    "FINAL_STAGES",
    "MAX_LINE_BYTES",
    "SOURCE",
    "UNAUTHENTICATED",
    "StageMerger",
    "actor_type",
    "derived_id",
    "k8s_action",
    "k8s_category",
    "k8s_outcome",
    "k8s_time",
    "map_k8s_event",
    "map_k8s_record",
    "parse_k8s_log_line",
    "parse_k8s_payload",
    "unwrap_k8s",
]
