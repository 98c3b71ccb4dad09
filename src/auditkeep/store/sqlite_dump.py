"""The embedded store read whole, as stored: what copying it elsewhere needs (``auditkeep db
copy``, :mod:`auditkeep.store.postgres_copy`) beyond the log's own reads."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any


class SQLiteDump:
    """Rows of the embedded store's tables, a base of :class:`~auditkeep.store.sqlite.SQLiteStore`
    (which provides the read connection declared here)."""

    if TYPE_CHECKING:

        def _reader(self) -> sqlite3.Connection: ...

    def tile_rows(self, tenant_id: int) -> list[tuple[int, int, bytes]]:
        """(level, index, data) of every stored tile of a tenant's log."""
        return self._reader().execute("SELECT level, idx, data FROM tiles WHERE tenant_id = ?", (tenant_id,)).fetchall()

    def subject_rows(self, tenant_id: int) -> list[tuple[str, bytes, int]]:
        """(subject, salt, created_ns) of every subject that still has a salt."""
        return self._reader().execute(
            "SELECT subject, salt, created_ns FROM subjects WHERE tenant_id = ?", (tenant_id,)
        ).fetchall()

    def tenant_created_ns(self, tenant_id: int) -> int | None:
        row = self._reader().execute("SELECT created_ns FROM logs WHERE tenant_id = ?", (tenant_id,)).fetchone()
        return None if row is None else int(row[0])

    def meta_rows(self) -> list[tuple[str, str]]:
        """The settings kept with the data, but the schema version (the destination's own)."""
        return self._reader().execute("SELECT key, value FROM meta WHERE key <> 'schema_version'").fetchall()

    def cursor_rows(self) -> list[tuple[str, int, int, bytes | None, int]]:
        """(name, tenant_id, position, state, updated_ns) of every consumer's cursor."""
        return self._reader().execute("SELECT name, tenant_id, position, state, updated_ns FROM cursors").fetchall()

    def doc_rows(self) -> list[tuple[Any, ...]]:
        """(collection, id, tenant, created_ns, status, data) of every document."""
        return self._reader().execute("SELECT collection, id, tenant, created_ns, status, data FROM docs").fetchall()
