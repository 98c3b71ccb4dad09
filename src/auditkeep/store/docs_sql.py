"""The filter of a document-collection listing or count, shared by both stores (they differ
only in the placeholder: ``?`` for SQLite, ``%s`` for psycopg)."""

from __future__ import annotations


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
