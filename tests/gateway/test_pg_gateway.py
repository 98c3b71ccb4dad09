"""The PostgreSQL gateway against the real server with psycopg: results equal direct
results, every statement recorded in order, guardrail denials, approvals, masking."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pg_gateway_support import UPSTREAM, RunningGateway, db_events, dsn, unique, wait_for

from auditkeep.config import DEFAULT_POLICY
from auditkeep.gateway.approvals import ApprovalBook
from auditkeep.ledger import Ledger
from auditkeep.policy import Pipeline

RULES = """\
review_timeout: 20s
rules:
  - name: admins-anything
    action: allow
    users: [gw_admin_*]
  - name: no-unbounded-writes
    action: deny
    message: DELETE and UPDATE need a WHERE clause
    kinds: [delete, update]
    missing_where: true
  - name: payroll-closed
    action: deny
    tables: ["*payroll*"]
  - name: drops-reviewed
    action: review
    pattern: '^\\s*drop\\s+table'
masking:
  columns: ["*secret*"]
  exempt_roles: [gw_pii_reader]
"""


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    lg = Ledger.open(tmp_path / "data")
    lg.pipeline = Pipeline.from_dict(DEFAULT_POLICY)  # as `auditkeep gateway postgres` opens it
    yield lg
    lg.close()


@pytest.fixture
def gateway(ledger: Ledger, tmp_path: Path) -> Iterator[RunningGateway]:
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES)
    gw = RunningGateway(ledger, rules=rules)
    yield gw
    gw.stop()


@pytest.fixture
def table() -> Iterator[str]:
    name = unique("gwt")
    with psycopg.connect(dsn(UPSTREAM[1]), autocommit=True) as c:
        c.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, email text, card text, ssn text, note text, "
                  "amount numeric, secret_code int)")  # fmt: skip
        c.execute(f"INSERT INTO {name} SELECT g, 'user' || g || '@example.com', '4111 1111 1111 1111', "
                  f"'123-45-6789', 'row ' || g, g * 1.5, g FROM generate_series(1, 50) g")  # fmt: skip
    yield name
    with psycopg.connect(dsn(UPSTREAM[1]), autocommit=True) as c:
        c.execute(f"DROP TABLE IF EXISTS {name}")


def _rows(conn: psycopg.Connection[Any], sql: str, params: Any = None, **kw: Any) -> list[tuple[Any, ...]]:
    with conn.cursor(**kw) as cur:
        cur.execute(sql, params)
        return cur.fetchall()


QUERIES = [
    ("SELECT id, note, amount FROM {t} WHERE id <= %s ORDER BY id", (10,)),
    ("SELECT count(*), sum(amount) FROM {t}", None),
    ("SELECT generate_series(1, 2000) AS n, repeat('x', 100) AS pad", None),
    ("SELECT now() > '2000-01-01'::timestamptz, NULL::text, '\\x00ff'::bytea, ARRAY[1,2,3]", None),
]


@pytest.mark.parametrize("mode", ["extended", "simple", "binary", "prepared", "pipeline"])
def test_results_through_the_gateway_equal_direct_results(gateway: RunningGateway, table: str, mode: str) -> None:
    with psycopg.connect(dsn(UPSTREAM[1]), autocommit=True) as direct, gateway.connect() as via:
        for sql, params in QUERIES:
            q = sql.format(t=table)
            if mode == "simple":
                got = psycopg.ClientCursor(via).execute(q, params).fetchall()
                want = psycopg.ClientCursor(direct).execute(q, params).fetchall()
            elif mode == "binary":
                got, want = _rows(via, q, params, binary=True), _rows(direct, q, params, binary=True)
            elif mode == "prepared":
                got = [via.execute(q, params, prepare=True).fetchall() for _ in range(3)][-1]
                want = direct.execute(q, params, prepare=True).fetchall()
            elif mode == "pipeline":
                with via.pipeline():
                    curs = [via.execute(q, params) for _ in range(3)]
                got = curs[-1].fetchall()
                want = direct.execute(q, params).fetchall()
            else:
                got, want = _rows(via, q, params), _rows(direct, q, params)
            # the masked column (secret_code) is not selected: results are identical
            assert got == want, q


def test_every_statement_of_a_session_is_recorded_in_order(gateway: RunningGateway, table: str) -> None:
    with gateway.connect() as c:
        c.execute(f"SELECT id FROM {table} WHERE id < %s", (4,)).fetchall()
        psycopg.ClientCursor(c).execute(f"UPDATE {table} SET note = 'x' WHERE id IN (1, 2); SELECT 1")
        with pytest.raises(psycopg.errors.UndefinedTable):
            c.execute("SELECT * FROM no_such_table_here")
        with c.transaction():
            c.execute(f"INSERT INTO {table} (id, note) VALUES (%s, %s)", (1000, "password=hunter2"))
        c.execute(f"DELETE FROM {table} WHERE id = %s", (1000,))
        with pytest.raises(psycopg.errors.SyntaxError):
            c.execute("SELEC 1")
        with c.cursor().copy(f"COPY (SELECT id FROM {table} ORDER BY id LIMIT 5) TO STDOUT") as copy:
            assert b"".join(bytes(b) for b in copy) == b"1\n2\n3\n4\n5\n"
    events = gateway.events()
    assert next(e.action for e in events) == "db.session.start"
    assert events[-1].action == "db.session.end"
    queries = db_events(events, "db.query")
    got = [(q["kind"], q["_outcome"], q.get("rows"), q.get("sqlstate")) for q in queries]
    assert got == [
        ("select", "success", 3, None),
        ("update", "success", 2, None),
        ("select", "success", 1, None),
        ("select", "error", None, "42P01"),
        ("transaction", "success", None, None),
        ("insert", "success", 1, None),
        ("transaction", "success", None, None),
        ("delete", "success", 1, None),
        ("unknown", "error", None, "42601"),
        ("copy", "success", 5, None),
    ], got
    assert [q["seq"] for q in queries] == sorted(q["seq"] for q in queries)
    assert queries[0]["protocol"] == "extended" and queries[0]["params"] == [4]
    assert queries[1]["protocol"] == "simple" and queries[1]["tables"] == [table]
    assert queries[3]["_reason"] and "no_such_table_here" in queries[3]["_reason"]
    insert = queries[5]
    assert "hunter2" not in str(insert["params"])  # parameters pass the redaction policy
    end = db_events(events, "db.session.end")[0]
    assert end["statements"] == len(queries) and end["duration_us"] > 0
    start = db_events(events, "db.session.start")[0]
    assert start["user"] == "postgres" and start["database"] == "test" and start["session"] == end["session"]


def test_guardrails_deny_with_a_clear_error_and_a_denied_event(gateway: RunningGateway, table: str) -> None:
    with gateway.connect() as c:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="need a WHERE clause"):
            c.execute(f"DELETE FROM {table}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="payroll-closed"):
            psycopg.ClientCursor(c).execute("SELECT * FROM hr.payroll_2026")
        # inside a transaction block the refusal fails the block, as a server error would
        c.execute("BEGIN")
        c.execute(f"UPDATE {table} SET note = 'kept?' WHERE id = 1")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute(f"UPDATE {table} SET note = 'all'")
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            c.execute("SELECT 1")
        c.execute("ROLLBACK")
        assert c.execute(f"SELECT count(*) FROM {table} WHERE note IN ('kept?', 'all')").fetchone() == (0,)
        # pipelined: the refused statement and what follows it up to Sync are not run
        with pytest.raises(psycopg.errors.InsufficientPrivilege), c.pipeline():
            c.execute(f"SELECT 1 FROM {table} LIMIT 1")
            c.execute(f"DELETE FROM {table}")
            c.execute(f"UPDATE {table} SET note = 'after' WHERE id = 2")
        assert c.execute(f"SELECT note FROM {table} WHERE id = 2").fetchone() == ("row 2",)
    _role("gw_admin_x")  # an allow rule above the deny rules: an exception for admins
    _grant(table, "gw_admin_x")
    with gateway.connect("gw_admin_x") as c:
        assert c.execute(f"DELETE FROM {table}").rowcount == 50
    denied = [q for q in db_events(gateway.events(), "db.query") if q["_outcome"] == "denied"]
    assert [(q["kind"], q["rule"]) for q in denied] == [
        ("delete", "no-unbounded-writes"), ("select", "payroll-closed"), ("update", "no-unbounded-writes"),
        ("delete", "no-unbounded-writes"),
    ]
    assert denied[0]["_reason"] == "DELETE and UPDATE need a WHERE clause"
    assert all(q["sqlstate"] == "42501" for q in denied)


def _role(name: str, *member_of: str) -> bool:
    """Create a login role on the upstream server (trust auth) if missing."""
    with psycopg.connect(dsn(UPSTREAM[1]), autocommit=True) as c:
        for role in (*member_of, name):
            if c.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None:
                with contextlib.suppress(psycopg.errors.DuplicateObject):
                    c.execute(f'CREATE ROLE "{role}" {"LOGIN" if role == name else "NOLOGIN"}')
        for group in member_of:
            c.execute(f'GRANT "{group}" TO "{name}"')
        c.execute(f'GRANT ALL ON SCHEMA public TO "{name}"')
    return True


def _grant(table: str, *roles: str) -> None:
    with psycopg.connect(dsn(UPSTREAM[1]), autocommit=True) as c:
        for r in roles:
            c.execute(f'GRANT ALL ON {table} TO "{r}"')


def test_masking_by_detectors_and_column_names_unless_exempt(gateway: RunningGateway, table: str) -> None:
    _role("gw_analyst")
    _role("gw_auditor", "gw_pii_reader")
    _grant(table, "gw_analyst", "gw_auditor")
    sql = f"SELECT id, email, card, ssn, note, secret_code FROM {table} WHERE id = 7"
    with gateway.connect("gw_analyst") as c:
        extended = c.execute(sql).fetchone()
        simple = psycopg.ClientCursor(c).execute(sql).fetchone()
        binary = c.cursor(binary=True).execute(sql).fetchone()
        prepared = [c.execute(sql, prepare=True).fetchone() for _ in range(3)][-1]
    masked = (7, "[REDACTED:email]", "[REDACTED:card_number]", "[REDACTED:national_id]", "row 7", None)
    assert extended == simple == binary == prepared == masked
    with gateway.connect("gw_auditor") as c:
        assert c.execute(sql).fetchone() == (7, "user7@example.com", "4111 1111 1111 1111", "123-45-6789", "row 7", 7)


def test_review_waits_for_approval_by_another_person(gateway: RunningGateway, table: str) -> None:
    victim = unique("gwdrop")
    with psycopg.connect(dsn(UPSTREAM[1]), autocommit=True) as c:
        for name in (victim, victim + "_b"):
            c.execute(f"CREATE TABLE {name} (a int)")
    book = ApprovalBook(gateway.ledger)

    def decide(verb: str, who: str = "bob") -> None:
        pending = wait_for(lambda: book.find("acme", "pending")[0], what="a pending request")
        req = pending[0]
        assert req.requester == "postgres" and req.rule == "drops-reviewed" and "DROP TABLE" in req.summary
        if verb == "self":
            from auditkeep.gateway.approvals import SelfApproval

            with pytest.raises(SelfApproval):
                book.approve(req.id, "postgres")
            verb = "approve"
        (book.approve if verb == "approve" else book.reject)(req.id, who, note=f"{verb} in test")

    with gateway.connect() as c:
        t = threading.Thread(target=decide, args=("self",))
        t.start()
        c.execute(f"DROP TABLE {victim}")  # blocks until approved
        t.join(10)
        t = threading.Thread(target=decide, args=("reject",))
        t.start()
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="rejected by bob: reject in test"):
            c.execute(f"DROP TABLE {victim}_b")
        t.join(10)
        assert c.execute("SELECT to_regclass(%s)", (victim,)).fetchone() == (None,)
        assert c.execute("SELECT to_regclass(%s)", (victim + "_b",)).fetchone() == (victim + "_b",)
    queries = [q for q in db_events(gateway.events(), "db.query") if q["kind"] == "ddl"]
    assert [(q["_outcome"], q["approval"]["status"], q["approval"]["by"]) for q in queries] == [
        ("success", "approved", "bob"), ("denied", "rejected", "bob")
    ]
    actions = [e.action for e in gateway.events() if e.action.startswith("auditkeep.approval.")]
    assert actions == ["auditkeep.approval.requested", "auditkeep.approval.approved",
                       "auditkeep.approval.requested", "auditkeep.approval.rejected"]
    with psycopg.connect(dsn(UPSTREAM[1]), autocommit=True) as c:
        c.execute(f"DROP TABLE IF EXISTS {victim}_b")


def test_review_timeout_is_an_error(ledger: Ledger, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text("review_timeout: 1s\nrules:\n  - {name: everything-reviewed, action: review, kinds: [select]}\n")
    gw = RunningGateway(ledger, rules=rules)
    try:
        with gw.connect() as c, pytest.raises(psycopg.errors.InsufficientPrivilege, match="no approval within 1s"):
            c.execute("SELECT 42")
        q = db_events(gw.events(), "db.query")[0]
        assert q["_outcome"] == "denied" and q["approval"]["status"] == "expired"
        assert "auditkeep.approval.expired" in [e.action for e in gw.events()]
    finally:
        gw.stop()


def test_a_statement_whose_client_left_during_review_never_runs(gateway: RunningGateway) -> None:
    import socket
    import struct

    victim = unique("gwleft")
    with psycopg.connect(dsn(UPSTREAM[1]), autocommit=True) as c:
        c.execute(f"CREATE TABLE {victim} (a int)")
    body = struct.pack("!i", 196608) + b"user\x00postgres\x00database\x00test\x00\x00"
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as s:
        s.sendall(struct.pack("!i", len(body) + 4) + body)
        got = b""
        while b"Z\x00\x00\x00\x05" not in got:
            got += s.recv(65536)
        q = f"DROP TABLE {victim}\x00".encode()
        s.sendall(b"Q" + struct.pack("!i", len(q) + 4) + q)
        book = ApprovalBook(gateway.ledger)
        req = wait_for(lambda: book.find("acme", "pending")[0], what="a pending request")[0]
    gateway.wait_idle(20)
    book.approve(req.id, "bob")  # too late: the session is over, nothing is left to run it
    with psycopg.connect(dsn(UPSTREAM[1]), autocommit=True) as c:
        still_there = c.execute("SELECT to_regclass(%s)", (victim,)).fetchone()
        c.execute(f"DROP TABLE {victim}")
    assert still_there == (victim,)
    q = [e for e in db_events(gateway.events(), "db.query") if victim in e["statement"]]
    assert [(e["_outcome"], e["approval"]["status"]) for e in q] == [("unknown", "abandoned")]


PG_SOCKET_DIR = "/var/run/postgresql"


@pytest.mark.skipif(not Path(PG_SOCKET_DIR, ".s.PGSQL.5432").exists(), reason="no PostgreSQL Unix socket in /var/run/postgresql")
def test_upstream_over_the_unix_socket(ledger: Ledger) -> None:
    """--upstream /var/run/postgresql:5432: the gateway reaches the server on its socket; a
    pipelined batch of prepared statements (more than one chunk) comes back whole."""
    gw = RunningGateway(ledger, upstream=(PG_SOCKET_DIR, 5432))
    try:
        with gw.connect() as c:
            assert c.execute("SELECT current_setting('port')::int, inet_client_addr()").fetchone() == (5432, None)
            with c.pipeline():
                curs = [c.execute("SELECT %s::int * 2, repeat('x', 3000)", (i,), prepare=True) for i in range(300)]
            assert [cur.fetchone()[0] for cur in curs] == [i * 2 for i in range(300)]  # type: ignore[index]
        queries = db_events(gw.events(), "db.query")
        assert len(queries) == 301
        assert queries[-1]["params"] == [299]  # psycopg binds an int in binary
    finally:
        gw.stop()
