"""The legal-hold operations of the OpenAPI document, as plain data that
:mod:`auditkeep.server.openapi` turns into its ``Op`` and ``Param`` records."""

from __future__ import annotations

from typing import Any

import msgspec

from auditkeep.server.openapi_alerts import _AUTH, _TENANT, _json, _param
from auditkeep.server.routes.holds import HoldList, HoldRelease, HoldRequest
from auditkeep.server.routes.subjects import EraseRequest, ErasureResult

HOLD_OPERATIONS: list[dict[str, Any]] = [
    {"method": "get", "path": "/v1/holds", "summary": "List legal holds",
     "description": "The tenant's active holds (`status=all`: released ones too), newest first.",
     "auth": "admin",
     "params": [_TENANT, _param("status", "query", "active (default) or all.", {"type": "string", "enum": ["active", "all"]}),
                _param("limit", "query", "At most this many (1-10000).", {"type": "integer", "minimum": 1, "maximum": 10000})],
     "ok_content": _json("HoldList"), "errors": (422, *_AUTH, 503),
     "example": "curl -H 'Authorization: Bearer $ADMIN' http://127.0.0.1:8700/v1/holds"},
    {"method": "post", "path": "/v1/holds", "summary": "Place a legal hold",
     "description": "Events of the tenant matching every given field (actor id, resource type and id, event time "
                    "from `since` to before `until`) are never expired or erased until the hold is released. "
                    "Recorded as `auditkeep.hold.added` before the answer.",
     "auth": "admin", "params": [_TENANT], "body": {"required": True, "content": _json("HoldRequest")},
     "ok": 201, "ok_content": _json("Hold"), "errors": (400, 408, 413, 422, *_AUTH, 503),
     "example": "curl -X POST -H 'Authorization: Bearer $ADMIN' -d '{\"actor\": \"u-1842\", \"reason\": \"case 42\"}' "
                "http://127.0.0.1:8700/v1/holds"},
    {"method": "post", "path": "/v1/holds/{hold_id}/release", "summary": "Release a legal hold",
     "description": "Recorded as `auditkeep.hold.released`; 404 when the hold is unknown or already released.",
     "auth": "admin", "params": [_param("hold_id", "path", "Hold id.", required=True), _TENANT],
     "body": {"required": True, "content": _json("HoldRelease")}, "ok_content": _json("Hold"),
     "errors": (400, 404, 408, 413, 422, *_AUTH, 503)},
    {"method": "post", "path": "/v1/subjects/{subject_id}/erase", "summary": "Erase a data subject",
     "description": "Crypto-shredding: destroys the subject's salt and the plaintext of its personal fields in "
                    "the tenant's log (the leaves and every proof stay valid; readers see `[erased]`). Recorded as "
                    "`auditkeep.subject.erased` (erasure id, counts, ranges, reason; not the subject). 409 when "
                    "active legal holds cover the subject's events (nothing is erased); 404 when the subject has "
                    "no personal data (unknown, or erased already).",
     "auth": "admin", "params": [_param("subject_id", "path", "The subject (value of subject_field).", required=True), _TENANT],
     "body": {"required": True, "content": _json("EraseRequest")}, "ok_content": _json("ErasureResult"),
     "errors": (400, 404, 408, 409, 413, 422, *_AUTH, 503)},
]


def hold_schemas() -> dict[str, Any]:
    _, schemas = msgspec.json.schema_components(
        [HoldList, HoldRequest, HoldRelease, EraseRequest, ErasureResult], ref_template="#/components/schemas/{name}"
    )
    return schemas
