"""What a SQL text does, read with PostgreSQL's own parser (``pglast`` embeds libpg_query):
the statements it holds, each one's kind, the tables it touches, whether an UPDATE or
DELETE lacks a WHERE clause, and whether it writes.

Parsing costs a few microseconds a statement (the JSON parse tree, walked here); results
are cached by text, so a prepared statement or a repeated query is parsed once.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from pglast import parser as pg

KINDS: tuple[str, ...] = (
    "select", "insert", "update", "delete", "merge", "truncate", "copy", "ddl", "dcl",
    "transaction", "set", "call", "do", "explain", "utility", "unknown",
)  # fmt: skip

_KIND_OF = {
    "SelectStmt": "select",
    "InsertStmt": "insert",
    "UpdateStmt": "update",
    "DeleteStmt": "delete",
    "MergeStmt": "merge",
    "TruncateStmt": "truncate",
    "CopyStmt": "copy",
    "TransactionStmt": "transaction",
    "VariableSetStmt": "set",
    "VariableShowStmt": "set",
    "CallStmt": "call",
    "DoStmt": "do",
    "GrantStmt": "dcl",
    "GrantRoleStmt": "dcl",
    "CreateRoleStmt": "dcl",
    "AlterRoleStmt": "dcl",
    "AlterRoleSetStmt": "dcl",
    "DropRoleStmt": "dcl",
    "AlterDefaultPrivilegesStmt": "dcl",
    "ReassignOwnedStmt": "dcl",
}
_DDL_PREFIXES = ("Create", "Alter", "Drop", "Rename", "Comment", "Define", "Index", "View", "Rule")
_DDL_EXTRA = {"CompositeTypeStmt", "CreateEnumStmt", "CreateRangeStmt", "AlterEnumStmt", "RefreshMatViewStmt", "SecLabelStmt"}
_WRITES = {"InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt", "TruncateStmt"}
_PASSWORD = re.compile(r"(?i)(\bpassword\s+)('(?:[^']|'')*'|\$(\w*)\$.*?\$\3\$)", re.S)
_DROP_RELATIONS = {"OBJECT_TABLE", "OBJECT_VIEW", "OBJECT_MATVIEW", "OBJECT_FOREIGN_TABLE", "OBJECT_SEQUENCE"}
_CACHE_MAX = 4096
_CACHE_TEXT_MAX = 16 * 1024


@dataclass(frozen=True)
class Statement:
    """One statement of a SQL text."""

    text: str  # this statement's SQL (role passwords replaced)
    kind: str  # one of KINDS
    command: str  # the parse node, e.g. DeleteStmt ("" when the text did not parse)
    tables: tuple[str, ...] = ()  # relations named, schema-qualified as written
    missing_where: bool = False  # an UPDATE or DELETE (anywhere in it) without WHERE
    writes: bool = False  # changes rows (INSERT/UPDATE/DELETE/MERGE/TRUNCATE, also in CTEs, COPY FROM)
    parse_error: str | None = None
    lazy: bool = False  # not parsed yet (see quick_statement): the event's builder analyzes it


# A text with no ';' (but a last one) that starts with one of these keywords is exactly one
# statement of this kind (or a syntax error): no parse is needed to forward it and count it.
_QUICK_KINDS = {
    "select": "select", "insert": "insert", "update": "update", "delete": "delete",
    "begin": "transaction", "start": "transaction", "commit": "transaction", "end": "transaction",
    "rollback": "transaction", "abort": "transaction", "savepoint": "transaction", "release": "transaction",
}  # fmt: skip
_FIRST_WORD = re.compile(r"\s*([A-Za-z]+)")


def quick_statement(sql: str) -> Statement | None:
    """``sql`` as one statement not parsed yet, when its first keyword and the absence of
    ``;`` inside it say so; None when it must be parsed now. Used where no guardrails apply:
    a simple-protocol query with literals differs every time, so the parse cache does not
    help, and the parse (tens of microseconds) then runs where the event is built instead of
    on the forwarding loop."""
    body = sql.rstrip()
    if body.endswith(";"):
        body = body[:-1]
    if ";" in body:
        return None
    m = _FIRST_WORD.match(body)
    kind = _QUICK_KINDS.get(m.group(1).lower()) if m is not None else None
    if kind is None:
        return None
    return Statement(sql, kind, "", lazy=True)


def kind_of(command: str) -> str:
    kind = _KIND_OF.get(command)
    if kind is not None:
        return kind
    if command in _DDL_EXTRA or command.startswith(_DDL_PREFIXES):
        return "ddl"
    return "utility"


def _collect(node: Any, out: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """The typed nodes of a parse tree (recursive: twice as fast as :func:`_walk`)."""
    if type(node) is dict:
        for k, v in node.items():
            t = type(v)
            if t is dict:
                if k[:1].isupper():
                    out.append((k, v))
                elif k == "relation" and "relname" in v:
                    out.append(("RangeVar", v))  # a field typed RangeVar comes without its node name
                _collect(v, out)
            elif t is list:
                for x in v:
                    _collect(x, out)
    elif type(node) is list:
        for x in node:
            _collect(x, out)
    return out


def _nodes(tree: Any) -> list[tuple[str, dict[str, Any]]] | Iterator[tuple[str, dict[str, Any]]]:
    try:
        return _collect(tree, [])
    except RecursionError:  # a statement nested deeper than the interpreter recurses
        return _walk(tree)


def _walk(node: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, dict):
            for k, v in n.items():
                if isinstance(v, dict) and k[:1].isupper():
                    yield k, v
                elif k == "relation" and isinstance(v, dict) and "relname" in v:
                    yield "RangeVar", v  # a field typed RangeVar comes without its node name
                if isinstance(v, (dict, list)):
                    stack.append(v)
        elif isinstance(n, list):
            stack.extend(n)


def _redact_passwords(text: str) -> str:
    return _PASSWORD.sub(lambda m: m.group(1) + "'[REDACTED:password]'", text)


def _statement(text: str, tree: dict[str, Any]) -> Statement:
    command = next(iter(tree), "")
    body = tree.get(command, {})
    kind = kind_of(command)
    if command == "ExplainStmt":
        inner = body.get("query", {})
        analyze = any(
            o.get("DefElem", {}).get("defname") == "analyze" for o in body.get("options", []) if isinstance(o, dict)
        )
        inner_command = next(iter(inner), "")
        kind = kind_of(inner_command) if analyze else "explain"
    elif command == "PrepareStmt":
        kind = kind_of(next(iter(body.get("query", {})), ""))
    tables: list[tuple[int, str]] = []  # (location in the text, name): kept in text order
    ctes: set[str] = set()
    missing_where = False
    writes = command in _WRITES or (command == "CopyStmt" and bool(body.get("is_from")))
    for name, node in _nodes(tree):
        if name == "RangeVar":
            rel = node.get("relname")
            if rel:
                schema = node.get("schemaname")
                tables.append((node.get("location", 0), f"{schema}.{rel}" if schema else rel))
        elif name == "CommonTableExpr" and node.get("ctename"):
            ctes.add(node["ctename"])
        elif name in ("UpdateStmt", "DeleteStmt"):
            writes = True
            if "whereClause" not in node:
                missing_where = True
        elif name in _WRITES:
            writes = True
    if command in ("UpdateStmt", "DeleteStmt") and "whereClause" not in body:
        missing_where = True
    if command == "DropStmt" and body.get("removeType") in _DROP_RELATIONS:
        for obj in body.get("objects", []):
            parts = [i.get("String", {}).get("sval", "") for i in obj.get("List", {}).get("items", [])] if isinstance(obj, dict) else []
            if parts and all(parts):
                tables.append((0, ".".join(parts[-2:])))
    tables.sort(key=lambda t: t[0])
    seen = dict.fromkeys(t for _, t in tables if t not in ctes)
    if command in ("CreateRoleStmt", "AlterRoleStmt", "CreateUserMappingStmt", "AlterUserMappingStmt") or "password" in text.lower():
        text = _redact_passwords(text)
    return Statement(text, kind, command, tuple(seen), missing_where, writes)


class Analyzer:
    """``analyze(sql)``: the statements of a SQL text, cached by text."""

    def __init__(self, cache_max: int = _CACHE_MAX) -> None:
        self._cache: OrderedDict[str, tuple[Statement, ...]] = OrderedDict()
        self._max = cache_max
        self.parsed = 0

    def analyze(self, sql: str) -> tuple[Statement, ...]:
        hit = self._cache.get(sql)
        if hit is not None:
            self._cache.move_to_end(sql)
            return hit
        out = self._parse(sql)
        if len(sql) <= _CACHE_TEXT_MAX:
            self._cache[sql] = out
            if len(self._cache) > self._max:
                self._cache.popitem(last=False)
        return out

    def _parse(self, sql: str) -> tuple[Statement, ...]:
        self.parsed += 1
        try:
            tree = orjson.loads(pg.parse_sql_json(sql))
        except Exception as exc:  # pglast raises ParseError; anything else is just as unreadable
            reason = str(exc).split("\n", 1)[0][:200] or type(exc).__name__
            return (Statement(_redact_passwords(sql), "unknown", "", parse_error=reason),)
        stmts = tree.get("stmts") or []
        if len(stmts) == 1:
            return (_statement(sql.strip(), stmts[0].get("stmt", {})),)
        raw = sql.encode("utf-8")
        out = []
        for s in stmts:
            start = s.get("stmt_location", 0)
            length = s.get("stmt_len", 0)
            part = raw[start : start + length] if length else raw[start:]
            out.append(_statement(part.decode("utf-8", "replace").strip(), s.get("stmt", {})))
        return tuple(out)
