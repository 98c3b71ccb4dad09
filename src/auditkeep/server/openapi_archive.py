"""The WORM archive operations of the OpenAPI document (``/v1/archive``), as plain data that
:mod:`auditkeep.server.openapi` turns into its ``Op`` and ``Param`` records."""

from __future__ import annotations

from typing import Any

from auditkeep.server.openapi_alerts import _AUTH, _TENANT, _json, _param
from auditkeep.server.routes.archive import MAX_PAGE, RUN_BUDGET

ARCHIVE_OPERATIONS: list[dict[str, Any]] = [
    {"method": "get", "path": "/v1/archive/segments", "summary": "List archive segments",
     "description": "The tenant's segments on the configured archive target, in index order, a page at a time "
                    "(`next_after` continues; null on the last page). Only the page's manifests are read. "
                    "Recorded as `auditkeep.archive.list`. 404 when no archive is configured.",
     "auth": "read",
     "params": [_TENANT,
                _param("after", "query", "Start past the segment whose first index is this (next_after of the previous page).",
                       {"type": "integer", "minimum": 0}),
                _param("limit", "query", f"At most this many (1-{MAX_PAGE}, default 100).",
                       {"type": "integer", "minimum": 1, "maximum": MAX_PAGE})],
     "ok_content": _json("ArchiveSegmentList"), "errors": (404, 422, *_AUTH, 503),
     "example": "curl -H 'Authorization: Bearer $KEY' 'http://127.0.0.1:8700/v1/archive/segments?limit=50'"},
    {"method": "get", "path": "/v1/archive/segments/{segment_id}", "summary": "Read a segment's manifest",
     "description": "The manifest as stored (docs/archive.md has its fields): the range, the covering signed "
                    "checkpoint, the leaf hashes and range proof, the signed segment note and the data object's "
                    "name. `auditkeep archive verify` checks it offline with the data object and the verifier key. "
                    "Recorded as `auditkeep.archive.read`.",
     "auth": "read",
     "params": [_param("segment_id", "path", "FIRST-END, as the list gives it (`id`).", required=True), _TENANT],
     "ok_content": {"application/json": {"schema": {"type": "object"}}}, "errors": (404, 422, *_AUTH, 503)},
    {"method": "post", "path": "/v1/archive/runs", "summary": "Run the archiver for the tenant",
     "description": "Archives the tenant's ready entries (those whose retention policy's archive_after has "
                    "passed, or with `older_than` every entry that old) under the store's archive lease, for "
                    f"at most {RUN_BUDGET:.0f} s; `more` says the run was cut short and another request continues "
                    "from the stored cursor. 409 when another archiver holds the lease (`lease`: held) or "
                    "nothing could be archived (no policy has archive_after and no older_than). Segments written "
                    "are recorded as `auditkeep.archive.written`, the request as `auditkeep.archive.run`.",
     "auth": "admin", "params": [_TENANT], "body": {"required": False, "content": _json("ArchiveRunRequest")},
     "ok_content": _json("ArchiveRun"), "errors": (400, 404, 408, 409, 413, 422, *_AUTH, 503),
     "example": "curl -X POST -H 'Authorization: Bearer $ADMIN' -d '{\"older_than\": \"90d\"}' "
                "http://127.0.0.1:8700/v1/archive/runs"},
]

_INT = {"type": "integer", "minimum": 0}


def archive_schemas() -> dict[str, Any]:
    segment = {
        "type": "object",
        "properties": {
            "id": {"type": "string"}, "first": _INT, "end": _INT, "tree_size": _INT, "expired": _INT,
            "bytes": {"type": ["integer", "null"]}, "created_at": {"type": ["string", "null"]},
            "sealed": {"type": "boolean", "description": "payloads sealed under the tenant's data key"},
            "complete": {"type": "boolean", "description": "the data object is there too"},
            "lock": {"type": ["string", "null"], "description": "Object Lock, e.g. COMPLIANCE until ..."},
            "error": {"type": "string"},
        },
        "required": ["id", "first", "end"],
    }
    return {
        "ArchiveSegment": segment,
        "ArchiveSegmentList": {
            "type": "object",
            "properties": {"segments": {"type": "array", "items": {"$ref": "#/components/schemas/ArchiveSegment"}},
                           "next_after": {"type": ["integer", "null"]}},
            "required": ["segments", "next_after"],
        },
        "ArchiveRunRequest": {
            "type": "object", "additionalProperties": False,
            "properties": {"older_than": {"type": "string", "maxLength": 32, "description": "a duration: 90d, 12h"}},
        },
        "ArchiveRun": {
            "type": "object",
            "properties": {
                "tenant": {"type": "string"}, "target": {"type": "string"}, "size": _INT,
                "archived_before": _INT, "archived_to": _INT, "entries": _INT,
                "segments": {"type": "array", "items": {"type": "array", "items": _INT}},
                "adopted": _INT, "bytes": _INT, "more": {"type": "boolean"},
            },
            "required": ["tenant", "archived_before", "archived_to", "segments", "more"],
        },
    }
