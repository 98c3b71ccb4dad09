"""The Streamable HTTP transport: the gateway is a reverse proxy in front of one MCP
endpoint. POSTs carry one JSON-RPC message each, answered with a JSON body or an SSE
stream; GET opens the server's stream; DELETE ends a session named by ``Mcp-Session-Id``.

Messages of the MCP endpoint are read (bounded) and shown to a :class:`Session` kept per
``Mcp-Session-Id``; SSE streams pass event by event, never held whole. Other paths (e.g.
OAuth metadata) are forwarded unread.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import signal
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

import httpx
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from auditkeep.gateway.mcp.events import Identity
from auditkeep.gateway.mcp.framing import (
    DEFAULT_MAX_MESSAGE,
    Oversize,
    SSEEvent,
    SSEParser,
    head_fields,
)
from auditkeep.gateway.mcp.guard import Guard, NoReviewer, Reviewer
from auditkeep.gateway.mcp.messages import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    BadMessage,
    JSONRPCRequest,
    Message,
    error_bytes,
    parse,
)
from auditkeep.gateway.mcp.session import Answer, Catalog, Forward, Session
from auditkeep.gateway.sink import EventSink

log = logging.getLogger("auditkeep.gateway")

SESSION_ID = "mcp-session-id"
# Not forwarded either way: hop-by-hop, or recomputed by the side that sends.
_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "host", "content-length", "accept-encoding", "content-encoding",
})  # fmt: skip
BAD_GATEWAY = 502


@dataclass
class HttpOptions:
    upstream: str
    tenant: str
    agent: str | None = None
    max_message: int = DEFAULT_MAX_MESSAGE
    idle_timeout: float = 1800.0  # a session unused this long is recorded as ended
    max_sessions: int = 10_000
    loopback_only: bool = True  # refuse Host headers that are not loopback (DNS rebinding)
    connect_timeout: float = 10.0


@dataclass
class _Tracked:
    session: Session
    last_used: float = field(default_factory=time.monotonic)


class HttpGateway:
    """The ASGI application (see the module docstring)."""

    def __init__(
        self,
        options: HttpOptions,
        sink: EventSink,
        guard: Guard | None = None,
        reviewer: Reviewer | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.o = options
        self.sink = sink
        self.guard = guard
        self.reviewer = reviewer or NoReviewer()
        self.catalog = Catalog()
        up = check_upstream(options.upstream)
        self.endpoint = up.path or "/"
        self.origin = urlunsplit((up.scheme, up.netloc, "", "", ""))
        # What events say of the server: the URL without credentials or query.
        self.target = urlunsplit((up.scheme, up.hostname or "", up.path, "", "")) + (
            f" (port {up.port})" if up.port else ""
        )
        self._sessions: dict[str, _Tracked] = {}
        self._sessionless: Session | None = None
        self._http = httpx.AsyncClient(
            base_url=self.origin,
            timeout=httpx.Timeout(None, connect=options.connect_timeout),
            transport=transport,
            follow_redirects=False,
        )
        self._sweeper: asyncio.Task[None] | None = None

    # -- ASGI ------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        if self.o.loopback_only and not _loopback_host(request.headers.get("host", "")):
            await Response("Host not allowed", 421)(scope, receive, send)
            return
        try:
            if request.url.path != self.endpoint:
                response = await self._passthrough(request)
            elif request.method == "POST":
                response = await self._post(request)
            elif request.method == "GET":
                response = await self._get(request)
            elif request.method == "DELETE":
                response = await self._delete(request)
            else:
                response = await self._passthrough(request)
        except ClientDisconnect:
            return
        await response(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._sweeper = asyncio.create_task(self._sweep())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose("the gateway was stopped")
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def aclose(self, reason: str) -> None:
        """End every session (recorded with ``reason``) and close the upstream client."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        for sid in list(self._sessions):
            self._end(sid, reason)
        if self._sessionless is not None:
            self._sessionless.end(reason)
            self._sessionless = None
        await self._http.aclose()

    # -- sessions --------------------------------------------------------------------------------

    def _new_session(self, upstream_id: str | None) -> Session:
        ident = Identity(self.o.tenant, self.o.agent, str(uuid.uuid4()), "http", target=self.target)
        if upstream_id:
            ident.upstream_session = _digest(upstream_id)
        return Session(ident, self.sink, self.guard, self.reviewer, self.catalog)

    def _session_for(self, sid: str | None, msg: Message | None) -> Session:
        if sid:
            tracked = self._sessions.get(sid)
            if tracked is None:
                if len(self._sessions) >= self.o.max_sessions:
                    self._end(min(self._sessions, key=lambda k: self._sessions[k].last_used), "too many sessions")
                tracked = self._sessions[sid] = _Tracked(self._new_session(sid))
            tracked.last_used = time.monotonic()
            return tracked.session
        if isinstance(msg, JSONRPCRequest) and msg.method == "initialize":
            return self._new_session(None)  # named by the answer's Mcp-Session-Id
        if self._sessionless is None:
            # Stateless servers and clients without a handshake: one session for all.
            self._sessionless = self._new_session(None)
        return self._sessionless

    def _adopt(self, session: Session, sid: str | None) -> None:
        """An initialize answered with an Mcp-Session-Id: that id names ``session`` now."""
        if sid and sid not in self._sessions:
            session.ident.upstream_session = _digest(sid)
            self._sessions[sid] = _Tracked(session)
        elif not sid and session is not self._sessionless:
            if self._sessionless is not None:
                self._sessionless.end("a new client without a session took its place")
            self._sessionless = session

    def _end(self, sid: str, reason: str, outcome: str = "success") -> None:
        tracked = self._sessions.pop(sid, None)
        if tracked is not None:
            tracked.session.end(reason, outcome=outcome)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(min(60.0, self.o.idle_timeout))
            cutoff = time.monotonic() - self.o.idle_timeout
            for sid in [k for k, t in self._sessions.items() if t.last_used < cutoff]:
                self._end(sid, f"no request for {self.o.idle_timeout:g} seconds")

    # -- POST: one message -----------------------------------------------------------------------

    async def _post(self, request: Request) -> Response:
        body = await _bounded_body(request, self.o.max_message)
        sid = request.headers.get(SESSION_ID)
        if isinstance(body, Oversize):
            rid, method = head_fields(body.prefix)
            why = f"message of {body.size} bytes is over the gateway's limit of {self.o.max_message}"
            self._session_for(sid, None).refused(rid, method, INVALID_REQUEST, why)
            return _rpc_error(rid, INVALID_REQUEST, why, 413)
        try:
            msg = parse(body)
        except BadMessage as exc:
            self._session_for(sid, None).refused(exc.request_id, None, exc.code, exc.message)
            return _rpc_error(exc.request_id, exc.code, exc.message, 400)
        session = self._session_for(sid, msg)
        decision = session.from_client(msg)
        if not isinstance(decision, Forward | Answer):
            decision = await _unless_disconnected(request, decision, session, msg)
        if isinstance(decision, Answer):
            return Response(decision.data, 200, media_type="application/json")
        rid = msg.id if isinstance(msg, JSONRPCRequest) else None
        try:
            upstream = await self._send(request, body)
        except httpx.HTTPError as exc:
            why = f"the MCP server could not be reached: {type(exc).__name__}: {exc}"[:512]
            if rid is not None:
                session.answered(rid, INTERNAL_ERROR, why)
            if sid:
                self._end(sid, why, "error")
            return _rpc_error(rid, INTERNAL_ERROR, why, BAD_GATEWAY)
        if isinstance(msg, JSONRPCRequest) and msg.method == "initialize" and upstream.status_code < 300:
            self._adopt(session, upstream.headers.get(SESSION_ID))
        if sid and upstream.status_code == 404:
            self._end(sid, "the server no longer knows the session")
        return await self._relay(upstream, session, rid)

    async def _send(self, request: Request, body: bytes | None) -> httpx.Response:
        req = self._http.build_request(
            request.method, request.url.path, params=request.url.query.encode(),
            headers=_forward_headers(request.headers.items()), content=body,
        )  # fmt: skip
        return await self._http.send(req, stream=True)

    async def _send_or_fail(self, request: Request, body: bytes | None) -> httpx.Response | Response:
        """The upstream's answer, or a 502 saying it could not be reached."""
        try:
            return await self._send(request, body)
        except httpx.HTTPError as exc:
            return Response(f"the MCP server could not be reached: {type(exc).__name__}", BAD_GATEWAY)

    async def _relay(self, upstream: httpx.Response, session: Session, rid: Any) -> Response:
        """The upstream answer, read as it goes: a JSON body (bounded) or an event stream."""
        headers = _back_headers(upstream.headers.items())
        ctype = upstream.headers.get("content-type", "")
        if ctype.startswith("text/event-stream"):
            return StreamingResponse(self._events(upstream, session), upstream.status_code, headers)
        body = await _bounded_upstream(upstream, self.o.max_message)
        if isinstance(body, Oversize):
            why = f"the server's answer of {body.size} bytes is over the gateway's limit of {self.o.max_message}"
            if rid is not None:
                session.answered(rid, INTERNAL_ERROR, why)
            return _rpc_error(rid, INTERNAL_ERROR, why, BAD_GATEWAY)
        if ctype.startswith("application/json") and body:
            self._observe(session, body)
        return Response(body, upstream.status_code, headers)

    async def _events(self, upstream: httpx.Response, session: Session) -> AsyncIterator[bytes]:
        parser = SSEParser(self.o.max_message)
        try:
            async for chunk in upstream.aiter_raw():
                for item in parser.feed(chunk):
                    if isinstance(item, Oversize):
                        yield self._oversize_event(session, item)
                        continue
                    if item.data:
                        self._observe(session, item.data)
                    yield item.encode()
        except httpx.HTTPError as exc:
            log.warning("gateway: the server's event stream broke: %s", exc)
        finally:
            await upstream.aclose()

    def _oversize_event(self, session: Session, item: Oversize) -> bytes:
        error = session.server_oversize(item, self.o.max_message)
        return b": dropped an oversize message\n\n" if error is None else SSEEvent(error, "message").encode()

    def _observe(self, session: Session, data: bytes) -> None:
        msg = session.read_server(data)
        if msg is not None:
            session.from_server(msg, len(data))

    # -- GET (the server's stream), DELETE (end of session), anything else -----------------------

    async def _get(self, request: Request) -> Response:
        sid = request.headers.get(SESSION_ID)
        upstream = await self._send_or_fail(request, None)
        if isinstance(upstream, Response):
            return upstream
        return await self._relay(upstream, self._session_for(sid, None), None)

    async def _delete(self, request: Request) -> Response:
        sid = request.headers.get(SESSION_ID)
        upstream = await self._send_or_fail(request, None)
        if isinstance(upstream, Response):
            return upstream
        if sid and (upstream.status_code < 300 or upstream.status_code == 404):
            self._end(sid, "the client ended the session")
        body = await _bounded_upstream(upstream, 64 * 1024)
        return Response(b"" if isinstance(body, Oversize) else body, upstream.status_code,
                        _back_headers(upstream.headers.items()))  # fmt: skip

    async def _passthrough(self, request: Request) -> Response:
        body = await _bounded_body(request, self.o.max_message)
        if isinstance(body, Oversize):
            return Response("request too large", 413)
        upstream = await self._send_or_fail(request, body)
        if isinstance(upstream, Response):
            return upstream
        return StreamingResponse(_raw(upstream), upstream.status_code, _back_headers(upstream.headers.items()))


async def _unless_disconnected(
    request: Request, hold: Any, session: Session, msg: Message
) -> Forward | Answer:
    """Wait for a held call's approval, unless the client hangs up first (then the call is
    recorded as cancelled and nothing is forwarded)."""
    waiting = asyncio.ensure_future(hold)
    gone = asyncio.ensure_future(_disconnected(request))
    done, _ = await asyncio.wait({waiting, gone}, return_when=asyncio.FIRST_COMPLETED)
    if waiting in done:
        gone.cancel()
        result: Forward | Answer = waiting.result()
        return result
    waiting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
    if isinstance(msg, JSONRPCRequest):
        session.cancel(msg.id)
    raise ClientDisconnect()


async def _disconnected(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def _bounded_body(request: Request, limit: int) -> bytes | Oversize:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        size = int(declared)
        prefix = b""
        async for chunk in request.stream():  # read through: the connection stays usable
            if len(prefix) < 64 * 1024:
                prefix += chunk[: 64 * 1024 - len(prefix)]
        return Oversize(size, prefix)
    buf = bytearray()
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total <= limit:
            buf += chunk
        elif len(buf) > 64 * 1024:
            del buf[64 * 1024 :]
    return bytes(buf) if total <= limit else Oversize(total, bytes(buf[: 64 * 1024]))


async def _bounded_upstream(upstream: httpx.Response, limit: int) -> bytes | Oversize:
    buf = bytearray()
    total = 0
    try:
        async for chunk in upstream.aiter_raw():
            total += len(chunk)
            if total <= limit:
                buf += chunk
            elif len(buf) > 64 * 1024:
                del buf[64 * 1024 :]
    finally:
        await upstream.aclose()
    return bytes(buf) if total <= limit else Oversize(total, bytes(buf[: 64 * 1024]))


async def _raw(upstream: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in upstream.aiter_raw():
            yield chunk
    finally:
        await upstream.aclose()


def _forward_headers(items: Any) -> list[tuple[str, str]]:
    return [(k, v) for k, v in items if k.lower() not in _HOP]


def _back_headers(items: Any) -> dict[str, str]:
    return {k: v for k, v in items if k.lower() not in _HOP}


def _rpc_error(rid: Any, code: int, message: str, status: int) -> Response:
    return Response(error_bytes(rid, code, message), status, media_type="application/json")


def _digest(session_id: str) -> str:
    """The session id stands for a credential on some servers: events keep a digest."""
    return hashlib.sha256(session_id.encode()).hexdigest()[:16]


def _loopback_host(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def serve_http(
    listen: str,
    upstream: str,
    *,
    tenant: str,
    agent: str | None,
    sink: EventSink,
    max_message: int = DEFAULT_MAX_MESSAGE,
    guard: Guard | None = None,
    reviewer: Reviewer | None = None,
) -> None:
    """Run the HTTP gateway on ``listen`` (HOST:PORT) until SIGTERM/SIGINT."""
    import uvicorn

    host, port = parse_listen(listen)
    loopback = _loopback_host(host)
    app = HttpGateway(
        HttpOptions(upstream, tenant, agent, max_message, loopback_only=loopback), sink, guard, reviewer
    )
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on",
                            timeout_graceful_shutdown=5)  # fmt: skip
    # uvicorn stops gracefully on SIGTERM/SIGINT, then raises the signal again for the
    # handler it found: make that an orderly exit, so the caller still delivers the events.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_quietly)
    uvicorn.Server(config).run()


def _exit_quietly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def check_upstream(url: str) -> SplitResult:
    up = urlsplit(url)
    if up.scheme not in ("http", "https") or not up.hostname:
        raise ValueError(f"--upstream must be an http:// or https:// URL, not {url!r}")
    return up


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--listen must be HOST:PORT, e.g. 127.0.0.1:8800, not {listen!r}")
    return host.strip("[]") or "127.0.0.1", int(port)
