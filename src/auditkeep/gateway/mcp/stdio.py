"""The stdio transport: the gateway runs the MCP server as its child and stands in its
place on the agent's side, one newline-delimited JSON-RPC message at a time.

Each message is read with a size bound, parsed and validated, shown to the session, and
forwarded as the bytes received. What the gateway cannot read it answers itself with a
JSON-RPC error; a server that dies leaves the agent with an error for every request in
flight and a ``mcp.session.end`` event that says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import sys
from dataclasses import dataclass
from typing import IO, Any

from auditkeep.errors import TransportError
from auditkeep.gateway.mcp.framing import DEFAULT_MAX_MESSAGE, Oversize, head_fields, read_message
from auditkeep.gateway.mcp.messages import (
    INVALID_REQUEST,
    BadMessage,
    JSONRPCNotification,
    JSONRPCRequest,
    error_bytes,
    parse,
)
from auditkeep.gateway.mcp.session import Answer, Forward, Hold, Session

log = logging.getLogger("auditkeep.gateway")

STOP_GRACE = 1.0
"""Seconds the server gets to exit after its stdin closes, before SIGTERM (then SIGKILL)."""


@dataclass
class Ending:
    reason: str
    outcome: str = "success"
    exit_code: int = 0


class _ClientOut:
    """Lines to the agent: one write per message, so lines from different tasks never mix."""

    def __init__(self, writer: asyncio.StreamWriter | IO[bytes]) -> None:
        self.w = writer
        self.gone = False

    async def send(self, data: bytes) -> None:
        if self.gone:
            return
        try:
            if isinstance(self.w, asyncio.StreamWriter):
                self.w.write(data + b"\n")
                await self.w.drain()
            else:  # a regular file: writes do not block for long
                self.w.write(data + b"\n")
                self.w.flush()
        except (ConnectionError, OSError, RuntimeError):  # asyncio's RuntimeError: writing after the transport closed
            self.gone = True


class StdioProxy:
    """One agent, one server process, one session."""

    def __init__(self, session: Session, command: list[str], max_message: int = DEFAULT_MAX_MESSAGE) -> None:
        self.session = session
        self.command = command
        self.limit = max_message
        self._holds: dict[Any, asyncio.Task[None]] = {}  # held calls, by request id
        self._stop: asyncio.Future[str] | None = None

    async def run(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter | IO[bytes]) -> int:
        """Proxy until one side ends; returns the exit code for the gateway."""
        out = _ClientOut(client_out)
        loop = asyncio.get_running_loop()
        self._stop = loop.create_future()
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                limit=self.limit + 1,
            )  # fmt: skip
        except OSError as exc:
            reason = f"the MCP server could not be started: {exc}"
            self.session.end(reason, outcome="error")
            raise ServerStartError(reason) from exc
        assert proc.stdin is not None and proc.stdout is not None
        up = asyncio.create_task(self._client_to_server(client_in, proc, out))
        down = asyncio.create_task(self._server_to_client(proc.stdout, out))
        stop = self._stop
        waits: set[asyncio.Future[Any]] = {up, down, stop}
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if stop in done:
            ending = Ending(f"the gateway was stopped ({stop.result()})", "success", 0)
            await _terminate(proc)
        elif down in done:  # the server closed its stdout: it exited or is about to
            rc = await _wait_exit(proc)
            ending = Ending(_exit_reason(rc), "success" if rc == 0 else "error", rc if rc >= 0 else 128 - rc)
        else:  # the agent closed its side: let the server finish what it has, then stop it
            with contextlib.suppress(OSError):
                proc.stdin.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(down), STOP_GRACE)
            await _terminate(proc)
            ending = Ending("the client closed the connection", "success", 0)
        holds = list(self._holds.values())
        for task in (up, down, *holds):
            task.cancel()
        await asyncio.gather(up, down, *holds, return_exceptions=True)
        unanswered = None if ending.outcome == "success" else f"{ending.reason} before answering"
        for answer in self.session.end(ending.reason, outcome=ending.outcome, unanswered=unanswered):
            await out.send(answer)
        return ending.exit_code

    def stop(self, why: str) -> None:
        """Stop proxying (a signal): the server is terminated, the session recorded as ended."""
        if self._stop is not None and not self._stop.done():
            self._stop.set_result(why)

    async def _client_to_server(
        self, reader: asyncio.StreamReader, proc: asyncio.subprocess.Process, out: _ClientOut
    ) -> None:
        assert proc.stdin is not None
        server_in = proc.stdin
        session = self.session
        while True:
            item = await read_message(reader, self.limit)
            if item is None:
                return
            if isinstance(item, Oversize):
                rid, method = head_fields(item.prefix)
                why = f"message of {item.size} bytes is over the gateway's limit of {self.limit}"
                session.refused(rid, method, INVALID_REQUEST, why)
                await out.send(error_bytes(rid, INVALID_REQUEST, why))
                continue
            if not item.strip():
                continue
            try:
                msg = parse(item)
            except BadMessage as exc:
                session.refused(exc.request_id, None, exc.code, exc.message)
                await out.send(error_bytes(exc.request_id, exc.code, exc.message))
                continue
            decision = session.from_client(msg)
            if isinstance(msg, JSONRPCNotification) and msg.method == "notifications/cancelled":
                held = self._holds.pop((msg.params or {}).get("requestId"), None)
                if held is not None:  # the client gave up on a call awaiting approval
                    held.cancel()
            if isinstance(decision, Forward):
                if not await _send(server_in, item):
                    continue  # the server is gone: the other pump ends the session
            elif isinstance(decision, Answer):
                await out.send(decision.data)
            elif isinstance(msg, JSONRPCRequest):
                rid = msg.id
                task = asyncio.create_task(self._held(decision, item, server_in, out))
                self._holds[rid] = task
                task.add_done_callback(functools.partial(self._released, rid))

    def _released(self, rid: Any, task: asyncio.Task[None]) -> None:
        if self._holds.get(rid) is task:
            del self._holds[rid]

    async def _held(self, hold: Hold, line: bytes, server_in: asyncio.StreamWriter, out: _ClientOut) -> None:
        decision = await hold
        if isinstance(decision, Answer):
            await out.send(decision.data)
        else:
            await _send(server_in, line)

    async def _server_to_client(self, reader: asyncio.StreamReader, out: _ClientOut) -> None:
        session = self.session
        while True:
            item = await read_message(reader, self.limit)
            if item is None:
                return
            if isinstance(item, Oversize):
                error = session.server_oversize(item, self.limit)
                if error is not None:
                    await out.send(error)
                continue
            if not item.strip():
                continue
            msg = session.read_server(item)
            if msg is None:
                continue
            await out.send(item)
            session.from_server(msg, len(item))


class ServerStartError(TransportError, RuntimeError):
    """The command given for the MCP server could not be run."""


async def _send(w: asyncio.StreamWriter, line: bytes) -> bool:
    try:
        w.write(line + b"\n")
        await w.drain()
    except (ConnectionError, OSError, RuntimeError):  # asyncio's RuntimeError: writing after the transport closed
        return False
    return True


async def _wait_exit(proc: asyncio.subprocess.Process) -> int:
    try:
        return await asyncio.wait_for(proc.wait(), STOP_GRACE)
    except TimeoutError:
        await _terminate(proc)
        return proc.returncode if proc.returncode is not None else -signal.SIGKILL


async def _terminate(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is not None:
        return
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    for sig, wait in ((None, 0.2), (signal.SIGTERM, STOP_GRACE), (signal.SIGKILL, 5.0)):
        if sig is not None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
        try:
            await asyncio.wait_for(proc.wait(), wait)
            return
        except TimeoutError:
            continue


def _exit_reason(rc: int) -> str:
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        return f"the MCP server was killed by {name}"
    return f"the MCP server exited with code {rc}"


async def std_streams(limit: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter | IO[bytes]]:
    """This process's stdin and stdout as asyncio streams (stdout stays a plain file when it
    is a regular file, which asyncio cannot watch)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit + 1)
    stdin = os.fdopen(os.dup(sys.stdin.fileno()), "rb", buffering=0)
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), stdin)
    except ValueError:  # a regular file: read it from a thread
        asyncio.get_running_loop().run_in_executor(None, _feed, loop, reader, stdin)
    stdout = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    try:
        transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, stdout)
    except ValueError:
        return reader, stdout
    return reader, asyncio.StreamWriter(transport, protocol, None, loop)


def _feed(loop: asyncio.AbstractEventLoop, reader: asyncio.StreamReader, f: IO[bytes]) -> None:
    while chunk := f.read(64 * 1024):
        loop.call_soon_threadsafe(reader.feed_data, chunk)
    loop.call_soon_threadsafe(reader.feed_eof)
