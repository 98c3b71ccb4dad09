"""One client connection through the gateway: startup and authentication passed through,
then two pumps (client → server, server → client) that forward bytes as they come and read
only the messages they must.

The client pump notes what each request expects back (``_expect``, in order); the server
pump matches the answers to it, so every statement — simple or extended protocol, also
pipelined — gets its rows, its CommandComplete tag or its error. Messages the gateway does
not read (CopyData, large DataRows when nothing is masked) are forwarded in pieces as they
arrive, never held whole.

A statement the guardrails deny is replaced, on its way to the server, by a ``DO`` block
that raises the refusal with SQLSTATE 42501: the server itself answers, so the client sees
an ordinary error and a transaction block fails exactly as it would have. A statement held
for review waits (the client's connection with it) until it is approved, rejected, or its
request expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from auditkeep.gateway.postgres import wire
from auditkeep.gateway.postgres.connect import SessionStartup
from auditkeep.gateway.postgres.events import (
    Run,
    SessionInfo,
    session_end,
)
from auditkeep.gateway.postgres.masking import RowPlan, mask_row, plan
from auditkeep.gateway.postgres.pipe import HIGH_WATER, Pipe
from auditkeep.gateway.postgres.rules import Masking, QuerySubject
from auditkeep.gateway.postgres.sql import Statement, quick_statement
from auditkeep.gateway.postgres.wire import ProtocolViolation as ProtocolViolation  # its old home

if TYPE_CHECKING:
    from auditkeep.gateway.postgres.server import Gateway

log = logging.getLogger("auditkeep.gateway.postgres")

# Messages from the client the gateway reads whole; the rest is forwarded as it comes.
CLIENT_READ = frozenset(b"QPBEDCSHXF")
# Messages from the server it reads whole (DataRow only when a result is masked).
SERVER_READ = frozenset(b"123tTnCIsEZKSNGHWV")


@dataclass(slots=True)
class Expect:
    """An answer the server owes: to ``parse``, ``bind``, ``describe``, ``close``,
    ``execute``, ``sync``, ``query`` (simple protocol), or ``swallow`` (a message the
    gateway sent on its own, whose answer the client must not see)."""

    kind: str
    run: Run | None = None
    runs: list[Run] = field(default_factory=list)  # simple query: its statements, in order (not for execute)
    name: str = ""  # describe/close: the statement or portal; prefixed S/P
    denied: bool = False


# The answers that carry nothing of their own are one shared object each: a statement's
# round trip then allocates only what it must (its Run, and the Expect of its Execute).
_PARSE, _BIND, _CLOSE, _SYNC, _SWALLOW = (Expect(k) for k in ("parse", "bind", "close", "sync", "swallow"))
_NO_RUNS: list[Run] = []  # the runs of an Execute's Expect (its one Run is ``run``): never added to


@dataclass(slots=True)
class Portal:
    statement: str
    bind: bytes  # the Bind's body: parameters are decoded only when the event is built


class Session(SessionStartup):
    """One client connection: its start-up (:class:`SessionStartup`), then the two pumps."""

    def __init__(self, gw: Gateway, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.gw = gw
        self.c_reader, self.c_writer = reader, writer
        self.s_reader: asyncio.StreamReader | None = None
        self.s_writer: asyncio.StreamWriter | None = None
        peer = writer.get_extra_info("peername")
        client = peer[0] if isinstance(peer, tuple) else ""
        self.info = SessionInfo(uuid.uuid4().hex[:16], "", "", "", client, started_ns=time.time_ns())
        self._expect: deque[Expect] = deque()
        self._statements: dict[str, tuple[str, tuple[int, ...]]] = {}  # name -> (SQL, parameter types)
        self._portals: dict[str, Portal] = {}
        self._descriptions: dict[str, list[wire.Column]] = {}  # "S<name>" / "P<name>" -> columns
        self._row_plan: RowPlan | None = None  # masking of the result being sent
        self._planned = False  # whether _row_plan is decided for the current result
        self._mask_for: tuple[object, Masking | None] = (None, None)  # (rule set, masking that applies)
        self._dropping = False  # after a denied Execute: the client's messages up to Sync
        self._seq = 0
        self._held: list[Run] = []  # statements waiting for approval when the client left
        self._started = False
        self._end_reason = "client"
        self._done: asyncio.Future[str] | None = None  # set when forwarding ends
        self._switched = False  # the transports carry Pipes, no longer the streams
        self.client_gone = False  # the client closed its side
        self.txn = "I"

    # -- the whole life of a connection --------------------------------------------------

    async def run(self) -> None:
        gw = self.gw
        try:
            startup = await self._negotiate()
            if startup is None:
                return
            if not await self._connect_and_authenticate(startup):
                return
            await self._pumps()
        except (ConnectionError, asyncio.IncompleteReadError, ProtocolViolation, OSError, ValueError, struct.error) as exc:
            self._end_reason = "error" if not isinstance(exc, asyncio.IncompleteReadError) else self._end_reason
            log.debug("session %s ended: %s", self.info.id, exc)
        finally:
            if self._started:
                self._abandon()
                gw.emit(session_end(self.info, time.time_ns(), self._end_reason))
                gw.metrics.active.dec()
            for w in (self.c_writer, self.s_writer):
                if w is not None:
                    w.close()
            if not self._switched:  # once the pipes took over, the streams see no close
                for w in (self.c_writer, self.s_writer):
                    if w is not None:
                        with contextlib.suppress(Exception):
                            await asyncio.wait_for(w.wait_closed(), 1)

    # -- the two directions ------------------------------------------------------------

    async def _pumps(self) -> None:
        """Forward both ways until one side ends. Each direction is a :class:`Pipe`
        protocol on its transport: bytes are handled in the loop's own read callback and
        written straight on, with no stream buffer or task hand-off per chunk."""
        assert self.s_writer is not None and self.s_reader is not None
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        c_tr = cast(asyncio.Transport, self.c_writer.transport)
        s_tr = cast(asyncio.Transport, self.s_writer.transport)
        up = Pipe(self, c_tr, s_tr, CLIENT_READ, self._on_client, self._client_passthrough, "client")
        down = Pipe(self, s_tr, c_tr, SERVER_READ, self._on_server, self._server_passthrough, "server", self._server_reads)
        up.peer, down.peer = down, up
        self._switched = True
        for reader, tr, pipe in ((self.c_reader, c_tr, up), (self.s_reader, s_tr, down)):
            # What the start-up's stream read ahead (a client may pipeline its first query)
            # goes first; the stream is not read again.
            left = bytes(getattr(reader, "_buffer", b""))
            tr.set_protocol(pipe)
            tr.set_write_buffer_limits(high=HIGH_WATER)
            if left:
                pipe.data_received(left)
            if reader.at_eof() or getattr(reader, "_eof", False):
                pipe.eof_received()
            if not tr.is_closing() and not tr.is_reading():
                tr.resume_reading()
        try:
            self._end_reason = await self._done
        finally:
            for pipe in (up, down):
                if pipe.task is not None:
                    pipe.task.cancel()
                    with contextlib.suppress(BaseException):
                        await pipe.task

    def _end(self, side: str, exc: BaseException | None = None) -> None:
        """One direction ended (``side`` closed, or ``exc`` was raised handling it)."""
        done = self._done
        if done is None or done.done():
            return
        if exc is not None and not isinstance(exc, (ConnectionError, asyncio.IncompleteReadError)):
            done.set_exception(exc)
        else:
            done.set_result("server" if side == "server" and exc is None else "client")

    # -- client → server -----------------------------------------------------------------

    def _client_passthrough(self, kind: int) -> None:
        if self._dropping and kind != ord("S"):
            raise ProtocolViolation("a large message after a refused statement")  # pragma: no cover

    def _on_client(self, kind: int, body: bytes) -> Awaitable[bytes | None] | bytes | None:
        # Kinds as integers, most frequent first (Bind, Execute, Sync, Query): this runs for
        # every message a client sends.
        if self._dropping:
            if kind == 83:  # Sync
                self._dropping = False
                self._expect.append(_SYNC)
                return None
            if kind == 88:  # Terminate
                return None
            return b""  # the server would skip it too: it is past the refused statement
        if kind == 66:  # Bind
            end = body.index(0)  # the portal; the rest is read when the event is built
            portal = body[:end].decode("utf-8", "replace")
            statement = body[end + 1 : body.index(0, end + 1)].decode("utf-8", "replace")
            portals = self._portals
            portals[portal] = Portal(statement, body)
            if len(portals) > MAX_NAMED:
                _bound(portals)
            self._expect.append(_BIND)
            descriptions = self._descriptions
            if descriptions:
                _bound(descriptions)
                if "S" + statement in descriptions:
                    descriptions["P" + portal] = descriptions["S" + statement]
                else:
                    descriptions.pop("P" + portal, None)
        elif kind == 69:  # Execute
            return self._on_execute(body)
        elif kind == 83:  # Sync
            self._expect.append(_SYNC)
        elif kind == 81:  # Query
            return self._on_query(body)
        elif kind == 80:  # Parse
            msg = wire.parse_parse(body)
            self._statements[msg.name] = (msg.query, msg.param_types)
            _bound(self._statements)
            self._expect.append(_PARSE)
        elif kind == 68:  # Describe
            what = chr(body[0]) if body else "S"
            name, _ = wire.cstring(body, 1)
            self._expect.append(Expect("describe", name=what + name))
        elif kind == 67:  # Close
            what = chr(body[0]) if body else "S"
            name, _ = wire.cstring(body, 1)
            if what == "S":
                self._statements.pop(name, None)
            else:
                self._portals.pop(name, None)
            self._expect.append(_CLOSE)
        elif kind == 70:  # FunctionCall
            self._expect.append(Expect("query", runs=[]))
        elif kind == 88:  # Terminate
            self._end_reason = "client"
        return None

    def _subject(self, st: Statement) -> QuerySubject:
        i = self.info
        return QuerySubject(i.user, i.roles, i.database, i.application, i.client, st)

    def _new_run(self, st: Statement, protocol: str, portal: Portal | None = None, types: tuple[int, ...] = ()) -> Run:
        self._seq += 1
        return Run(self._seq, st, protocol, time.time_ns(), time.perf_counter(), None,
                   portal.bind if portal is not None else None, types)  # fmt: skip

    def _verdict(self, stmts: tuple[Statement, ...]) -> tuple[str, str | None, str]:
        """The strictest verdict over the statements: (action, rule, message)."""
        rules = self.gw.rules()
        if rules is None:
            return "allow", None, ""
        best: tuple[str, str | None, str] = ("allow", None, "")
        rank = {"allow": 0, "review": 1, "deny": 2}
        for st in stmts:
            v = rules.decide(self._subject(st))
            if rank[v.action] > rank[best[0]]:
                best = (v.action, v.rule_name, v.message)
        return best

    def _on_query(self, body: bytes) -> Awaitable[bytes | None] | bytes | None:
        sql = body[: body.index(0)].decode("utf-8", "replace")
        # With no guardrails nothing here needs the parse: a plain statement is parsed
        # where its event is built (the ledger's process), off the forwarding loop.
        quick = quick_statement(sql) if self.gw.rules() is None else None
        if quick is not None:  # one statement, allowed: its Run and its Expect, nothing else
            self._expect.append(Expect("query", None, [self._new_run(quick, "simple")]))
            return None
        stmts = self.gw.analyzer.analyze(sql)
        runs = [self._new_run(st, "simple") for st in stmts]
        action, rule, message = self._verdict(stmts)
        item = Expect("query", runs=runs)
        if action == "allow":
            self._expect.append(item)
            return None
        for r in runs:
            r.rule = rule
        if action == "deny":
            return self._deny_query(item, message)
        shown = "; ".join(r.statement.text for r in runs)
        return self._review(item, runs, message, shown, lambda: self._expect.append(item))

    def _deny_query(self, item: Expect, message: str) -> bytes:
        item.denied = True
        for r in item.runs:
            r.outcome, r.error = "denied", message
        self._expect.append(item)
        self.gw.metrics.denials.inc()
        return wire.query(wire.refusal_sql(message))

    def _on_execute(self, body: bytes) -> Awaitable[bytes | None] | bytes | None:
        portal_name = body[: body.index(0)].decode("utf-8", "replace")
        portal = self._portals.get(portal_name)
        known = self._statements.get(portal.statement) if portal is not None else None
        sql, types = known if known is not None else ("", ())
        stmts = self.gw.analyzer.analyze(sql) if sql else ()
        st = stmts[0] if stmts else Statement(sql, "unknown", "")
        run = self._new_run(st, "extended", portal, types)
        item = Expect("execute", run, _NO_RUNS, "P" + portal_name)
        if known is None and self.gw.rules() is not None:
            # Not a statement this session prepared through the gateway (or one it forgot):
            # the rules cannot be checked, so it does not run.
            action, rule, message = "deny", None, "the gateway does not know this prepared statement; prepare it again"
        else:
            action, rule, message = self._verdict((st,)) if stmts else ("allow", None, "")
        if action == "allow":
            self._expect.append(item)
            return None
        run.rule = rule
        if action == "deny":
            return self._deny_execute(item, message)
        return self._review(item, [run], message, st.text, lambda: self._expect.append(item))

    def _deny_execute(self, item: Expect, message: str) -> bytes:
        assert item.run is not None
        item.denied = True
        item.run.outcome, item.run.error = "denied", message
        # Our own unnamed statement raises the refusal; the client's messages up to Sync are dropped.
        self._expect.append(_SWALLOW)
        self._expect.append(_SWALLOW)
        self._expect.append(item)
        self._dropping = True
        self.gw.metrics.denials.inc()
        return wire.parse_msg(wire.refusal_sql(message)) + wire.bind_msg() + wire.execute_msg()

    async def _review(self, item: Expect, runs: list[Run], message: str, sql: str, allow: Callable[[], None]) -> bytes | None:
        """Hold the statement until another person decides (the client waits with it)."""
        rules = self.gw.rules()
        timeout = rules.review_timeout if rules is not None else 300.0
        rule = runs[0].rule if runs else None
        waiting = asyncio.ensure_future(self.gw.await_approval(self.info, sql, rule, timeout))
        while not waiting.done():
            await asyncio.wait({waiting}, timeout=0.5)
            if not waiting.done() and (self.client_gone or self.c_reader.at_eof()):  # the client left
                waiting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiting
                for r in runs:
                    r.approval = {"status": "abandoned"}
                self._held = runs
                raise ConnectionResetError("the client left while its statement waited for approval")
        req, final = waiting.result()
        for r in runs:
            r.approval = {"id": req.id if req else None, "status": final.status if final else "error"}
            if final is not None and final.decided_by:
                r.approval = {**r.approval, "by": final.decided_by}
        if final is not None and final.status == "approved":
            allow()
            return None
        if final is None:
            why = "the approval service could not be reached"
        elif final.status == "rejected":
            why = f"rejected by {final.decided_by}" + (f": {final.note}" if final.note else "")
        else:
            why = f"no approval within {int(timeout)}s"
        text = f"{message}; {why} (approval {req.id})" if req is not None else f"{message}; {why}"
        if item.kind == "query":
            return self._deny_query(item, text)
        return self._deny_execute(item, text)

    def _abandon(self) -> None:
        """Record the statements still in flight when the session ended: sent to the server
        (or held for review) with no answer seen — the server may well have run them."""
        runs = list(self._held)
        for item in self._expect:
            if item.kind == "execute" and item.run is not None:
                runs.append(item.run)
            elif item.kind == "query":
                runs.extend(item.runs)
        self._expect.clear()
        self._held = []
        for r in runs:
            if r.outcome == "success":
                r.outcome = "unknown"
                r.error = "the session ended before the server's answer was seen" if not r.approval else \
                    "the client left while the statement waited for approval"
            self._finish(r)

    # -- server → client -----------------------------------------------------------------

    def _server_reads(self, kind: int) -> bool:
        """Whether a message of a kind not in SERVER_READ is read whole: a DataRow, when its
        result is masked."""
        if kind != 68:
            return False
        if not self._planned:
            self._planned = True
            masking = self._masking()
            if masking is None:
                return False
            # Rows of an Execute whose RowDescription came earlier (a described prepared
            # statement); with no description at all every value is searched.
            head = self._expect[0] if self._expect else None
            cols = self._descriptions.get(head.name) if head is not None and head.kind == "execute" else None
            self._row_plan = plan(masking, cols) if cols is not None else RowPlan((), tuple(range(1600)))
        return self._row_plan is not None

    def _masking(self) -> Masking | None:
        """The masking that applies to this session's user now (the rules may be reloaded)."""
        rules = self.gw.rules()
        if rules is None:
            return None
        if self._mask_for[0] is not rules:
            m = rules.sections.get("masking")
            applies = m if isinstance(m, Masking) and m.applies_to(self.info.user, self.info.roles) else None
            self._mask_for = (rules, applies)
        return self._mask_for[1]

    def _server_passthrough(self, kind: int) -> None:
        if kind == 68:  # DataRow
            head = self._expect[0] if self._expect else None
            if head is not None:
                run = head.run if head.kind == "execute" else (head.runs[0] if head.runs else None)
                if run is not None:
                    run.rows += 1

    def _current(self) -> Run | None:
        head = self._expect[0] if self._expect else None
        if head is None:
            return None
        if head.kind == "execute":
            return head.run
        if head.kind == "query" and head.runs:
            return head.runs[0]
        return None

    def _finish(self, run: Run) -> None:
        self.info.statements += 1
        self.gw.finished(self.info, run, time.perf_counter() - run.t0)

    def _on_server(self, kind: int, body: bytes) -> bytes | None:
        ex = self._expect
        head = ex[0] if ex else None
        if kind in (67, 73, 115):  # CommandComplete, EmptyQueryResponse, PortalSuspended
            self._row_plan, self._planned = None, False
            if head is None:
                return None
            if head.kind == "execute" and head.run is not None:
                run = head.run
                if kind == 67:
                    run.tag = wire.cstring(body, 0)[0]
                    rows = wire.command_rows(run.tag)
                    if rows is not None:
                        run.rows = rows
                run.suspended = kind == 115
                ex.popleft()
                self._finish(run)
            elif head.kind == "query" and head.runs:
                run = head.runs.pop(0)
                if kind == 67:
                    run.tag = wire.cstring(body, 0)[0]
                    rows = wire.command_rows(run.tag)
                    if rows is not None:
                        run.rows = rows
                self._finish(run)
            return None
        if kind == 90:  # ReadyForQuery
            self.txn = chr(body[0]) if body else "I"
            self._row_plan, self._planned = None, False
            while ex:
                if ex.popleft().kind in ("sync", "query"):
                    break
            return None
        if kind in (49, 50, 51):  # ParseComplete, BindComplete, CloseComplete
            if head is not None and head.kind in ("parse", "bind", "close", "swallow"):
                ex.popleft()
                return b"" if head.kind == "swallow" else None
            return None
        if kind == 84:  # RowDescription: read only when results may be masked
            masking = self._masking()
            cols = wire.parse_row_description(body) if masking is not None else None
            if head is not None and head.kind == "describe":
                if cols is not None:
                    self._descriptions[head.name] = cols
                else:  # masking that comes with a reload later searches every value of it
                    self._descriptions.pop(head.name, None)
                ex.popleft()
            self._row_plan = plan(masking, cols) if masking is not None and cols is not None else None
            self._planned = True
            return None
        if kind == 68:  # DataRow, read whole because the result is masked
            current = self._current()
            if current is not None:
                current.rows += 1
            masking = self._masking()
            if masking is None or self._row_plan is None:
                return None
            return mask_row(masking, self._row_plan, body)
        if kind == 110:  # NoData
            if head is not None and head.kind == "describe":
                self._descriptions[head.name] = []
                ex.popleft()
            self._row_plan, self._planned = None, False
            return None
        if kind == 116:  # ParameterDescription: the describe goes on
            return None
        if kind == 69:  # ErrorResponse
            self._row_plan, self._planned = None, False
            fields = wire.error_fields(body)
            denied = head is not None and self._denied_head()
            self._on_error(fields)
            if denied and fields.get("C") == "42501":  # our refusal: without the DO block's context
                return wire.error_response(fields.get("M", "refused"), "42501", fields.get("S", "ERROR"))
            return None
        if kind in (71, 72, 87):  # CopyIn/Out/Both response: rows are counted by CommandComplete
            return None
        if kind == 75:  # BackendKeyData
            return None
        return None

    def _denied_head(self) -> bool:
        for item in self._expect:
            if item.kind == "swallow":
                continue
            return item.denied
        return False

    def _on_error(self, fields: dict[str, str]) -> None:
        ex = self._expect
        head = ex[0] if ex else None
        if head is None:
            return
        if head.kind == "query":
            if head.denied:
                for r in head.runs:
                    r.sqlstate = fields.get("C")
                    self._finish(r)
                head.runs.clear()
                return
            if head.runs:
                run = head.runs.pop(0)
                run.outcome = "error"
                run.sqlstate = fields.get("C")
                run.error = fields.get("M")
                self._finish(run)
                head.runs.clear()  # the rest of the query string does not run
            return
        # Extended protocol: the failed message, then everything up to Sync, gets no answer.
        # The error is the first Execute's (its Parse or Bind may be what failed); a refused
        # Execute further on is still recorded as refused.
        first = True
        while ex and ex[0].kind != "sync":
            item = ex.popleft()
            if item.kind != "execute" or item.run is None:
                continue
            run = item.run
            if run.outcome == "denied":
                run.sqlstate = fields.get("C") if first else None
                self._finish(run)
            elif first:
                run.outcome = "error"
                run.error = fields.get("M")
                run.sqlstate = fields.get("C")
                self._finish(run)
            first = False


MAX_NAMED = 50_000  # prepared statements, portals, descriptions a session keeps track of


def _bound(table: dict[str, Any]) -> None:
    """Forget the oldest entries past MAX_NAMED (an Execute of a forgotten statement is refused)."""
    while len(table) > MAX_NAMED:
        del table[next(iter(table))]
