"""SQL filters both stores build the same way: the column filters of a search over the
projection table ``ev``, and those of a document listing. The stores differ only in the
placeholder (``?`` for SQLite, ``%s`` for psycopg) and in how a text value is stored
(PostgreSQL text cannot hold NUL)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from auditkeep.store.base import Query


def _same(value: str) -> str:
    return value


def column_filters(q: Query, mark: str, text: Callable[[str], str] = _same) -> tuple[list[str], list[Any]]:
    """Conditions (to AND together) and their parameters for the tenant, the time bounds,
    actor, action (exact, or a prefix when it ends with ``*``) and the plain columns."""
    where = [f"ev.tenant_id = {mark}"]
    params: list[Any] = [q.tenant_id]
    for column, op, bound in (
        ("time_ns", ">=", q.since_ns),
        ("time_ns", "<", q.until_ns),
        ("received_ns", ">=", q.received_since_ns),
        ("received_ns", "<", q.received_until_ns),
    ):
        if bound is not None:
            where.append(f"ev.{column} {op} {mark}")
            params.append(bound)
    if q.actor is not None:
        where.append(f"ev.actor = {mark}")
        params.append(text(q.actor))
    if q.action is not None:
        if q.action.endswith("*"):
            prefix = q.action[:-1]
            where.append(f"ev.action >= {mark} AND ev.action < {mark}")
            params += [prefix, prefix + "\U0010ffff"]
        else:
            where.append(f"ev.action = {mark}")
            params.append(q.action)
    for column, value in (
        ("rtype", q.resource_type),
        ("rid", q.resource_id),
        ("outcome", q.outcome),
        ("category", q.category),
    ):
        if value is not None:
            where.append(f"ev.{column} = {mark}")
            params.append(text(value))
    return where, params


def doc_filter(
    mark: str,
    collection: str,
    tenant: str | None = None,
    status: str | None = None,
    before_ns: int | None = None,
) -> tuple[str, list[object]]:
    """``WHERE ...`` and its parameters."""
    where = f"WHERE collection = {mark}"
    params: list[object] = [collection]
    for column, op, value in (("tenant", "=", tenant), ("status", "=", status), ("created_ns", "<", before_ns)):
        if value is not None:
            where += f" AND {column} {op} {mark}"
            params.append(value)
    return where, params


DOC_COLUMNS = "collection, id, tenant, created_ns, status, data"


def doc_list_query(
    mark: str,
    collection: str,
    tenant: str | None = None,
    status: str | None = None,
    before_ns: int | None = None,
    limit: int = 100,
) -> tuple[str, list[object]]:
    """A document listing, newest first (``before_ns`` pages backwards), and its parameters."""
    where, params = doc_filter(mark, collection, tenant, status, before_ns)
    return f"SELECT {DOC_COLUMNS} FROM docs {where} ORDER BY created_ns DESC, id DESC LIMIT {mark}", [*params, limit]
