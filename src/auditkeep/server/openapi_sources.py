"""The source operations of the OpenAPI document (Kubernetes webhook, OTLP/HTTP logs,
collector batches, quarantine), as plain data that :mod:`auditkeep.server.openapi` turns
into its ``Op`` and ``Param`` records."""

from __future__ import annotations

from typing import Any

import msgspec

from auditkeep.server.routes.sources import QuarantineList, SourceResult
from auditkeep.sources.service import CollectedBatch

_AUTH = (400, 401, 403, 429)  # 400: a key for all tenants without `tenant`


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(name)}}


def _param(name: str, where: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "where": where, "description": description, "schema": schema or {"type": "string"}}


_TENANT = _param("tenant", "query", "Tenant to act on (keys for all tenants; a tenant's key may name only its own).")
_BINARY = {"type": "string", "format": "binary"}
_OTLP_OK = {
    "application/x-protobuf": {"schema": _BINARY},
    "application/json": {"schema": _ref("OtlpExportResponse")},
}
_OTLP_400 = {
    "application/x-protobuf": {"schema": _BINARY},
    "application/json": {"schema": {"anyOf": [_ref("Error"), _ref("OtlpStatus")]}},
}

SOURCE_OPERATIONS: list[dict[str, Any]] = [
    {"method": "post", "path": "/v1/sources/kubernetes", "summary": "Kubernetes audit webhook",
     "description": "What kube-apiserver's audit webhook backend sends: an `audit.k8s.io/v1` `EventList` "
                    "(or one `Event`; a CloudWatch Logs subscription message is read too). Authenticated by "
                    "an ingest key (the webhook kubeconfig's `user.token`) or, without one, over mutual TLS by "
                    "the client certificate mapped to a tenant in `client_cert_tenants`. Events the stage "
                    "merger holds for their final stage are counted in `held`. An item that cannot be read is "
                    "kept in quarantine and named in `quarantined`; a body that cannot be read at all is "
                    "quarantined and answered 400.",
     "auth": "ingest (or a mapped client certificate)",
     "params": [_TENANT, _param("cluster", "query", "The cluster's name: source.host of its events, part of their ids.",
                                {"type": "string", "maxLength": 253})],
     "body": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
     "ok_content": _json("SourceResult"), "errors": (400, *_AUTH, 408, 413, 415, 422, 503),
     "example": "curl -H 'Authorization: Bearer $KEY' -H 'Content-Type: application/json' "
                "--data @eventlist.json 'http://127.0.0.1:8700/v1/sources/kubernetes?cluster=prod'"},
    {"method": "post", "path": "/v1/logs", "summary": "OTLP/HTTP logs",
     "description": "An OpenTelemetry `ExportLogsServiceRequest`, protobuf (`application/x-protobuf`) or JSON "
                    "(`application/json`), optionally gzip-compressed: the Collector's `otlphttp` exporter "
                    "with `logs_endpoint` pointing here. Answers in the request's encoding: an empty "
                    "response, or `partialSuccess` with the number of log records kept in quarantine and why; "
                    "400 with a `google.rpc.Status` when the request cannot be read (it is quarantined).",
     "auth": "ingest", "params": [_TENANT],
     "body": {"required": True, "content": {"application/x-protobuf": {"schema": _BINARY},
                                            "application/json": {"schema": {"type": "object"}}}},
     "ok_content": _OTLP_OK, "error_content": {400: _OTLP_400},
     "errors": (400, *_AUTH, 408, 413, 415, 422, 503)},
    {"method": "post", "path": "/v1/sources/auditd", "summary": "Collector batch (auditd)",
     "description": "What `auditkeep collect auditd` sends: events mapped on the host, the records it could not "
                    "read (base64, for the quarantine) and the count of records the kernel lost (a "
                    "`source.dropped` event whose id derives from `batch`, so a resent batch stores once).",
     "auth": "ingest", "params": [_TENANT],
     "body": {"required": True, "content": _json("CollectedBatch")},
     "ok_content": _json("SourceResult"), "errors": (400, *_AUTH, 408, 413, 415, 422, 503)},
    {"method": "get", "path": "/v1/quarantine", "summary": "Quarantined records",
     "description": "Records of the tenant that a source could not read or the ledger refused, newest first, "
                    "without their bytes (`auditkeep quarantine show ID` prints those).",
     "auth": "admin", "params": [_TENANT,
                                 _param("source", "query", "Only this source (kubernetes, otlp, auditd, syslog, cloudtrail)."),
                                 _param("limit", "query", "At most this many, 1-1000 (default 100).",
                                        {"type": "integer", "minimum": 1, "maximum": 1000})],
     "ok_content": _json("QuarantineList"), "errors": (422, *_AUTH, 503)},
]


def source_schemas() -> dict[str, Any]:
    _, schemas = msgspec.json.schema_components(
        [SourceResult, QuarantineList, CollectedBatch], ref_template="#/components/schemas/{name}"
    )
    schemas["OtlpExportResponse"] = {
        "type": "object",
        "properties": {"partialSuccess": {"type": "object", "properties": {
            "rejectedLogRecords": {"type": "string"}, "errorMessage": {"type": "string"}}}},
    }
    schemas["OtlpStatus"] = {
        "type": "object",
        "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
        "required": ["code", "message"],
    }
    return schemas
