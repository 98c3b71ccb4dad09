"""The embedded store's documents: keys, rules, alerts, approvals and other small records
kept beside the log (the ``docs`` table of ``log.db``)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from auditkeep.store.base import Doc
from auditkeep.store.sql_filters import doc_filter, doc_list_query


class SQLiteDocuments:
    """The ``docs`` table, a base of :class:`~auditkeep.store.sqlite.SQLiteStore` (which
    provides the connections and the write lock declared here)."""

    _write_lock: threading.RLock

    if TYPE_CHECKING:

        @property
        def _w(self) -> sqlite3.Connection: ...

        def _reader(self) -> sqlite3.Connection: ...

        def _guard(self) -> AbstractContextManager[None]: ...

    def doc_put(self, doc: Doc) -> None:
        with self._write_lock, self._guard():
            self._w.execute(
                "INSERT OR REPLACE INTO docs(collection, id, tenant, created_ns, status, data) VALUES(?,?,?,?,?,?)",
                (doc.collection, doc.id, doc.tenant, doc.created_ns, doc.status, doc.data),
            )

    def doc_insert(self, doc: Doc) -> bool:
        with self._write_lock, self._guard():
            cur = self._w.execute(
                "INSERT OR IGNORE INTO docs(collection, id, tenant, created_ns, status, data) VALUES(?,?,?,?,?,?)",
                (doc.collection, doc.id, doc.tenant, doc.created_ns, doc.status, doc.data),
            )
            return cur.rowcount == 1

    def doc_swap(self, doc: Doc, expected: bytes) -> bool:
        with self._write_lock, self._guard():
            cur = self._w.execute(
                "UPDATE docs SET tenant=?, created_ns=?, status=?, data=? WHERE collection=? AND id=? AND data=?",
                (doc.tenant, doc.created_ns, doc.status, doc.data, doc.collection, doc.id, expected),
            )
            return cur.rowcount == 1

    def doc_put_many(self, docs: Sequence[Doc]) -> None:
        if not docs:
            return
        with self._write_lock, self._guard():
            w = self._w
            w.execute("BEGIN IMMEDIATE")
            try:
                w.executemany(
                    "INSERT OR REPLACE INTO docs(collection, id, tenant, created_ns, status, data) VALUES(?,?,?,?,?,?)",
                    [(d.collection, d.id, d.tenant, d.created_ns, d.status, d.data) for d in docs],
                )
                w.execute("COMMIT")
            except BaseException:
                if w.in_transaction:
                    w.execute("ROLLBACK")
                raise

    def doc_delete_many(self, collection: str, doc_ids: Sequence[str]) -> int:
        if not doc_ids:
            return 0
        with self._write_lock, self._guard():
            w = self._w
            w.execute("BEGIN IMMEDIATE")
            try:
                before = w.total_changes
                w.executemany("DELETE FROM docs WHERE collection=? AND id=?", [(collection, i) for i in doc_ids])
                gone = w.total_changes - before
                w.execute("COMMIT")
            except BaseException:
                if w.in_transaction:
                    w.execute("ROLLBACK")
                raise
            return gone

    def doc_get(self, collection: str, doc_id: str) -> Doc | None:
        r = self._reader().execute(
            "SELECT collection, id, tenant, created_ns, status, data FROM docs WHERE collection=? AND id=?",
            (collection, doc_id),
        ).fetchone()
        return Doc(*r) if r else None

    def doc_list(
        self,
        collection: str,
        tenant: str | None = None,
        status: str | None = None,
        before_ns: int | None = None,
        limit: int = 100,
    ) -> list[Doc]:
        sql, params = doc_list_query("?", collection, tenant, status, before_ns, limit)
        return [Doc(*r) for r in self._reader().execute(sql, params)]

    def doc_delete(self, collection: str, doc_id: str) -> bool:
        with self._write_lock, self._guard():
            cur = self._w.execute("DELETE FROM docs WHERE collection=? AND id=?", (collection, doc_id))
            return cur.rowcount == 1

    def doc_count(self, collection: str, tenant: str | None = None, status: str | None = None) -> int:
        where, params = doc_filter("?", collection, tenant, status)
        return int(self._reader().execute(f"SELECT count(*) FROM docs {where}", params).fetchone()[0])
