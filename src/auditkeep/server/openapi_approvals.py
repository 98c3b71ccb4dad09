"""The approval operations of the OpenAPI document, as plain data that
:mod:`auditkeep.server.openapi` turns into its ``Op`` and ``Param`` records."""

from __future__ import annotations

from typing import Any

import msgspec

from auditkeep.server.openapi_alerts import _AUTH, _TENANT, _json, _param
from auditkeep.server.routes.approvals import ApprovalChange, ApprovalList, ApprovalRequest

_ID = _param("approval_id", "path", "Approval request id (32 hex digits).", required=True)
_CHANGE = {"required": False, "content": _json("ApprovalChange")}
_STATES = ["pending", "approved", "rejected", "expired"]

APPROVAL_OPERATIONS: list[dict[str, Any]] = [
    {"method": "get", "path": "/v1/approvals", "summary": "List approval requests",
     "description": "Statements and tool calls a gateway holds for review, newest first; `next_cursor` "
                    "continues a page. A pending request past its expiry is listed (and recorded) as expired.",
     "auth": "admin",
     "params": [_TENANT, _param("status", "query", "pending, approved, rejected or expired.", {"type": "string", "enum": _STATES}),
                _param("limit", "query", "Page size, 1-1000 (default 100).", {"type": "integer", "minimum": 1, "maximum": 1000}),
                _param("cursor", "query", "`next_cursor` of the previous page.")],
     "ok_content": _json("ApprovalList"), "errors": (422, *_AUTH, 503),
     "example": "curl -H 'Authorization: Bearer $ADMIN' 'http://127.0.0.1:8700/v1/approvals?status=pending'"},
    {"method": "post", "path": "/v1/approvals", "summary": "File an approval request",
     "description": "What a gateway running against this server sends when a guardrail asks for review. The "
                    "request is appended to the tenant's log as `auditkeep.approval.requested` before the answer.",
     "auth": "ingest", "params": [_TENANT], "body": {"required": True, "content": _json("ApprovalRequest")},
     "ok": 201, "ok_content": _json("Approval"), "errors": (400, 408, 413, 422, *_AUTH, 503)},
    {"method": "get", "path": "/v1/approvals/{approval_id}", "summary": "Show an approval request",
     "description": "The request and its state. `wait=N` (up to 60) holds the answer until it is decided or N "
                    "seconds pass. An ingest key sees only the requests it filed.",
     "auth": "admin or ingest",
     "params": [_ID, _TENANT, _param("wait", "query", "Seconds to wait for a decision (0-60).", {"type": "integer", "minimum": 0, "maximum": 60})],
     "ok_content": _json("Approval"), "errors": (404, 422, *_AUTH, 503)},
    {"method": "post", "path": "/v1/approvals/{approval_id}/approve", "summary": "Approve a request",
     "description": "pending → approved, recorded with the key (its name, else its id) and an optional note, and "
                    "appended as `auditkeep.approval.approved`. 403 when the key filed the request or is named "
                    "like its requester (no self-approval); 409 when it is no longer pending.",
     "auth": "admin", "params": [_ID, _TENANT], "body": _CHANGE, "ok_content": _json("Approval"),
     "errors": (400, 404, 408, 409, 413, 422, *_AUTH, 503),
     "example": "curl -X POST -H 'Authorization: Bearer $ADMIN' -d '{\"note\": \"ticket OPS-12\"}' "
                "http://127.0.0.1:8700/v1/approvals/$ID/approve"},
    {"method": "post", "path": "/v1/approvals/{approval_id}/reject", "summary": "Reject a request",
     "description": "pending → rejected, appended as `auditkeep.approval.rejected`; the gateway refuses the held "
                    "statement. Same rules as approve.",
     "auth": "admin", "params": [_ID, _TENANT], "body": _CHANGE, "ok_content": _json("Approval"),
     "errors": (400, 404, 408, 409, 413, 422, *_AUTH, 503)},
]


def approval_schemas() -> dict[str, Any]:
    _, schemas = msgspec.json.schema_components(
        [ApprovalList, ApprovalChange, ApprovalRequest], ref_template="#/components/schemas/{name}"
    )
    return schemas
