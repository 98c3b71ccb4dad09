"""Retention and erasure on the embedded store, a base of
:class:`~auditkeep.store.sqlite.SQLiteStore`: payloads go, leaf hashes and tiles stay (see
:mod:`auditkeep.store.sqlite_lifecycle` for the statements), each in a ``secure_delete``
transaction so freed bytes are zeroed."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING

from auditkeep.store.base import KEY_SHIFT, Entry, ProjectedRow, entry_key
from auditkeep.store.sqlite_fulltext import replace_texts
from auditkeep.store.sqlite_lifecycle import (
    ENTRY_COLUMNS,
    blank_entries,
    erase_subject_rows,
    forget_projected,
    mark_text_stale,
    projected_actors,
    rebuild_projection,
    shred_files,
    subject_rows_by_actor,
    text_stale,
)
from auditkeep.store.sqlite_walcheckpoint import WalCheckpointer


class SQLiteRetention:
    """Expiry and erasure (the store provides the connections and locks declared here)."""

    _write_lock: threading.RLock
    _project_lock: threading.Lock
    _wal: WalCheckpointer | None

    if TYPE_CHECKING:

        @property
        def _w(self) -> sqlite3.Connection: ...

        @property
        def _p(self) -> sqlite3.Connection: ...

        def _reader(self) -> sqlite3.Connection: ...

        def _guard(self) -> AbstractContextManager[None]: ...

        def entries_by_key(self, keys: Sequence[int]) -> dict[int, Entry]: ...

    @contextmanager
    def _secure(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        """A transaction with ``secure_delete`` on: freed bytes are zeroed, not left on free pages."""
        conn.execute("PRAGMA secure_delete=ON")
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        finally:
            conn.execute("PRAGMA secure_delete=OFF")

    def expire(
        self, tenant_id: int, indexes: Sequence[int], texts: Mapping[int, str], text_later: bool = False
    ) -> int:
        """See :meth:`Store.expire`. With ``text_later`` the search and full-text rows are
        left for :meth:`rebuild_text_index` (``texts`` unused): the projection is marked stale
        in a transaction before the payloads go, so a crash before the rebuild is seen.
        Meanwhile a search skips them (it reads each hit's entry, which has no payload)."""
        if not indexes:
            return 0
        # The projection first: a crash between the two leaves payloads that a rerun expires.
        with self._project_lock:
            if not (text_later and text_stale(self._p, "main")):  # marked by an earlier chunk: no commit
                with self._secure(self._p) as p:
                    if text_later:
                        mark_text_stale(p)
                    else:
                        forget_projected(p, [entry_key(tenant_id, i) for i in indexes], texts)
        with self._write_lock, self._guard(), self._secure(self._w) as w:
            return blank_entries(w, tenant_id, indexes)

    def retention_exceptions(
        self, tenant_id: int, start: int, end: int, plain: bytes, own: bytes
    ) -> list[tuple[int, int, bytes]]:
        """(index, received_ns, leaf) of the entries of ``[start, end)`` that a policy taking
        every entry cannot take unread: those without a payload, those whose leaf does not
        start with ``plain`` and those whose leaf starts with ``own``; in index order. One
        statement, and only those rows reach Python."""
        return [
            (k, r, bytes(leaf)) for k, r, leaf in self._reader().execute(
                "SELECT k - ?, received_ns, leaf FROM entries WHERE k >= ? AND k < ? AND (length(leaf) = 0 "
                "OR substr(leaf, 1, ?) != ? OR substr(leaf, 1, ?) = ?) ORDER BY k",
                (entry_key(tenant_id, 0), entry_key(tenant_id, start), entry_key(tenant_id, end),
                 len(plain), plain, len(own), own),
            )
        ]

    def projected_rows(self, tenant_id: int | None = None, start: int = 0, end: int = 1 << KEY_SHIFT) -> int:
        """How many entries the search projection holds (of one tenant's [start, end), or all)."""
        if tenant_id is None:
            return int(self._reader().execute("SELECT count(*) FROM ix.ev").fetchone()[0])
        return int(self._reader().execute(
            "SELECT count(*) FROM ix.ev WHERE k >= ? AND k < ?",
            (entry_key(tenant_id, start), entry_key(tenant_id, end)),
        ).fetchone()[0])

    def text_index_stale(self) -> bool:
        """Whether the full-text index may still hold rows of expired entries."""
        return text_stale(self._reader())

    def rebuild_text_index(self, text_of: Callable[[Entry], str], below: Mapping[int, int] | None = None) -> int:
        """Rebuild the search rows and the full-text index from the entries that still have a
        payload (``text_of`` gives an entry's text; rows of a tenant below ``below[tenant]``,
        where every entry has expired, are dropped unread), in one transaction. Clears the
        stale mark; returns the rows indexed."""
        with self._project_lock, self._secure(self._p) as p:
            return rebuild_projection(p, below or {}, self.entries_by_key, text_of)

    def subject_entries(self, tenant_id: int, subject: str, by_actor: bool = False) -> list[Entry]:
        """See :meth:`Store.erase_subject`. ``by_actor``: the search rows below the
        projection's cursor give the subject's entries (by the ``ev_who`` index); only the
        entries from the cursor on are scanned. Otherwise the whole log is scanned (the
        entries table has no index by subject: it would cost every append)."""
        mask = (1 << KEY_SHIFT) - 1
        conn = self._reader()
        if not by_actor:
            rows = conn.execute(ENTRY_COLUMNS + " WHERE tenant_id=? AND subject=? AND sealed IS NOT NULL ORDER BY k",
                                (tenant_id, subject)).fetchall()
        else:
            conn.execute("BEGIN")  # one snapshot of the cursor and the rows below it
            try:
                rows = subject_rows_by_actor(conn, tenant_id, subject)
            finally:
                conn.execute("COMMIT")
        return [Entry(k & mask, i, r, leaf, sub, sealed) for k, i, r, leaf, sub, sealed in rows]

    def erase_subject(
        self, tenant_id: int, subject: str, old_texts: Mapping[int, str], rows: Sequence[ProjectedRow],
        scanned_below: int | None = None,
    ) -> list[int]:
        """See :meth:`Store.erase_subject`. The search rows hold no personal plaintext and
        stay; only the full-text rows whose words changed are replaced (as a rule only the
        personal index's, so only that small index is merged). With ``scanned_below``, the
        entries below it are those of ``old_texts`` (found by one scan), so only the log's
        tail is scanned."""
        with self._project_lock, self._secure(self._p) as p:
            keys = list(old_texts)
            present = projected_actors(p, keys)
            merged = replace_texts(p, [(k, actor, old_texts[k]) for k, actor in present], {x.key: x.text for x in rows})
        known = None if scanned_below is None else (keys, scanned_below)
        with self._write_lock, self._guard():
            with self._secure(self._w) as w:
                erased = erase_subject_rows(w, tenant_id, subject, known)
            self._p.execute("PRAGMA secure_delete=ON")
            try:
                with self._project_lock, self._wal.paused() if self._wal is not None else nullcontext():
                    shred_files(self._w, self._p, merged)
            finally:
                self._p.execute("PRAGMA secure_delete=OFF")
        return erased
