"""The OpenAPI 3.1 document of the HTTP API. Schemas of bodies come from the same msgspec
types the server encodes and decodes, so the document cannot drift from the code."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from auditkeep import __version__
from auditkeep.evidence.build import FILTER_NAMES as BUNDLE_FILTERS
from auditkeep.ledger.ledger import ConsistencyProof, InclusionProof
from auditkeep.model.event import CATEGORIES, OUTCOMES, Event
from auditkeep.server.openapi_alerts import ALERT_OPERATIONS, alert_schemas
from auditkeep.server.openapi_approvals import APPROVAL_OPERATIONS, approval_schemas
from auditkeep.server.openapi_archive import ARCHIVE_OPERATIONS, archive_schemas
from auditkeep.server.openapi_holds import HOLD_OPERATIONS, hold_schemas
from auditkeep.server.openapi_sources import SOURCE_OPERATIONS, source_schemas
from auditkeep.server.routes.events import IngestResult, SearchResult
from auditkeep.server.routes.keys import KeyRequest


@dataclass
class Param:
    name: str
    where: str  # query, path, header
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False
    repeat: bool = False


@dataclass
class Op:
    method: str
    path: str
    summary: str
    description: str
    auth: str | None  # the scopes, in words; None = no key needed
    params: list[Param] = field(default_factory=list)
    body: dict[str, Any] | None = None
    ok: int = 200
    ok_content: dict[str, Any] = field(default_factory=dict)
    errors: tuple[int, ...] = ()
    example: str = ""
    error_content: dict[int, dict[str, Any]] = field(default_factory=dict)  # other than JSON Error


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(name)}}


_TEXT = {"text/plain": {"schema": {"type": "string"}}}
_OCTETS = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
_INT = {"type": "integer", "minimum": 0}
_TENANT = Param("tenant", "query", "Tenant to act on (keys for all tenants; a tenant's key may name only its own).")
_FILTERS = [
    _TENANT,
    Param("since", "query", "Event time from (RFC 3339, `now`, or ago: 15m, 2h, 7d)."),
    Param("until", "query", "Event time before (same forms)."),
    Param("received_since", "query", "Received from (same forms)."),
    Param("received_until", "query", "Received before (same forms)."),
    Param("actor", "query", "Actor id, exact."),
    Param("action", "query", "Action, exact, or a prefix ending in `*` (`user.*`)."),
    Param("resource_type", "query", "Resource type, exact."),
    Param("resource_id", "query", "Resource id, exact."),
    Param("outcome", "query", "Outcome.", {"type": "string", "enum": list(OUTCOMES)}),
    Param("category", "query", "Category.", {"type": "string", "enum": list(CATEGORIES)}),
    Param("text", "query", "Full text: every word must occur; `word*` is a prefix."),
    Param("metadata", "query", "`path=value` equality below `metadata` (repeatable).", repeat=True),
    Param("submitter", "query", "Who appended, as the leaf records it: `KIND` or `KIND:ID` "
          "(`key:<keyid>`, `cert:<subject>`, `collector:<source>`, `cli`, `embedded`, `server`)."),
]
_AUTH_ERRORS = (400, 401, 403, 429)  # 400: a key for all tenants without `tenant`

OPERATIONS: list[Op] = [
    Op("post", "/v1/events", "Append events", "One event object, a JSON array of events, or NDJSON "
       "(one event per line); `Content-Encoding: gzip` accepted. All or nothing: one invalid event "
       "rejects the request (422 names its position and field). Answers once the batch is durable. "
       "Actions in the `auditkeep.` namespace are the server's own and refused (422); the leaf records "
       "the key that appended it (`submitter`), which a client may not send.",
       "ingest", [_TENANT],
       body={"required": True, "content": {
           "application/json": {"schema": {"oneOf": [_ref("Event"), {"type": "array", "items": _ref("Event")}]}},
           "application/x-ndjson": {"schema": {"type": "string"}}}},
       ok_content=_json("IngestResult"), errors=(400, *_AUTH_ERRORS, 408, 409, 413, 415, 422, 503),
       example="curl -H 'Authorization: Bearer $KEY' -H 'Content-Type: application/json' "
               "-d '{\"actor\":{\"id\":\"alice\"},\"action\":\"user.login\"}' http://127.0.0.1:8700/v1/events"),
    Op("get", "/v1/events", "Search events", "Filters combine with AND. Ordered by event time; "
       "`next_cursor` continues a page.", "read",
       [*_FILTERS,
        Param("order", "query", "newest (default) or oldest.", {"type": "string", "enum": ["newest", "oldest"]}),
        Param("limit", "query", "Page size, 1-10000 (default 100).", {"type": "integer", "minimum": 1, "maximum": 10000}),
        Param("cursor", "query", "`next_cursor` of the previous page.")],
       ok_content=_json("SearchResult"), errors=(404, 422, *_AUTH_ERRORS, 503),
       example="curl -H 'Authorization: Bearer $KEY' 'http://127.0.0.1:8700/v1/events?action=user.*&limit=10'"),
    Op("get", "/v1/export", "Export events", "The tenant's events streamed in one response, read page "
       "by page: without filters every entry in log order, with filters the matching events oldest "
       "first. `format`: jsonl (records as stored), csv, ocsf (OCSF 1.8.0, one record a line) or cef. "
       "The read is recorded (`auditkeep.export`).", "read",
       [*_FILTERS,
        Param("format", "query", "jsonl (default), csv, ocsf or cef.", {"type": "string", "enum": ["jsonl", "csv", "ocsf", "cef"]})],
       ok_content={"application/x-ndjson": {"schema": {"type": "string"}},
                   "text/csv": {"schema": {"type": "string"}},
                   "text/plain": {"schema": {"type": "string"}}},
       errors=(422, *_AUTH_ERRORS, 503),
       example="curl -H 'Authorization: Bearer $KEY' 'http://127.0.0.1:8700/v1/export?format=ocsf&since=7d' -o events.ocsf.jsonl"),
    Op("get", "/v1/evidence", "Evidence bundle", "A zip of the events the tenant's log received in "
       "`[since, until)` (on `received_at`), the entries just outside the window, the signed checkpoint, "
       "the range and consistency proofs, the verifier keys, a manifest, a README and an HTML report "
       "(format: docs/evidence.md; check it with `auditkeep verify-bundle` or examples/verify_bundle.py). "
       "Filters keep matching events in full, the others as leaf hashes. A window over more than "
       "100000 entries is refused (422): use `auditkeep evidence`. The read is recorded (`auditkeep.evidence`).",
       "read",
       [_TENANT,
        Param("since", "query", "Window start on received_at, inclusive (RFC 3339, `now`, or ago: 15m, 2h, 7d).", required=True),
        Param("until", "query", "Window end on received_at, exclusive (same forms; default now)."),
        *[p for p in _FILTERS if p.name in BUNDLE_FILTERS],
        Param("reveal_subject", "query", "Include this subject's personal fields, with the per-event keys that check them.")],
       ok_content={"application/zip": {"schema": {"type": "string", "format": "binary"}}},
       errors=(404, 422, *_AUTH_ERRORS, 503),
       example="curl -H 'Authorization: Bearer $KEY' 'http://127.0.0.1:8700/v1/evidence?since=2026-11-01T00:00:00Z&until=2026-12-01T00:00:00Z' -o evidence.zip"),
    Op("get", "/v1/events/{event_id}", "Fetch one event", "With `proof=true` also the exact leaf bytes "
       "(base64) and its inclusion proof against the latest checkpoint.", "read",
       [Param("event_id", "path", "Event id (UUID).", required=True), _TENANT,
        Param("proof", "query", "Include the inclusion proof.", {"type": "boolean"})],
       ok_content=_json("EventWithProof"), errors=(404, 410, 422, *_AUTH_ERRORS, 503)),
    Op("get", "/v1/proofs/inclusion", "Inclusion proof", "Proof that the entry at `index` (or the "
       "event `id`) is in the tree of `size` (default: the latest checkpoint).", "read or verify",
       [_TENANT, Param("index", "query", "Log index.", _INT), Param("id", "query", "Event id instead of index."),
        Param("size", "query", "Tree size of a signed checkpoint.", {"type": "integer", "minimum": 1})],
       ok_content=_json("InclusionProof"), errors=(404, 422, *_AUTH_ERRORS, 503)),
    Op("get", "/v1/proofs/consistency", "Consistency proof", "Proof that the tree of size `from` is a "
       "prefix of the tree of size `to` (default: the latest checkpoint).", "read or verify",
       [_TENANT, Param("from", "query", "Older tree size.", _INT, required=True),
        Param("to", "query", "Newer tree size.", {"type": "integer", "minimum": 1})],
       ok_content=_json("ConsistencyProof"), errors=(404, 422, *_AUTH_ERRORS, 503)),
    Op("get", "/v1/checkpoints/latest", "Latest checkpoint", "The signed note (C2SP tlog-checkpoint).",
       "read or verify", [_TENANT], ok_content=_TEXT, errors=(404, 422, *_AUTH_ERRORS, 503)),
    Op("get", "/v1/checkpoints/{tree_size}", "Checkpoint at a size", "The signed note of that tree size.",
       "read or verify", [Param("tree_size", "path", "Tree size.", {"type": "integer", "minimum": 1}, True), _TENANT],
       ok_content=_TEXT, errors=(404, 422, *_AUTH_ERRORS, 503)),
    Op("get", "/v1/pubkey", "Verifier key", "The public key (signed-note vkey) that checks checkpoints.",
       None, ok_content=_TEXT),
    Op("get", "/v1/logs/{tenant}/checkpoint", "tlog-tiles checkpoint", "C2SP tlog-tiles: the latest checkpoint.",
       "read or verify", [Param("tenant", "path", "Tenant.", required=True)], ok_content=_TEXT,
       errors=(404, 422, *_AUTH_ERRORS, 503)),
    Op("get", "/v1/logs/{tenant}/tile/{level}/{tile_index}", "tlog-tiles hash tile",
       "C2SP tlog-tiles: `tile/<L>/<N>[.p/<W>]`; N is 3-digit path elements, all but the last "
       "prefixed with x (so it may span several path segments).", "read or verify",
       [Param("tenant", "path", "Tenant.", required=True),
        Param("level", "path", "Tile level 0-63.", {"type": "integer", "minimum": 0, "maximum": 63}, True),
        Param("tile_index", "path", "Encoded tile index, e.g. 000 or x001/234.", required=True)],
       ok_content=_OCTETS, errors=(404, 422, *_AUTH_ERRORS, 503)),
    Op("get", "/v1/logs/{tenant}/tile/entries/{bundle_index}", "tlog-tiles entry bundle",
       "C2SP tlog-tiles: each entry is a big-endian uint16 length and the canonical leaf bytes.",
       "read or verify",
       [Param("tenant", "path", "Tenant.", required=True), Param("bundle_index", "path", "Encoded index.", required=True)],
       ok_content=_OCTETS, errors=(404, 422, *_AUTH_ERRORS, 503)),
    Op("get", "/v1/stream", "Live tail (SSE)", "Server-Sent Events of newly committed events; the "
       "event id is the log index. Resumes after `Last-Event-ID` (or at `from_index`) without gaps; "
       "heartbeat comments every 15 s.", "read",
       [*_FILTERS, Param("from_index", "query", "First log index to send.", _INT),
        Param("Last-Event-ID", "header", "Resume after this log index.")],
       ok_content={"text/event-stream": {"schema": {"type": "string"}}}, errors=(422, *_AUTH_ERRORS, 503)),
    Op("post", "/v1/keys", "Create an API key", "Shown once. A tenant's admin key creates keys for "
       "its tenant only.", "admin",
       body={"required": True, "content": _json("KeyRequest")}, ok=201, ok_content=_json("NewKey"),
       errors=(400, 413, 422, *_AUTH_ERRORS, 503)),
    Op("get", "/v1/keys", "List API keys", "Keys of a tenant (or all, for a key of all tenants); no secrets.",
       "admin", [_TENANT, Param("limit", "query", "At most this many.", {"type": "integer", "minimum": 1, "maximum": 10000})],
       ok_content=_json("KeyList"), errors=(422, *_AUTH_ERRORS, 503)),
    Op("delete", "/v1/keys/{keyid}", "Revoke an API key", "The key stays listed, marked revoked.", "admin",
       [Param("keyid", "path", "Key id.", required=True)], ok_content=_json("KeyInfo"),
       errors=(404, *_AUTH_ERRORS, 503)),
    Op("get", "/healthz", "Liveness", "200 while the process answers.", None, ok_content=_json("Status")),
    Op("get", "/readyz", "Readiness", "503 when the store is unreachable or checkpoints fall behind.",
       None, ok_content=_json("Status"), errors=(503,)),
    Op("get", "/metrics", "Prometheus metrics", "Needs a key for all tenants (*) with admin or verify scope.",
       "admin or verify, tenant *", ok_content=_TEXT, errors=_AUTH_ERRORS),
]
# alerts and rules (auditkeep.server.openapi_alerts keeps them as plain data)
OPERATIONS += [
    Op(**{**spec, "params": [Param(**p) for p in spec.get("params", [])]}) for spec in ALERT_OPERATIONS
]
# approvals of the gateways (openapi_approvals)
OPERATIONS += [
    Op(**{**spec, "params": [Param(**p) for p in spec.get("params", [])]}) for spec in APPROVAL_OPERATIONS
]
# legal holds (openapi_holds)
OPERATIONS += [
    Op(**{**spec, "params": [Param(**p) for p in spec.get("params", [])]}) for spec in HOLD_OPERATIONS
]
# the WORM archive (openapi_archive)
OPERATIONS += [
    Op(**{**spec, "params": [Param(**p) for p in spec.get("params", [])]}) for spec in ARCHIVE_OPERATIONS
]
# sources: Kubernetes webhook, OTLP/HTTP logs, collector batches, quarantine (openapi_sources)
OPERATIONS += [
    Op(**{**spec, "params": [Param(**p) for p in spec.get("params", [])]}) for spec in SOURCE_OPERATIONS
]

_STATUS_TEXT = {
    400: "Malformed request (JSON, UTF-8, gzip, a repeated key), or a key for all tenants without tenant=", 401: "Missing, malformed, unknown, expired or revoked key",
    403: "Wrong scope or tenant", 404: "Not found",
    410: "Expired: a retention policy deleted the payload (`status`, `index` and `leaf_hash` say which)", 408: "Body too slow", 409: "Event id reused with other content",
    413: "Body or batch too large", 415: "Unsupported content type or encoding", 422: "Invalid input",
    429: "Rate limited (see Retry-After)", 503: "Unavailable (see Retry-After)",
}


def _key_schemas() -> dict[str, Any]:
    info = {
        "type": "object",
        "properties": {
            "keyid": {"type": "string"}, "tenant": {"type": "string"},
            "scopes": {"type": "array", "items": {"type": "string"}},
            "name": {"type": ["string", "null"]}, "created": {"type": "string"},
            "expires": {"type": ["string", "null"]}, "revoked": {"type": ["string", "null"]},
        },
        "required": ["keyid", "tenant", "scopes", "created"],
    }
    new = {"allOf": [info, {"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]}]}
    return {
        "KeyInfo": info,
        "NewKey": new,
        "KeyList": {"type": "object", "properties": {"keys": {"type": "array", "items": _ref("KeyInfo")}}, "required": ["keys"]},
    }


def _components() -> dict[str, Any]:
    _, schemas = msgspec.json.schema_components(
        [Event, IngestResult, SearchResult, InclusionProof, ConsistencyProof, KeyRequest],
        ref_template="#/components/schemas/{name}",
    )
    schemas["EventWithProof"] = {
        "allOf": [_ref("Record"), {"type": "object", "properties": {"leaf": {"type": "string"}, "proof": _ref("InclusionProof")}}]
    }
    schemas["Error"] = {
        "type": "object",
        "properties": {
            "error": {"type": "string"}, "position": {"type": ["integer", "null"]},
            "field": {"type": "string"}, "reason": {"type": "string"},
        },
        "required": ["error"],
    }
    schemas["Status"] = {"type": "object", "properties": {"status": {"type": "string"}}, "required": ["status"]}
    schemas.update(_key_schemas())
    schemas.update(alert_schemas())
    schemas.update(approval_schemas())
    schemas.update(hold_schemas())
    schemas.update(archive_schemas())
    schemas.update(source_schemas())
    return schemas


def _operation(op: Op, n: int) -> dict[str, Any]:
    responses: dict[str, Any] = {str(op.ok): {"description": "OK", "content": op.ok_content}}
    for status in op.errors:
        content = op.error_content.get(status, _json("Error"))
        responses[str(status)] = {"description": _STATUS_TEXT.get(status, "Error"), "content": content}
    out: dict[str, Any] = {
        "operationId": f"op{n}_{op.method}_{op.path.strip('/').replace('/', '_').replace('{', '').replace('}', '')}",
        "summary": op.summary,
        "description": op.description + (f"\n\nKey scope: {op.auth}." if op.auth else "\n\nNo key needed."),
        "parameters": [
            {
                "name": p.name, "in": p.where, "required": p.required, "description": p.description,
                "schema": {"type": "array", "items": p.schema} if p.repeat else p.schema,
                **({"explode": True} if p.repeat else {}),
            }
            for p in op.params
        ],
        "responses": responses,
        "security": [{"bearer": []}] if op.auth else [],
    }
    if op.body is not None:
        out["requestBody"] = op.body
    return out


def openapi_document() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for n, op in enumerate(OPERATIONS):
        paths.setdefault(op.path, {})[op.method] = _operation(op, n)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "auditkeep",
            "version": __version__,
            "description": "A tamper-evident audit log: append-only per-tenant Merkle logs, signed "
            "checkpoints, inclusion and consistency proofs, search and a live tail.",
        },
        "paths": paths,
        "components": {
            "schemas": _components(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "ak_<keyid>_<secret>"}},
        },
    }
