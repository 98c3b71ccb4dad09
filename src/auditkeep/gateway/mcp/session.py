"""One MCP session seen by the gateway, whatever the transport: what the client asked, what
the server answered, and the events that follow.

Transports hand every parsed message to :meth:`Session.from_client` (which says whether to
forward it, answer it here, or hold it for approval) and :meth:`Session.from_server`, and
call :meth:`Session.end` once. The session never does I/O itself; events go to the sink,
which never blocks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from auditkeep.gateway.guardrails import Verdict
from auditkeep.gateway.mcp import events as ev
from auditkeep.gateway.mcp.events import CallRecord, Identity
from auditkeep.gateway.mcp.framing import Oversize, head_fields
from auditkeep.gateway.mcp.guard import Guard, NoReviewer, Review, Reviewer, ToolCall
from auditkeep.gateway.mcp.messages import (
    APPROVAL_TIMEOUT,
    DENIED,
    INTERNAL_ERROR,
    INVALID_REQUEST,
    BadMessage,
    JSONRPCError,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
    Message,
    Peer,
    RequestId,
    call_params,
    client_info,
    error_bytes,
    initialize_params,
    parse,
    prompt_params,
    protocol_of,
    resource_params,
    server_info,
    tools_of,
)
from auditkeep.gateway.sink import EventSink

log = logging.getLogger("auditkeep.gateway")

AUDITED = ("tools/call", "resources/read", "prompts/get")
MAX_PENDING = 4096
"""Requests one client may have in flight through the gateway at once."""


class Forward:
    """Send the message on, unchanged."""


FORWARD = Forward()


@dataclass(frozen=True, slots=True)
class Answer:
    """Do not forward: send ``data`` (a JSON-RPC error) back to the client."""

    data: bytes


Hold: TypeAlias = Awaitable[Forward | Answer]
Decision: TypeAlias = Forward | Answer | Hold


class Catalog:
    """The last complete tool listing seen per server, shared by a gateway's sessions, so a
    listing is recorded the first time and again only when it changes."""

    def __init__(self) -> None:
        self._known: dict[str, dict[str, str]] = {}

    def update(self, server: str, tools: dict[str, str]) -> tuple[bool, dict[str, str] | None]:
        """(whether this listing is news, the one it replaces)."""
        before = self._known.get(server)
        if before == tools:
            return False, before
        self._known[server] = tools
        return True, before


@dataclass
class _Pending:
    method: str
    received: float  # perf_counter
    record: CallRecord | None  # None: forwarded without an event of its own
    cursor: bool = False  # tools/list with a cursor: a later page
    held: bool = False


@dataclass
class Counts:
    requests: int = 0
    tool_calls: int = 0
    denied: int = 0
    errors: int = 0
    server_requests: int = 0
    malformed: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class Session:
    """See the module docstring. ``clock`` gives wall time in ns (event times)."""

    ident: Identity
    sink: EventSink
    guard: Guard | None = None  # None: no rules, every call goes through (and is recorded)
    reviewer: Reviewer = field(default_factory=NoReviewer)
    catalog: Catalog = field(default_factory=Catalog)
    clock: Callable[[], int] = time.time_ns
    counts: Counts = field(default_factory=Counts)

    def __post_init__(self) -> None:
        self._pending: dict[RequestId, _Pending] = {}
        self._started = False
        self._ended = False
        self._t0 = time.perf_counter()
        self._t0_ns = self.clock()
        self._pages: dict[str, str] = {}  # tools/list pages gathered so far

    # -- from the client -----------------------------------------------------------------------

    def from_client(self, msg: Message) -> Decision:
        if isinstance(msg, JSONRPCRequest):
            return self._request(msg)
        if isinstance(msg, JSONRPCNotification) and msg.method == "notifications/cancelled":
            self.cancel((msg.params or {}).get("requestId"))
        return FORWARD  # responses to the server's own requests, notifications

    def _request(self, msg: JSONRPCRequest) -> Decision:
        self.counts.requests += 1
        method = msg.method
        if len(self._pending) >= MAX_PENDING:
            self.counts.errors += 1
            return Answer(error_bytes(msg.id, INVALID_REQUEST, f"more than {MAX_PENDING} requests in flight"))
        if method == "initialize":
            peer, version = initialize_params(msg.params)
            self._learn_client(peer)
            self.ident.protocol = version or self.ident.protocol
        else:
            if self.ident.client is None and (peer := client_info(msg.params)) is not None:
                self._learn_client(peer)  # no handshake: the client names itself in each request
            if self.ident.protocol is None:
                self.ident.protocol = protocol_of(msg.params)
        now = time.perf_counter()
        if method not in AUDITED:
            self._pending[msg.id] = _Pending(method, now, None, cursor=bool((msg.params or {}).get("cursor")))
            return FORWARD
        try:
            call = {"tools/call": call_params, "prompts/get": prompt_params, "resources/read": resource_params}[
                method
            ](msg.params)
        except BadMessage as exc:
            rec = CallRecord(method, _name_of(msg.params), None, str(msg.id), self.clock(), outcome="failure")
            rec.reason = exc.message
            rec.error = {"code": exc.code, "message": exc.message[:512]}
            self._emit_call(rec)
            self.counts.errors += 1
            return Answer(error_bytes(msg.id, exc.code, exc.message))
        rec = CallRecord(method, call.name, call.arguments, str(msg.id), self.clock())
        if method != "tools/call":
            self._pending[msg.id] = _Pending(method, now, rec)
            return FORWARD
        self.counts.tool_calls += 1
        tc = ToolCall(call.name, call.arguments, self.ident.actor_id, self.ident.server_name,
                      self.ident.session, self.ident.tenant)  # fmt: skip
        try:
            verdict = self.guard.check(tc) if self.guard is not None else None
        except Exception as exc:  # rules that cannot be evaluated refuse, never let through
            return self._deny(msg.id, rec, None, f"the guardrails could not be evaluated: {exc}"[:512], now)
        if verdict is None or verdict.action == "allow":
            self._pending[msg.id] = _Pending(method, now, rec)
            return FORWARD
        if verdict.action == "deny":
            return self._deny(msg.id, rec, verdict.rule_name, verdict.message, now)
        self._pending[msg.id] = _Pending(method, now, rec, held=True)
        return self._review(msg.id, rec, tc, verdict)

    def _deny(self, rid: RequestId, rec: CallRecord, rule: str | None, reason: str, started: float) -> Answer:
        self.counts.denied += 1
        rec.outcome, rec.reason, rec.rule = "denied", reason, rule
        rec.duration_ms = (time.perf_counter() - started) * 1000
        self._emit_call(rec)
        data = {"gateway": "auditkeep", "rule": rule} if rule else {"gateway": "auditkeep"}
        return Answer(error_bytes(rid, DENIED, f"denied by the gateway: {reason}", data))

    async def _review(
        self, rid: RequestId, rec: CallRecord, tc: ToolCall, verdict: Verdict[ToolCall]
    ) -> Forward | Answer:
        waited = time.perf_counter()
        try:
            result = await self.reviewer.review(tc, verdict)
        except asyncio.CancelledError:
            raise  # the client went away or cancelled: end() or cancel() records it
        except Exception as exc:  # the approval service failed: refuse rather than let through
            result = _failed_review(exc)
        pending = self._pending.get(rid)
        if pending is None or pending.record is not rec:
            return Answer(error_bytes(rid, DENIED, "the call was cancelled while it awaited approval"))
        rec.rule = verdict.rule_name
        rec.approval = {
            k: v
            for k, v in {
                "id": result.request_id,
                "approved": result.approved,
                "by": result.by,
                "timed_out": result.timed_out or None,
                "wait_ms": round((time.perf_counter() - waited) * 1000, 3),
            }.items()
            if v is not None
        }
        if result.approved:
            pending.held = False
            return FORWARD
        del self._pending[rid]
        self.counts.denied += 1
        rec.outcome = "denied"
        if result.timed_out:
            rec.reason = result.reason or "nobody approved the call in time"
            code = APPROVAL_TIMEOUT
        else:
            by = f"{result.by} rejected the call" if result.by else "the call was rejected"
            rec.reason = f"{by}: {result.reason}" if result.reason and result.by else result.reason or by
            code = DENIED
        rec.duration_ms = (time.perf_counter() - pending.received) * 1000
        self._emit_call(rec)
        data: dict[str, Any] = {"gateway": "auditkeep", "approval": result.request_id}
        if verdict.rule_name:
            data["rule"] = verdict.rule_name
        return Answer(error_bytes(rid, code, f"denied by the gateway: {rec.reason}", data))

    def cancel(self, rid: Any) -> None:
        """The client gave up on request ``rid``: recorded (outcome unknown), not awaited."""
        if not isinstance(rid, int | str) or isinstance(rid, bool):
            return
        p = self._pending.pop(rid, None)
        if p is not None and p.record is not None:
            self._finish(p, "unknown", reason="cancelled by the client")

    # -- from the server -----------------------------------------------------------------------

    def from_server(self, msg: Message, size: int) -> None:
        """Note a message from the server (``size``: its bytes on the wire)."""
        if isinstance(msg, JSONRPCRequest):
            self.counts.server_requests += 1
            return
        if isinstance(msg, JSONRPCResponse | JSONRPCError):
            if msg.id is None:
                return
            p = self._pending.pop(msg.id, None)
            if p is None:
                return
            if isinstance(msg, JSONRPCError):
                self._error_answer(p, msg.error.code, msg.error.message)
            else:
                self._result(p, msg.result, size)

    def _result(self, p: _Pending, result: dict[str, Any], size: int) -> None:
        if p.method in ("initialize", "server/discover"):
            peer, version = server_info(p.method, result)
            if peer is not None:
                self.ident.server = peer.as_dict()
            # initialize answers with the version agreed on; discover lists what the server
            # speaks, and the client's own request named the one it uses.
            if version and (p.method == "initialize" or not self.ident.protocol):
                self.ident.protocol = version
            self.start()
            return
        if self.ident.server is None:
            peer, _ = server_info(p.method, result)  # later revisions stamp every result
            if peer is not None:
                self.ident.server = peer.as_dict()
        if p.method == "tools/list":
            self._tools_page(result, p.cursor)
            return
        if p.record is None:
            return
        is_error = bool(result.get("isError")) if p.method == "tools/call" else None
        p.record.result_bytes = size
        p.record.is_error = is_error
        if is_error:
            self.counts.errors += 1
            self._finish(p, "failure", reason=_error_text(result))
        else:
            self._finish(p, "success")

    def _error_answer(self, p: _Pending, code: int, message: str) -> None:
        if p.record is None:
            return
        self.counts.errors += 1
        p.record.error = {"code": code, "message": message[:512]}
        self._finish(p, "error", reason=message)

    def _tools_page(self, result: dict[str, Any], cursor: bool) -> None:
        page = tools_of(result)
        if page is None:
            return
        if not cursor:
            self._pages = {}
        self._pages.update(page.tools)
        if page.next_cursor:
            return
        tools, self._pages = self._pages, {}
        server = self.ident.server_name or self.ident.target or "unknown"
        news, before = self.catalog.update(server, tools)
        if news:
            self._emit(ev.tools_list(self.ident, self.clock(), tools, before))

    # -- events ----------------------------------------------------------------------------------

    def _learn_client(self, peer: Peer | None) -> None:
        if peer is not None:
            self.ident.client = peer.as_dict()

    def start(self) -> None:
        """Record the session's start (once), with what is known of both sides so far."""
        if not self._started:
            self._started = True
            self._emit(ev.session_start(self.ident, self._t0_ns))

    def _finish(self, p: _Pending, outcome: str, reason: str | None = None) -> None:
        assert p.record is not None
        p.record.outcome = outcome
        p.record.reason = reason
        p.record.duration_ms = (time.perf_counter() - p.received) * 1000
        self._emit_call(p.record)

    def _emit_call(self, rec: CallRecord) -> None:
        self.start()  # a client that skips the handshake still gets a session
        self._emit(ev.call(self.ident, rec))

    def _emit(self, event: Any) -> None:
        self.sink.emit(event)

    def answered(self, rid: RequestId, code: int, message: str) -> None:
        """The gateway answered request ``rid`` itself with an error (the server's answer
        was unreadable or too large)."""
        p = self._pending.pop(rid, None)
        if p is not None:
            self._error_answer(p, code, message)

    def read_server(self, data: bytes) -> Message | None:
        """A message from the server, parsed; None when it cannot be read (counted and
        logged): such a message is dropped, since what cannot be read cannot be recorded."""
        try:
            return parse(data)
        except BadMessage as exc:
            self.counts.malformed += 1
            log.warning("gateway: dropped a message from the server: %s", exc.message)
            return None

    def server_oversize(self, item: Oversize, limit: int) -> bytes | None:
        """A message from the server over ``limit`` bytes is dropped; returns the error to
        send the client for the request it answered, when that can be told."""
        rid, _ = head_fields(item.prefix)
        why = f"the server's message of {item.size} bytes is over the gateway's limit of {limit}"
        log.warning("gateway: %s; dropped", why)
        self.counts.malformed += 1
        if rid is None or rid not in self._pending:
            return None
        self.answered(rid, INTERNAL_ERROR, why)
        return error_bytes(rid, INTERNAL_ERROR, why)

    def refused(self, rid: RequestId | None, method: str | None, code: int, message: str) -> None:
        """The gateway answered a client message it could not read (malformed, too large);
        an audited request among them is recorded as failed."""
        self.counts.malformed += 1
        if method in AUDITED:
            rec = CallRecord(method, "-", None, "-" if rid is None else str(rid), self.clock(), outcome="failure")
            rec.reason, rec.error = message, {"code": code, "message": message[:512]}
            self.counts.errors += 1
            self._emit_call(rec)

    def end(self, reason: str, *, outcome: str = "success", unanswered: str | None = None) -> list[bytes]:
        """Record the session's end (once). Requests still in flight are recorded as failed
        with ``unanswered`` (default: ``reason``); the errors to send the client for them
        are returned (the caller sends them if the client is still there)."""
        if self._ended:
            return []
        self._ended = True
        self.start()
        answers: list[bytes] = []
        why = unanswered or reason
        for rid, p in list(self._pending.items()):
            answers.append(error_bytes(rid, INTERNAL_ERROR, why))
            if p.record is not None:
                p.record.error = {"code": INTERNAL_ERROR, "message": why[:512]}
                self.counts.errors += 1
                self._finish(p, "error", reason=why)
        self._pending.clear()
        duration_ms = (time.perf_counter() - self._t0) * 1000
        counts = self.counts.as_dict()
        self._emit(ev.session_end(self.ident, self.clock(), duration_ms=duration_ms, outcome=outcome,
                                  reason=reason, counts=counts))  # fmt: skip
        return answers


def _name_of(params: dict[str, Any] | None) -> str:
    raw = (params or {}).get("name") or (params or {}).get("uri")
    return raw if isinstance(raw, str) else "-"


def _error_text(result: dict[str, Any]) -> str:
    for item in result.get("content") or []:
        if isinstance(item, dict) and item.get("type") == "text" and isinstance(item.get("text"), str):
            return "the tool reported an error: " + str(item["text"])[:512]
    return "the tool reported an error"


def _failed_review(exc: Exception) -> Review:
    return Review(False, reason=f"the approval could not be obtained: {exc}"[:512])
