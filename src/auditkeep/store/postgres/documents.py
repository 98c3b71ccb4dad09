"""The PostgreSQL store's documents: keys, rules, alerts, approvals and other small records
kept beside the log (the ``docs`` table)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from auditkeep.store.base import Doc
from auditkeep.store.postgres.connection import PgConnections
from auditkeep.store.sql_filters import doc_filter, doc_list_query

DOC_UPSERT = (
    "INSERT INTO docs(collection, id, tenant, created_ns, status, data) VALUES (%s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (collection, id) DO UPDATE SET tenant = excluded.tenant, "
    "created_ns = excluded.created_ns, status = excluded.status, data = excluded.data"
)


class PgDocuments(PgConnections):
    """The ``docs`` table: small records by collection and id."""

    def doc_put(self, doc: Doc) -> None:
        self.doc_put_many([doc])

    def doc_put_many(self, docs: Sequence[Doc]) -> None:
        if not docs:
            return
        with self._conn() as conn, conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                DOC_UPSERT,
                [(d.collection, d.id, d.tenant, d.created_ns, d.status, d.data) for d in docs],
            )

    def doc_delete_many(self, collection: str, doc_ids: Sequence[str]) -> int:
        if not doc_ids:
            return 0
        with self._conn() as conn:
            cur = conn.execute(
                "DELETE FROM docs WHERE collection = %s AND id = ANY(%s)", (collection, list(doc_ids))
            )
            return cur.rowcount

    def doc_insert(self, doc: Doc) -> bool:
        with self._conn() as conn:
            cur = conn.execute(
                "INSERT INTO docs(collection, id, tenant, created_ns, status, data) VALUES (%s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (collection, id) DO NOTHING",
                (doc.collection, doc.id, doc.tenant, doc.created_ns, doc.status, doc.data),
            )
            return cur.rowcount == 1

    def doc_swap(self, doc: Doc, expected: bytes) -> bool:
        with self._conn() as conn:
            cur = conn.execute(
                "UPDATE docs SET tenant = %s, created_ns = %s, status = %s, data = %s "
                "WHERE collection = %s AND id = %s AND data = %s",
                (doc.tenant, doc.created_ns, doc.status, doc.data, doc.collection, doc.id, expected),
            )
            return cur.rowcount == 1

    def doc_get(self, collection: str, doc_id: str) -> Doc | None:
        with self._conn() as conn:
            r = conn.execute(
                "SELECT collection, id, tenant, created_ns, status, data FROM docs WHERE collection = %s AND id = %s",
                (collection, doc_id),
            ).fetchone()
        return _doc(r) if r else None

    def doc_list(
        self,
        collection: str,
        tenant: str | None = None,
        status: str | None = None,
        before_ns: int | None = None,
        limit: int = 100,
    ) -> list[Doc]:
        query, params = doc_list_query("%s", collection, tenant, status, before_ns, limit)
        with self._conn() as conn:
            return [_doc(r) for r in conn.execute(query, params).fetchall()]

    def doc_delete(self, collection: str, doc_id: str) -> bool:
        with self._conn() as conn:
            cur = conn.execute(
                "DELETE FROM docs WHERE collection = %s AND id = %s", (collection, doc_id)
            )
            return cur.rowcount == 1

    def doc_count(
        self, collection: str, tenant: str | None = None, status: str | None = None
    ) -> int:
        where, params = doc_filter("%s", collection, tenant, status)
        with self._conn() as conn:
            r = conn.execute(f"SELECT count(*) FROM docs {where}", params).fetchone()
        return int(r[0]) if r else 0


def _doc(r: Sequence[Any]) -> Doc:
    return Doc(r[0], r[1], r[2], r[3], r[4], bytes(r[5]))

