"""The events of the PostgreSQL gateway: ``db.session.start``, ``db.session.end``, ``db.query``.

Everything about the database sits under ``metadata.db``; times are integers (``duration_us``):
a float would send every event down the ledger's slow exact canonicalisation path; the capture policy and redaction
(source ``postgres-gateway``) run on them before they are hashed, so ``metadata.db.params``
can be dropped or masked by policy, and secrets in statements are replaced by the detectors.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Any, cast

from auditkeep.gateway.postgres.sql import Analyzer, Statement
from auditkeep.gateway.postgres.wire import command_rows
from auditkeep.model import Actor, Event, Resource, Source
from auditkeep.model.event import Category, Outcome
from auditkeep.model.timefmt import format_rfc3339

SOURCE = "postgres-gateway"
SERVICE = "postgres-gateway"
MAX_PARAM = 1000  # characters of one parameter kept
MAX_PARAMS = 100
MAX_STATEMENT = 8000  # characters of SQL text kept in the event
_HOST = socket.gethostname()


@dataclass
class SessionInfo:
    id: str
    user: str
    database: str
    application: str
    client: str
    roles: frozenset[str] = frozenset()
    backend_pid: int | None = None
    started_ns: int = 0
    statements: int = 0
    tls: bool = False


@dataclass(slots=True)
class Run:
    """One statement on its way: what was asked, and what came of it."""

    seq: int
    statement: Statement
    protocol: str  # simple | extended
    started_ns: int
    t0: float  # perf_counter at start
    params: list[Any] | None = None
    bind: bytes | None = None  # the Bind message's body: its parameters are decoded with the event
    param_types: tuple[int, ...] = ()
    rows: int = 0
    tag: str | None = None
    sqlstate: str | None = None
    error: str | None = None
    outcome: str = "success"
    rule: str | None = None
    approval: dict[str, Any] | None = None  # set for a statement held for review
    suspended: bool = False


def _actor(s: SessionInfo) -> Actor:
    return Actor(id=s.user or "unknown", type="user", ip=s.client or None, session_id=s.id,
                 user_agent=s.application or None)  # fmt: skip


def _base(s: SessionInfo) -> dict[str, Any]:
    out: dict[str, Any] = {"session": s.id, "database": s.database, "user": s.user}
    if s.application:
        out["application"] = s.application
    if s.client:
        out["client"] = s.client
    if s.backend_pid is not None:
        out["backend_pid"] = s.backend_pid
    return out


def session_start(s: SessionInfo, outcome: str = "success", reason: str | None = None, sqlstate: str | None = None) -> Event:
    db = {**_base(s), "tls": s.tls}
    if s.roles:
        db["roles"] = sorted(s.roles)[:100]
    if sqlstate:
        db["sqlstate"] = sqlstate
    return Event(
        actor=_actor(s), action="db.session.start", time=format_rfc3339(s.started_ns), category="authentication",
        outcome=cast(Outcome, outcome), reason=reason, resource=Resource(type="database", id=s.database or None),
        source=Source(service=SERVICE, host=_HOST), metadata={"db": db},
    )  # fmt: skip


def session_end(s: SessionInfo, now_ns: int, reason: str) -> Event:
    db = {**_base(s), "duration_us": (now_ns - s.started_ns) // 1000, "statements": s.statements,
          "ended_by": reason}  # fmt: skip
    return Event(
        actor=_actor(s), action="db.session.end", time=format_rfc3339(now_ns), category="authentication",
        outcome="success", resource=Resource(type="database", id=s.database or None),
        source=Source(service=SERVICE, host=_HOST), metadata={"db": db},
    )  # fmt: skip


def _category(st: Statement) -> Category:
    if st.kind in ("ddl", "dcl"):
        return "configuration"
    return "data_change" if st.writes else "data_access"


_analyzer: Analyzer | None = None


def analyzed(st: Statement) -> Statement:
    """``st`` parsed, when the gateway left that to the event's builder (:attr:`Statement.lazy`)."""
    global _analyzer
    if not st.lazy:
        return st
    if _analyzer is None:
        _analyzer = Analyzer()
    got = _analyzer.analyze(st.text)
    return got[0] if len(got) == 1 else Statement(st.text.strip(), st.kind, "")


def query_event(s: SessionInfo, r: Run, duration_s: float) -> Event:
    st = analyzed(r.statement)
    db: dict[str, Any] = {
        **_base(s), "seq": r.seq, "statement": st.text[:MAX_STATEMENT], "kind": st.kind,
        "protocol": r.protocol, "duration_us": int(duration_s * 1e6),
    }  # fmt: skip
    if len(st.text) > MAX_STATEMENT:
        db["statement_chars"] = len(st.text)
    if st.tables:
        db["tables"] = list(st.tables[:100])
    if r.tag is not None:
        db["command"] = r.tag.split(" ", 1)[0]
    if r.rows or (r.tag is not None and command_rows(r.tag) is not None):
        db["rows"] = r.rows
    if r.params is not None:
        db["params"] = r.params
    elif r.bind is not None:
        db["params"] = bind_params(r.bind, r.param_types)
    if r.sqlstate:
        db["sqlstate"] = r.sqlstate
    if r.rule:
        db["rule"] = r.rule
    if r.approval:
        db["approval"] = r.approval
    if r.suspended:
        db["suspended"] = True
    if st.parse_error:
        db["parse_error"] = st.parse_error
    resource = Resource(type="table", id=st.tables[0]) if st.tables else Resource(type="database", id=s.database or None)
    return Event(
        actor=_actor(s), action="db.query", time=format_rfc3339(r.started_ns), category=_category(st),
        outcome=cast(Outcome, r.outcome), reason=r.error[:2000] if r.error else None, resource=resource,
        source=Source(service=SERVICE, host=_HOST), metadata={"db": db},
    )  # fmt: skip


def bind_params(body: bytes, types: tuple[int, ...] = ()) -> list[Any]:
    """The parameters of a Bind message's body, as :func:`params_of` puts them in the event
    (the server refuses a malformed Bind: its event says so)."""
    from auditkeep.gateway.postgres.wire import parse_bind

    try:
        b = parse_bind(body)
    except (ValueError, struct.error):
        return ["<malformed Bind>"]
    return params_of(b.params, b.param_formats, types)


def params_of(values: list[bytes | None], formats: list[int], types: tuple[int, ...] = ()) -> list[Any]:
    """Bind parameters as they go into the event: text as text, binary values of common
    types decoded, other binary values as their size."""
    from auditkeep.gateway.postgres.wire import binary_param, param_format

    out: list[Any] = []
    for i, v in enumerate(values[:MAX_PARAMS]):
        if v is None:
            out.append(None)
        elif param_format(formats, i) == 1:
            got = binary_param(v, types[i] if i < len(types) else 0)
            if isinstance(got, float):  # as text: a float would take the slow exact canonical form
                got = repr(got)
            if isinstance(got, str) and len(got) > MAX_PARAM:
                got = got[:MAX_PARAM] + "…"
            out.append(got if got is not None else f"<binary {len(v)} bytes>")
        else:
            text = v.decode("utf-8", "replace")
            out.append(text if len(text) <= MAX_PARAM else text[:MAX_PARAM] + "…")
    if len(values) > MAX_PARAMS:
        out.append(f"<{len(values) - MAX_PARAMS} more>")
    return out
