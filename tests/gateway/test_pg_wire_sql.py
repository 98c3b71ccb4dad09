"""The statement analyzer (PostgreSQL's own parser) and the wire decoders: what they read,
and that no input makes them fail other than with the errors the session handles."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditkeep.gateway.postgres import wire
from auditkeep.gateway.postgres.masking import mask_row, plan
from auditkeep.gateway.postgres.rules import parse_masking
from auditkeep.gateway.postgres.sql import Analyzer


@pytest.mark.parametrize(
    ("sql", "kinds", "tables", "missing_where", "writes"),
    [
        ("SELECT * FROM a JOIN s.b ON true WHERE x IN (SELECT y FROM c)", ["select"], ("a", "s.b", "c"), False, False),
        ("DELETE FROM t", ["delete"], ("t",), True, True),
        ("UPDATE t SET a = 1 WHERE id = 2", ["update"], ("t",), False, True),
        ("WITH gone AS (DELETE FROM t RETURNING *) SELECT * FROM gone", ["select"], ("t",), True, True),
        ("EXPLAIN ANALYZE UPDATE t SET a = 1", ["update"], ("t",), True, True),
        ("EXPLAIN UPDATE t SET a = 1", ["explain"], ("t",), True, True),
        ("TRUNCATE a, b", ["truncate"], ("a", "b"), False, True),
        ("COPY t FROM STDIN", ["copy"], ("t",), False, True),
        ("COPY t TO STDOUT", ["copy"], ("t",), False, False),
        ("DROP TABLE x, s.y", ["ddl"], ("x", "s.y"), False, False),
        ("CREATE INDEX ON t (a)", ["ddl"], ("t",), False, False),
        ("GRANT SELECT ON t TO bob", ["dcl"], ("t",), False, False),
        ("BEGIN; INSERT INTO t VALUES (1); COMMIT", ["transaction", "insert", "transaction"], ("t",), False, True),
        ("SET search_path = app", ["set"], (), False, False),
        ("MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN DELETE", ["merge"], ("t", "u"), False, True),
        ("selec 1", ["unknown"], (), False, False),
    ],
)
def test_statements_are_read_as_the_server_reads_them(
    sql: str, kinds: list[str], tables: tuple[str, ...], missing_where: bool, writes: bool
) -> None:
    got = Analyzer().analyze(sql)
    assert [s.kind for s in got] == kinds
    assert tuple(dict.fromkeys(t for s in got for t in s.tables)) == tables
    assert any(s.missing_where for s in got) is missing_where
    assert any(s.writes for s in got) is writes


def test_role_passwords_never_reach_the_statement_text() -> None:
    for sql in ("ALTER ROLE app PASSWORD 'hunter2'", "CREATE USER x WITH ENCRYPTED PASSWORD 'hunter2' LOGIN",
                "alter user x password $$hunter2$$"):  # fmt: skip
        (st_,) = Analyzer().analyze(sql)
        assert "hunter2" not in st_.text and "[REDACTED:password]" in st_.text


def test_multi_statement_text_is_split_by_bytes() -> None:
    got = Analyzer().analyze("SELECT 'ünïcode'; SELECT 2")
    assert [s.text for s in got] == ["SELECT 'ünïcode'", "SELECT 2"]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_text_is_analyzed_without_raising(sql: str) -> None:
    for s in Analyzer().analyze(sql):
        assert s.kind


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_decoders_fail_only_with_handled_errors(body: bytes) -> None:
    for fn in (wire.parse_bind, wire.parse_parse, wire.parse_row_description, wire.parse_data_row,
               wire.error_fields, lambda b: wire.parse_startup(struct.pack("!i", len(b) + 4) + b)):  # fmt: skip
        with contextlib.suppress(ValueError, struct.error):
            fn(body)


@given(st.lists(st.one_of(st.none(), st.binary(max_size=40)), max_size=20))
def test_data_rows_round_trip(values: list[bytes | None]) -> None:
    assert wire.parse_data_row(wire.data_row(values)[5:]) == values


def test_masking_a_row() -> None:
    m = parse_masking({"columns": ["ssn"]})
    cols = [wire.Column("id", 23, 0), wire.Column("email", 25, 0), wire.Column("SSN", 23, 0), wire.Column("note", 1043, 0)]
    rp = plan(m, cols)
    assert rp is not None
    row = wire.data_row([b"1", b"mail bob@example.com", b"123", b"card 4111-1111-1111-1111 ok"])[5:]
    out = mask_row(m, rp, row)
    assert out is not None
    assert wire.parse_data_row(out[5:]) == [b"1", b"mail [REDACTED:email]", None, b"card [REDACTED:card_number] ok"]
    assert mask_row(m, rp, wire.data_row([b"2", b"x", None, b"nothing here"])[5:]) is None


def test_deeply_nested_statements_are_analyzed() -> None:
    """Deeper than the interpreter recurses: the analyzer falls back to its iterative walk."""
    (st_,) = Analyzer().analyze("SELECT " + "(" * 3000 + "1" + ")" * 3000 + " FROM deep_t")
    assert st_.kind in ("select", "unknown")


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("SELECT abalance FROM pgbench_accounts WHERE aid = 7;", "select"),
        ("  update t set a = 1 where id = 2", "update"),
        ("BEGIN;", "transaction"),
        ("SELECT 'a;b'", None),  # a ';' inside: parsed now
        ("SELECT 1; DELETE FROM t", None),
        ("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", None),  # the first word does not say
        ("CREATE ROLE r PASSWORD 'p'", None),
        ("-- only a comment", None),
        ("", None),
    ],
)
def test_quick_statement_only_when_the_text_is_one_statement_of_a_known_kind(sql: str, kind: str | None) -> None:
    from auditkeep.gateway.postgres.events import analyzed
    from auditkeep.gateway.postgres.sql import Analyzer, quick_statement

    quick = quick_statement(sql)
    assert (quick.kind if quick is not None else None) == kind
    if quick is not None:  # the event's builder parses it: as the analyzer would have at once
        assert analyzed(quick) == Analyzer().analyze(sql)[0]
        assert analyzed(quick).kind == kind
