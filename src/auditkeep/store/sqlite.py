"""The embedded store: SQLite in WAL mode, in two files under the data directory.

``log.db`` holds what integrity depends on: entries, tiles, heads, checkpoints, salts and
cursors, written with ``synchronous=FULL`` by default. ``index.db`` holds the query
projection and the full-text index; it is derived from the log by a cursor consumer, can be
deleted at any time and is rebuilt on demand, so it is written without fsync.
"""

from __future__ import annotations

import functools
import operator
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from auditkeep.store.base import (
    EV_FIELDS,
    KEY_SHIFT,
    SUBJECTS_ARE_ACTORS,
    CheckpointRow,
    Entry,
    Head,
    ProjectedRow,
    Query,
    ReaderOpener,
    StoreError,
    StoreUnavailable,
    TileKey,
    entry_key,
)
from auditkeep.store.files import private_dir, private_file, tighten_existing
from auditkeep.store.sqlite_append import (
    ENTRY_ROWS_SQL,
    HEAD_SQL,
    SQLiteAppend,
    head_of,
    read_tiles,
    subject_salts,
)
from auditkeep.store.sqlite_connect import read_only_uri
from auditkeep.store.sqlite_docs import SQLiteDocuments
from auditkeep.store.sqlite_dump import SQLiteDump
from auditkeep.store.sqlite_fulltext import has_personal_index, index_texts, tune
from auditkeep.store.sqlite_lease import FileLease, file_lease
from auditkeep.store.sqlite_retention import SQLiteRetention
from auditkeep.store.sqlite_schema import (
    INDEX_SCHEMA,
    LOG_MIGRATIONS,
    PROJECTION_TABLES,
    upgrade_index,
)
from auditkeep.store.sqlite_search import (
    COMMON_TEXT,
    build_count_by_time,
    build_search,
    build_time_span,
    text_probe,
)
from auditkeep.store.sqlite_walcheckpoint import BACKSTOP_PAGES, WalCheckpointer

# a projected row's search columns, and its (key, actor, text) for the full-text indexes
_EV_ROW = operator.itemgetter(slice(0, EV_FIELDS))
_TEXT_ROW = operator.itemgetter(0, 4, 10)
_EMPTY_ROOT = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


class SQLiteStore(SQLiteDocuments, SQLiteDump, SQLiteRetention):
    """:class:`auditkeep.store.base.Store` on SQLite."""

    dialect = "sqlite"

    def __init__(
        self,
        directory: Path | str,
        durability: str = "full",
        busy_timeout: float = 30.0,
        *,
        read_only: bool = False,
    ) -> None:
        """``read_only`` opens the files with SQLite's ``mode=ro`` (or ``immutable=1`` for a
        copy in a directory nobody may write to) and never writes to them: no migration, no
        writer connection. Without an ``index.db`` to search, a read-only store keeps a
        temporary projection in the system's temporary directory, outside the data."""
        if durability not in ("full", "normal"):
            raise ValueError("durability must be 'full' or 'normal'")
        self.directory = Path(directory)
        self.read_only = read_only
        self.log_path = self.directory / "log.db"
        self.index_path = self.directory / "index.db"
        self._durability = durability
        self._busy_ms = int(busy_timeout * 1000)
        self._write_lock = threading.RLock()
        self._project_lock = threading.Lock()
        self._local = threading.local()
        self._closed = False
        self._all_conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._wconn: sqlite3.Connection | None = None
        self._pconn: sqlite3.Connection | None = None
        self._wal: WalCheckpointer | None = None
        if not read_only:
            # owner only, whatever the umask; SQLite gives -wal and -shm the database file's mode
            private_dir(self.directory)
            for path in (self.log_path, self.index_path):
                private_file(path)
            # and the lease files (projection.lock, ...) that processes of this store create
            locks = tuple(p.name for p in self.directory.glob("*.lock"))
            tighten_existing(self.directory, ("log.db-wal", "log.db-shm", "index.db-wal", "index.db-shm", *locks))
            self._wconn = self._connect(self.log_path, writer=True)
            self._wal = WalCheckpointer(self.log_path, self._synchronous)
            self._migrate()
            self._pconn = self._connect_index()
            return
        if not self.log_path.exists():
            raise StoreError(f"no auditkeep log in {self.directory} (log.db not found)")
        if not self.index_path.exists():
            self.use_temporary_projection()
        self._check_schema()

    def use_temporary_projection(self) -> None:
        """Read-only: search a projection kept in the system's temporary directory (a copy
        of index.db when there is one, taken with SQLite's backup), which searches can then
        bring up to the log's head. The data directory is left as it is."""
        if not self.read_only or self._tmp is not None:
            return
        tmp = tempfile.TemporaryDirectory(prefix="auditkeep-index-")
        target = Path(tmp.name) / "index.db"
        if self.index_path.exists():
            src = sqlite3.connect(read_only_uri(self.index_path), uri=True)
            dst = sqlite3.connect(target)
            try:
                src.backup(dst)
            finally:
                dst.close()
                src.close()
        self._tmp = tmp
        self.index_path = target
        self._pconn = self._connect_index()
        self._local.personal = None
        old = getattr(self._local, "conn", None)
        if old is not None:  # re-attach this thread's reader to the new projection
            self._local.conn = None
            with self._conns_lock:
                self._all_conns.remove(old)
            old.close()

    @property
    def projection_writable(self) -> bool:
        """Whether searches can bring the projection up to date (false for a read-only store
        with an index.db of its own: that one is searched as it is)."""
        return self._pconn is not None

    @property
    def temporary_projection(self) -> bool:
        return self._tmp is not None

    @property
    def _w(self) -> sqlite3.Connection:
        if self._wconn is None:
            raise StoreError("the store is open read-only")
        return self._wconn

    @property
    def _p(self) -> sqlite3.Connection:
        if self._pconn is None:
            raise StoreError("the search projection is open read-only")
        return self._pconn

    # connections ---------------------------------------------------------------------------

    def _connect(self, path: Path, writer: bool = False, read_only: bool = False) -> sqlite3.Connection:
        target = read_only_uri(path) if read_only else str(path)
        conn = sqlite3.connect(
            target, isolation_level=None, check_same_thread=False, timeout=self._busy_ms / 1000, uri=read_only
        )
        conn.execute(f"PRAGMA busy_timeout={self._busy_ms}")
        if not read_only:
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.execute("PRAGMA cache_size=-32768")
        conn.execute("PRAGMA temp_store=MEMORY")
        if writer:
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            # A thread copies the WAL into log.db (sqlite_walcheckpoint.py); a checkpoint
            # inside a commit held it, and every batch queued behind it, for 100-300 ms.
            conn.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
        with self._conns_lock:
            self._all_conns.append(conn)
        return conn

    @property
    def _synchronous(self) -> str:
        return "FULL" if self._durability == "full" else "NORMAL"

    def _connect_index(self) -> sqlite3.Connection:
        conn = self._connect(self.index_path)
        # Derived data: losing the tail of it on power loss only means re-projecting it.
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA wal_autocheckpoint=10000")
        upgrade_index(conn)
        conn.executescript(INDEX_SCHEMA)
        tune(conn)
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise StoreError("store is closed")
            conn = self._connect(self.log_path, read_only=self.read_only)
            conn.execute("PRAGMA query_only=ON")
            index_ro = self.read_only and self._pconn is None
            conn.execute("ATTACH DATABASE ? AS ix", (read_only_uri(self.index_path) if index_ro else str(self.index_path),))
            self._local.conn = conn
        return conn

    def _check_schema(self) -> None:
        version = self.schema_version()
        if version != len(LOG_MIGRATIONS):
            raise StoreError(
                f"log.db has schema version {version}, this auditkeep reads version {len(LOG_MIGRATIONS)}: "
                "open it once with a writer of this version (e.g. `auditkeep serve`), or read it with the "
                "auditkeep that wrote it"
            )

    def _migrate(self) -> None:
        with self._write_lock:
            w = self._w
            w.execute("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            row = w.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = int(row[0]) if row else 0
            fresh = version == 0
            for number, script in enumerate(LOG_MIGRATIONS, start=1):
                if number <= version:
                    continue
                w.execute("BEGIN IMMEDIATE")
                try:
                    for statement in script:
                        w.execute(statement)
                    w.execute(
                        "INSERT INTO meta(key, value) VALUES('schema_version', ?) "
                        "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                        (str(number),),
                    )
                    w.execute("COMMIT")
                except BaseException:
                    w.execute("ROLLBACK")
                    raise
            if fresh:  # a log created empty: every subject is an actor id until a writer says not
                w.execute(
                    "INSERT INTO meta(key, value) SELECT ?, '1' WHERE NOT EXISTS (SELECT 1 FROM entries) "
                    "ON CONFLICT(key) DO NOTHING", (SUBJECTS_ARE_ACTORS,))

    def schema_version(self) -> int:
        try:
            row = self._reader().execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot read {self.log_path}: {exc}") from exc
        return int(row[0]) if row else 0

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._wal is not None:
            self._wal.close()
        with self._write_lock, self._project_lock, self._conns_lock:
            for conn in self._all_conns:
                with suppress(sqlite3.Error):
                    conn.close()
            self._all_conns.clear()
        if self._tmp is not None:
            self._tmp.cleanup()

    # tenants -------------------------------------------------------------------------------

    def tenant(self, name: str, create: bool = False) -> Head | None:
        row = self._reader().execute(HEAD_SQL + " WHERE name=?", (name,)).fetchone()
        if row is not None or not create:
            return head_of(row) if row else None
        with self._write_lock, self._guard():
            self._w.execute(
                "INSERT OR IGNORE INTO logs(name, size, root, received_ns, cp_size, cp_ns, created_ns) "
                "VALUES(?, 0, ?, 0, 0, 0, ?)",
                (name, _EMPTY_ROOT, time.time_ns()),
            )
            row = self._w.execute(HEAD_SQL + " WHERE name=?", (name,)).fetchone()
        return head_of(row)

    def heads(self) -> list[Head]:
        return [head_of(r) for r in self._reader().execute(HEAD_SQL + " ORDER BY name")]

    # append ----------------------------------------------------------------------------------

    @contextmanager
    def append_txn(self, tenant_ids: Sequence[int]) -> Iterator[SQLiteAppend]:
        with self._write_lock, self._guard():
            w = self._w
            w.execute("BEGIN IMMEDIATE")
            try:
                txn = SQLiteAppend(w, tenant_ids)
                yield txn
                w.execute("COMMIT")
            except BaseException:
                if w.in_transaction:
                    w.execute("ROLLBACK")
                raise
        if self._wal is not None:
            self._wal.committed()

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            # the primary result code (the low byte): SQLITE_BUSY_SNAPSHOT is still busy
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise StoreUnavailable(f"database is busy: {exc}") from exc
            raise StoreError(f"sqlite: {exc}") from exc

    # reads -------------------------------------------------------------------------------------

    def entries(self, tenant_id: int, start: int, end: int) -> Iterator[Entry]:
        """Entries with start <= index < end in index order, read in chunks."""
        mask = (1 << KEY_SHIFT) - 1
        for rows in self._key_chunks(ENTRY_ROWS_SQL, tenant_id, start, end, 4096):
            for k, i, r, leaf, subject, sealed in rows:
                yield Entry(k & mask, i, r, leaf, subject, sealed)

    def entries_raw(self, tenant_id: int, start: int, end: int, chunk: int = 8192) -> Iterator[list[tuple[int, bytes, int, bytes]]]:
        """Chunks of (key, id, received_ns, leaf), for verification's hot loop."""
        yield from self._key_chunks(
            "SELECT k, id, received_ns, leaf FROM entries WHERE k >= ? AND k < ? ORDER BY k LIMIT ?",
            tenant_id, start, end, chunk,
        )

    def entry_rows(
        self, tenant_id: int, start: int, end: int, chunk: int = 8192
    ) -> Iterator[list[tuple[int, bytes, int, bytes, str | None, bytes | None]]]:
        """Chunks of (key, id, received_ns, leaf, subject, sealed plaintext), for verify."""
        yield from self._key_chunks(ENTRY_ROWS_SQL, tenant_id, start, end, chunk)

    def _key_chunks(self, sql: str, tenant_id: int, start: int, end: int, chunk: int) -> Iterator[list[Any]]:
        """Chunks of the rows ``sql`` (key first; placeholders lo, hi, limit) gives for
        start <= index < end, in key order: each chunk resumes after the last key."""
        conn = self._reader()
        lo = entry_key(tenant_id, start)
        hi = entry_key(tenant_id, end)
        while lo < hi:
            rows = conn.execute(sql, (lo, hi, chunk)).fetchall()
            if not rows:
                return
            yield rows
            lo = rows[-1][0] + 1
            if len(rows) < chunk:
                return

    def entry_by_id(self, tenant_id: int, event_id: bytes) -> Entry | None:
        row = (
            self._reader()
            .execute(
                "SELECT k, id, received_ns, leaf, subject, sealed FROM entries WHERE tenant_id=? AND id=?",
                (tenant_id, event_id),
            )
            .fetchone()
        )
        if row is None:
            return None
        return Entry(row[0] & ((1 << KEY_SHIFT) - 1), row[1], row[2], row[3], row[4], row[5])

    def entries_by_key(self, keys: Sequence[int]) -> dict[int, Entry]:
        out: dict[int, Entry] = {}
        conn = self._reader()
        mask = (1 << KEY_SHIFT) - 1
        for i in range(0, len(keys), 500):
            part = keys[i : i + 500]
            marks = ",".join("?" * len(part))
            for k, eid, r, leaf, subject, sealed in conn.execute(
                f"SELECT k, id, received_ns, leaf, subject, sealed FROM entries WHERE k IN ({marks})", part
            ):
                out[k] = Entry(k & mask, eid, r, leaf, subject, sealed)
        return out

    def read_tiles(self, tenant_id: int, keys: Sequence[TileKey]) -> dict[TileKey, bytes]:
        return read_tiles(self._reader(), tenant_id, keys)

    def tiles_range(self, tenant_id: int, level: int, start: int, end: int) -> dict[int, bytes]:
        rows = self._reader().execute(
            "SELECT idx, data FROM tiles WHERE tenant_id=? AND level=? AND idx>=? AND idx<?",
            (tenant_id, level, start, end),
        )
        return {i: d for i, d in rows}

    def checkpoints(self, tenant_id: int) -> Iterator[CheckpointRow]:
        rows = self._reader().execute(
            "SELECT tenant_id, size, root, note, signed_ns FROM checkpoints WHERE tenant_id=? ORDER BY size",
            (tenant_id,),
        ).fetchall()
        for r in rows:
            yield CheckpointRow(*r)

    def checkpoint_at(self, tenant_id: int, size: int) -> CheckpointRow | None:
        r = self._reader().execute(
            "SELECT tenant_id, size, root, note, signed_ns FROM checkpoints WHERE tenant_id=? AND size=?",
            (tenant_id, size),
        ).fetchone()
        return CheckpointRow(*r) if r else None

    def checkpoints_newest(self, tenant_id: int, below: int | None, limit: int) -> list[CheckpointRow]:
        rows = self._reader().execute(
            "SELECT tenant_id, size, root, note, signed_ns FROM checkpoints WHERE tenant_id=? AND size<? "
            "ORDER BY size DESC LIMIT ?",
            (tenant_id, 1 << 62 if below is None else below, limit),
        ).fetchall()
        return [CheckpointRow(*r) for r in rows]

    def checkpoint_from(self, tenant_id: int, size: int) -> CheckpointRow | None:
        r = self._reader().execute(
            "SELECT tenant_id, size, root, note, signed_ns FROM checkpoints WHERE tenant_id=? AND size>=? "
            "ORDER BY size LIMIT 1",
            (tenant_id, size),
        ).fetchone()
        return CheckpointRow(*r) if r else None

    def latest_checkpoint(self, tenant_id: int) -> CheckpointRow | None:
        r = self._reader().execute(
            "SELECT tenant_id, size, root, note, signed_ns FROM checkpoints WHERE tenant_id=? "
            "ORDER BY size DESC LIMIT 1",
            (tenant_id,),
        ).fetchone()
        return CheckpointRow(*r) if r else None

    # consumers -------------------------------------------------------------------------------

    def cursor(self, name: str, tenant_id: int) -> tuple[int, bytes | None]:
        r = self._reader().execute(
            "SELECT position, state FROM cursors WHERE name=? AND tenant_id=?", (name, tenant_id)
        ).fetchone()
        return (r[0], r[1]) if r else (0, None)

    def set_cursor(self, name: str, tenant_id: int, position: int, state: bytes | None = None) -> None:
        with self._write_lock, self._guard():
            self._w.execute(
                "INSERT INTO cursors(name, tenant_id, position, state, updated_ns) VALUES(?,?,?,?,?) "
                "ON CONFLICT(name, tenant_id) DO UPDATE SET position=excluded.position, "
                "state=excluded.state, updated_ns=excluded.updated_ns",
                (name, tenant_id, position, state, time.time_ns()),
            )

    # projection --------------------------------------------------------------------------------

    def projection_position(self, tenant_id: int) -> int:
        r = self._reader().execute(
            "SELECT position FROM ix.proj_cursor WHERE tenant_id=?", (tenant_id,)
        ).fetchone()
        return int(r[0]) if r else 0

    def project(self, tenant_id: int, rows: Sequence[ProjectedRow], position: int) -> None:
        """Add rows (in log order) to the projection and move its cursor, atomically; rows below the
        stored position (another process got there first) are skipped."""
        with self._project_lock:
            p = self._p
            p.execute("BEGIN IMMEDIATE")
            try:
                r = p.execute("SELECT position FROM proj_cursor WHERE tenant_id=?", (tenant_id,)).fetchone()
                current = int(r[0]) if r else 0
                fresh = rows if not rows or rows[0].position >= current else [x for x in rows if x.position >= current]
                if fresh:
                    # OR IGNORE, not OR REPLACE: no row of an index at or above the cursor is
                    # there to replace, and REPLACE made SQLite keep a statement journal (a copy
                    # of every page each row's insert touched): ~4 µs an event of the projection.
                    p.executemany(
                        "INSERT OR IGNORE INTO ev(k, tenant_id, time_ns, received_ns, actor, action, rtype, rid, "
                        "outcome, category) VALUES(?,?,?,?,?,?,?,?,?,?)",
                        map(_EV_ROW, fresh),
                    )
                    index_texts(p, map(_TEXT_ROW, fresh))
                if position > current:
                    p.execute(
                        "INSERT INTO proj_cursor(tenant_id, position) VALUES(?, ?) "
                        "ON CONFLICT(tenant_id) DO UPDATE SET position=excluded.position",
                        (tenant_id, position),
                    )
                p.execute("COMMIT")
            except BaseException:
                if p.in_transaction:
                    p.execute("ROLLBACK")
                raise

    def reset_projection(self) -> None:
        """Forget the projection; the consumer rebuilds it from the log."""
        with self._project_lock:
            self._p.executescript("".join(f"DROP TABLE IF EXISTS {t};" for t in PROJECTION_TABLES))
            self._p.executescript(INDEX_SCHEMA)
            tune(self._p)

    def _personal_words(self) -> bool:
        """Whether the projection keeps personal words apart (``ev_pfts``); a read-only store
        may search an index.db of the older layout as it is."""
        known: bool | None = getattr(self._local, "personal", None)
        if known is None:
            known = self._local.personal = has_personal_index(self._reader(), "ix")
        return known

    def search(self, q: Query) -> list[tuple[int, int]]:
        conn = self._reader()
        personal = self._personal_words()
        common = False
        if q.text:
            probe, probe_params = text_probe(q, personal)
            common = conn.execute(probe, probe_params).fetchone()[0] > COMMON_TEXT
        sql, params = build_search(q, common, personal)
        return [(t, k) for t, k in conn.execute(sql, params)]

    def time_span(self, q: Query) -> tuple[int, int] | None:
        lo, hi = self._reader().execute(*build_time_span(q, self._personal_words())).fetchone()
        return None if lo is None else (int(lo), int(hi))

    def count_by_time(self, q: Query, origin_ns: int, step_ns: int) -> list[tuple[int, str, int]]:
        sql, params = build_count_by_time(q, origin_ns, step_ns, self._personal_words())
        return [(int(b), str(o), int(n)) for b, o, n in self._reader().execute(sql, params)]

    def explain(self, q: Query) -> list[str]:
        sql, params = build_search(q, personal=self._personal_words())
        return [r[-1] for r in self._reader().execute("EXPLAIN QUERY PLAN " + sql, params)]

    def analyze(self) -> None:
        with self._project_lock:
            self._p.execute("ANALYZE")

    def subject_salts(self, tenant_id: int, subjects: Sequence[str]) -> dict[str, bytes]:
        return subject_salts(self._reader(), tenant_id, subjects)

    @classmethod
    def open_reader(cls, directory: Path | str) -> SQLiteStore:
        """The store in ``directory`` opened read-only (what a worker process reads with)."""
        return cls(directory, read_only=True)

    def reader_opener(self) -> ReaderOpener:
        # a partial of a classmethod pickles by name: the worker imports this module
        return functools.partial(SQLiteStore.open_reader, self.directory)

    # leases --------------------------------------------------------------------------------------

    def lease(self, name: str) -> FileLease | None:
        """An exclusive ``flock`` on ``<data>/<name>.lock`` (see :func:`file_lease`)."""
        return file_lease(self.directory, name)

    # settings ----------------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        r = self._reader().execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return r[0] if r else None

    def set_meta(self, key: str, value: str) -> None:
        with self._write_lock, self._guard():
            self._w.execute(
                "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (key, value),
            )

    def file_sizes(self) -> dict[str, int]:
        out = {}
        for p in self.directory.glob("*.db*"):
            out[p.name] = os.path.getsize(p)
        return out
