"""The alert and rule operations of the OpenAPI document, as plain data that
:mod:`auditkeep.server.openapi` turns into its ``Op`` and ``Param`` records. Response
schemas come from the msgspec types the handlers encode."""

from __future__ import annotations

from typing import Any

import msgspec

from auditkeep.server.routes.alerts import (
    AlertChange,
    AlertDetail,
    AlertList,
    DeadLetterList,
    Requeued,
    RuleList,
    RuleSetResult,
    RulesRemoved,
)

_AUTH = (400, 401, 403, 429)  # 400: a key for all tenants without `tenant`


def _json(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}


def _param(name: str, where: str, description: str, schema: dict[str, Any] | None = None, required: bool = False) -> dict[str, Any]:
    return {"name": name, "where": where, "description": description, "schema": schema or {"type": "string"}, "required": required}


_TENANT = _param("tenant", "query", "Tenant to act on (keys for all tenants; a tenant's key may name only its own).")
_ALERT = _param("alert_id", "path", "Alert id (32 hex digits).", required=True)
_CHANGE_BODY = {"required": False, "content": _json("AlertChange")}
_RULE_BODY = {
    "required": True,
    "content": {
        "application/yaml": {"schema": {"type": "string"}},
        "application/json": {"schema": {"oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]}},
    },
}

ALERT_OPERATIONS: list[dict[str, Any]] = [
    {"method": "get", "path": "/v1/alerts", "summary": "List alerts",
     "description": "Alerts of the tenant, newest first. `next_cursor` continues a page.", "auth": "read",
     "params": [_TENANT,
                _param("status", "query", "open, acknowledged or resolved.", {"type": "string", "enum": ["open", "acknowledged", "resolved"]}),
                _param("rule", "query", "Only alerts of this rule id."),
                _param("limit", "query", "Page size, 1-1000 (default 100).", {"type": "integer", "minimum": 1, "maximum": 1000}),
                _param("cursor", "query", "`next_cursor` of the previous page.")],
     "ok_content": _json("AlertList"), "errors": (422, *_AUTH, 503),
     "example": "curl -H 'Authorization: Bearer $KEY' 'http://127.0.0.1:8700/v1/alerts?status=open'"},
    {"method": "get", "path": "/v1/alerts/{alert_id}", "summary": "Show an alert",
     "description": "The alert, its history (who changed its state, when, with what note) and its deliveries.",
     "auth": "read", "params": [_ALERT, _TENANT], "ok_content": _json("AlertDetail"), "errors": (404, 422, *_AUTH, 503)},
    {"method": "post", "path": "/v1/alerts/{alert_id}/ack", "summary": "Acknowledge an alert",
     "description": "open → acknowledged, recorded with the key id, the time and an optional note, and appended "
                    "to the tenant's log as `auditkeep.alert.acknowledged`. 409 when the alert is not open.",
     "auth": "admin", "params": [_ALERT, _TENANT], "body": _CHANGE_BODY, "ok_content": _json("AlertRecord"),
     "errors": (400, 404, 408, 409, 413, 422, *_AUTH, 503)},
    {"method": "post", "path": "/v1/alerts/{alert_id}/resolve", "summary": "Resolve an alert",
     "description": "open or acknowledged → resolved, recorded and appended as `auditkeep.alert.resolved`. "
                    "409 when it is resolved already.",
     "auth": "admin", "params": [_ALERT, _TENANT], "body": _CHANGE_BODY, "ok_content": _json("AlertRecord"),
     "errors": (400, 404, 408, 409, 413, 422, *_AUTH, 503)},
    {"method": "get", "path": "/v1/alerts/dead-letters", "summary": "List dead letters",
     "description": "Deliveries that failed after every retry (or could not be queued).", "auth": "admin",
     "params": [_TENANT, _param("limit", "query", "At most this many.", {"type": "integer", "minimum": 1, "maximum": 10000})],
     "ok_content": _json("DeadLetterList"), "errors": (422, *_AUTH, 503)},
    {"method": "post", "path": "/v1/alerts/dead-letters/{letter_id}/resend", "summary": "Re-send a dead letter",
     "description": "Queues the delivery again; the alert runner sends it and records the result.", "auth": "admin",
     "params": [_param("letter_id", "path", "Dead letter id (`<alert id>:<notifier>`).", required=True), _TENANT],
     "ok": 202, "ok_content": _json("Requeued"), "errors": (404, 422, *_AUTH, 503)},
    {"method": "get", "path": "/v1/rules", "summary": "List rules",
     "description": "The rules that run over the tenant's log (from the rules directory and posted through the "
                    "API) and the rules refused, each with its file, line and reason.", "auth": "read",
     "params": [_TENANT], "ok_content": _json("RuleList"), "errors": (422, *_AUTH, 503)},
    {"method": "post", "path": "/v1/rules", "summary": "Add or replace rules",
     "description": "A YAML or JSON body holding native or Sigma rules, checked by the same loader as rule files: "
                    "a rule that does not load is a 422 naming the line and the reason. The body is kept as one rule "
                    "set named by its first rule id; posting that id again replaces the set (`replaced: true`). Rules "
                    "apply to the tenant's log only.", "auth": "admin", "params": [_TENANT], "body": _RULE_BODY,
     "ok": 201, "ok_content": _json("RuleSetResult"), "errors": (400, 408, 409, 413, 415, 422, *_AUTH, 503),
     "example": "curl -H 'Authorization: Bearer $KEY' -H 'Content-Type: application/yaml' --data-binary @rule.yml "
                "http://127.0.0.1:8700/v1/rules"},
    {"method": "delete", "path": "/v1/rules/{rule_id}", "summary": "Remove a rule set",
     "description": "Removes the posted rule set holding this rule id. Rules of the rules directory are changed "
                    "there (409).", "auth": "admin",
     "params": [_param("rule_id", "path", "Rule id.", required=True), _TENANT],
     "ok_content": _json("RulesRemoved"), "errors": (404, 409, 422, *_AUTH, 503)},
]


def alert_schemas() -> dict[str, Any]:
    _, schemas = msgspec.json.schema_components(
        [AlertList, AlertDetail, AlertChange, DeadLetterList, Requeued, RuleList, RuleSetResult, RulesRemoved],
        ref_template="#/components/schemas/{name}",
    )
    return schemas
