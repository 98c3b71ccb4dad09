"""JSON-RPC messages as the MCP SDK defines them: parse and validate one message, read the
parameters and results the gateway audits, and write the errors it answers with itself.

The gateway forwards the bytes it received, never a re-encoding, so a message reaches the
other side exactly as it was sent; parsing only decides whether and what to record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

import orjson
from mcp_types import (
    CLIENT_INFO_META_KEY as _CLIENT_INFO_META,
)
from mcp_types import (
    PROTOCOL_VERSION_META_KEY as _PROTOCOL_META,
)
from mcp_types import (
    SERVER_INFO_META_KEY as _SERVER_INFO_META,
)
from mcp_types import (
    CallToolRequestParams,
    DiscoverResult,
    GetPromptRequestParams,
    Implementation,
    InitializeRequestParams,
    InitializeResult,
    ListToolsResult,
    ReadResourceRequestParams,
)
from mcp_types.jsonrpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    PARSE_ERROR,
    JSONRPCError,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
    jsonrpc_message_adapter,
)
from pydantic import BaseModel, ValidationError

from auditkeep.errors import UserError

Message: TypeAlias = JSONRPCRequest | JSONRPCNotification | JSONRPCResponse | JSONRPCError
RequestId: TypeAlias = int | str

DENIED = -32010
"""The gateway refused the call (a guardrail, or a reviewer who said no)."""
APPROVAL_TIMEOUT = -32011
"""The call waited for approval and nobody decided in time."""

__all__ = [
    "APPROVAL_TIMEOUT",
    "DENIED",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "PARSE_ERROR",
    "BadMessage",
    "Call",
    "JSONRPCError",
    "JSONRPCNotification",
    "JSONRPCRequest",
    "JSONRPCResponse",
    "Message",
    "Peer",
    "RequestId",
    "call_params",
    "client_info",
    "error_bytes",
    "initialize_params",
    "parse",
    "prompt_params",
    "protocol_of",
    "resource_params",
    "server_info",
    "tools_of",
]


class BadMessage(UserError, ValueError):
    """A message the gateway cannot read: the JSON-RPC error to answer it with."""

    def __init__(self, code: int, message: str, request_id: RequestId | None = None) -> None:
        self.code = code
        self.message = message
        self.request_id = request_id
        super().__init__(message)


def parse(data: bytes) -> Message:
    """One JSON-RPC message, validated with the SDK's types; :class:`BadMessage` otherwise."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadMessage(PARSE_ERROR, f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise BadMessage(INVALID_REQUEST, "a JSON-RPC message is a JSON object")
    rid = obj.get("id")
    rid = rid if isinstance(rid, int | str) and not isinstance(rid, bool) else None
    try:
        msg = jsonrpc_message_adapter.validate_python(obj)
    except ValidationError as exc:
        raise BadMessage(INVALID_REQUEST, f"not a JSON-RPC 2.0 message: {_first(exc)}", rid) from None
    if isinstance(msg, JSONRPCNotification) and "id" in obj:
        # The model ignores a member it does not know: an id that is neither a string nor an
        # integer would otherwise turn a request into a notification.
        raise BadMessage(INVALID_REQUEST, "id: must be a string or an integer")
    return msg


def _first(exc: ValidationError) -> str:
    errs = exc.errors()
    if not errs:
        return "invalid"
    e = errs[0]
    loc = ".".join(str(p) for p in e.get("loc", ()) if not isinstance(p, int))
    return f"{loc}: {e.get('msg', 'invalid')}" if loc else str(e.get("msg", "invalid"))


def error_bytes(request_id: RequestId | None, code: int, message: str, data: Any = None) -> bytes:
    """A JSON-RPC error response, encoded."""
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    # Built from the SDK's model so the answer is what an SDK peer expects to read.
    JSONRPCError.model_validate({"jsonrpc": "2.0", "id": request_id, "error": err})
    return orjson.dumps({"jsonrpc": "2.0", "id": request_id, "error": err})


def _params(model: type[BaseModel], params: dict[str, Any] | None, method: str) -> Any:
    try:
        return model.model_validate(params or {})
    except ValidationError as exc:
        raise BadMessage(INVALID_PARAMS, f"{method}: {_first(exc)}") from None


@dataclass(frozen=True, slots=True)
class Call:
    """What a tools/call, prompts/get or resources/read names."""

    name: str
    arguments: dict[str, Any] | None


def call_params(params: dict[str, Any] | None) -> Call:
    p: CallToolRequestParams = _params(CallToolRequestParams, params, "tools/call")
    return Call(p.name, dict(p.arguments) if p.arguments is not None else None)


def prompt_params(params: dict[str, Any] | None) -> Call:
    p: GetPromptRequestParams = _params(GetPromptRequestParams, params, "prompts/get")
    return Call(p.name, dict(p.arguments) if p.arguments is not None else None)


def resource_params(params: dict[str, Any] | None) -> Call:
    p: ReadResourceRequestParams = _params(ReadResourceRequestParams, params, "resources/read")
    return Call(str(p.uri), None)


@dataclass(frozen=True, slots=True)
class Peer:
    name: str
    version: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version}


def _peer(impl: Implementation | None) -> Peer | None:
    return None if impl is None else Peer(impl.name, impl.version)


def _meta_peer(meta: Any, key: str) -> Peer | None:
    raw = meta.get(key) if isinstance(meta, dict) else None
    if raw is None:
        return None
    try:
        return _peer(Implementation.model_validate(raw))
    except ValidationError:
        return None


def initialize_params(params: dict[str, Any] | None) -> tuple[Peer | None, str | None]:
    """The client's name and version and the protocol version it asks for."""
    try:
        p = InitializeRequestParams.model_validate(params or {})
    except ValidationError:
        return None, None
    return _peer(p.client_info), p.protocol_version


def client_info(params: dict[str, Any] | None) -> Peer | None:
    """The client named in a request's ``_meta`` (protocol revisions without a handshake)."""
    return _meta_peer((params or {}).get("_meta"), _CLIENT_INFO_META)


def protocol_of(params: dict[str, Any] | None) -> str | None:
    """The protocol version a request names in its ``_meta`` (revisions without a handshake)."""
    meta = (params or {}).get("_meta")
    value = meta.get(_PROTOCOL_META) if isinstance(meta, dict) else None
    return value[:64] if isinstance(value, str) else None


def server_info(method: str, result: dict[str, Any]) -> tuple[Peer | None, str | None]:
    """The server's name and version and the protocol version from an ``initialize`` or
    ``server/discover`` result (or any result's ``_meta`` stamp)."""
    try:
        if method == "initialize":
            r = InitializeResult.model_validate(result)
            return _peer(r.server_info), r.protocol_version
        if method == "server/discover":
            d = DiscoverResult.model_validate(result)
            versions = d.supported_versions
            return _meta_peer(result.get("_meta"), _SERVER_INFO_META), versions[0] if versions else None
    except ValidationError:
        return None, None
    return _meta_peer(result.get("_meta"), _SERVER_INFO_META), None


@dataclass(frozen=True, slots=True)
class ToolPage:
    """One page of a tools/list answer: each tool's name with a digest of its definition."""

    tools: dict[str, str]
    next_cursor: str | None


def tools_of(result: dict[str, Any]) -> ToolPage | None:
    import hashlib

    try:
        r = ListToolsResult.model_validate(result)
    except ValidationError:
        return None
    tools: dict[str, str] = {}
    for raw, tool in zip(result.get("tools") or [], r.tools, strict=False):
        # The digest covers the definition as sent (description, schemas): a tool that
        # keeps its name but changes what it says it does is a change worth recording.
        digest = hashlib.sha256(orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]
        tools[tool.name] = digest
    return ToolPage(tools, r.next_cursor)
