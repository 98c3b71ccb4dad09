"""An attacker with write access to the store's tables but not to the signing key.

The tests of issue 9's findings edit the log the way such an attacker would — plain SQL on
the SQLite file or the PostgreSQL schema — and then check what a reader sees. Statements
are written with ``?`` placeholders and run on either store.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from auditkeep.ledger import Ledger
from auditkeep.ledger.reader import LogReader
from auditkeep.log.hashing import leaf_hash
from auditkeep.log.tiles import Frontier

KEY_SHIFT = 40


class Attacker:
    def __init__(self, ledger: Ledger) -> None:
        store: Any = ledger.store
        self.dialect = store.dialect
        self.tid = ledger.tenant_id("acme")
        if self.dialect == "sqlite":
            self.path: Path = store.log_path
        else:
            import pg_support  # type: ignore[import-not-found]

            self.url = pg_support.url_for_schema(store.schema)
            self.schema = store.schema

    @contextmanager
    def _conn(self) -> Iterator[Any]:
        if self.dialect == "sqlite":
            import sqlite3

            conn = sqlite3.connect(self.path)
            try:
                with conn:
                    yield conn
            finally:
                conn.close()
        else:
            import psycopg

            import pg_support

            with psycopg.connect(pg_support.base_url(), autocommit=False) as conn:
                conn.execute(f'SET search_path TO "{self.schema}"')
                yield conn
                conn.commit()

    def run(self, *statements: tuple[str, Sequence[Any]]) -> None:
        with self._conn() as conn:
            for sql, params in statements:
                conn.execute(self._sql(sql), tuple(params))

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._conn() as conn:
            return [tuple(r) for r in conn.execute(self._sql(sql), tuple(params)).fetchall()]

    def _sql(self, sql: str) -> str:
        return sql if self.dialect == "sqlite" else sql.replace("?", "%s")

    def key(self, index: int) -> int:
        return (self.tid << KEY_SHIFT) | index

    # edits ------------------------------------------------------------------------------------

    def leaf(self, index: int) -> bytes:
        return bytes(self.rows("SELECT leaf FROM entries WHERE k=?", (self.key(index),))[0][0])

    def sealed(self, index: int) -> bytes:
        return bytes(self.rows("SELECT sealed FROM entries WHERE k=?", (self.key(index),))[0][0])

    def set_sealed(self, index: int, plain: bytes) -> None:
        self.run(("UPDATE entries SET sealed=? WHERE k=?", (plain, self.key(index))))

    def checkpoint_sizes(self) -> list[int]:
        return [int(r[0]) for r in self.rows("SELECT size FROM checkpoints WHERE tenant_id=? ORDER BY size", (self.tid,))]

    def delete_checkpoints_above(self, size: int) -> None:
        self.run(("DELETE FROM checkpoints WHERE tenant_id=? AND size>?", (self.tid, size)))

    def set_checkpointed_size(self, size: int) -> None:
        """What the head says was signed last (the attacker covering their tracks)."""
        self.run(("UPDATE logs SET cp_size=? WHERE tenant_id=?", (size, self.tid)))

    def rewrite(self, edits: dict[int, bytes] | None = None, keep: int | None = None) -> None:
        """Replace leaves (``edits``) and/or drop every entry from ``keep`` on, then rebuild
        the tiles and the head's size and root so the store is consistent with itself."""
        rows = self.rows("SELECT k, leaf FROM entries WHERE tenant_id=? ORDER BY k", (self.tid,))
        leaves = [bytes(leaf) for _, leaf in rows]
        for index, new in (edits or {}).items():
            leaves[index] = new
        if keep is not None:
            leaves = leaves[:keep]
        f = Frontier()
        tiles = f.append([leaf_hash(x) for x in leaves])
        statements: list[tuple[str, Sequence[Any]]] = [
            ("UPDATE entries SET leaf=? WHERE k=?", (new, self.key(index))) for index, new in (edits or {}).items()
        ]
        if keep is not None:
            statements.append(("DELETE FROM entries WHERE k>=? AND k<?", (self.key(keep), self.key(1 << 39))))
        statements.append(("DELETE FROM tiles WHERE tenant_id=?", (self.tid,)))
        statements += [
            ("INSERT INTO tiles(tenant_id, level, idx, data) VALUES(?,?,?,?)", (self.tid, lv, ix, data))
            for (lv, ix), data in tiles.items()
        ]
        statements.append(("UPDATE logs SET size=?, root=? WHERE tenant_id=?", (f.size, f.root(), self.tid)))
        self.run(*statements)

    def replace_keys_and_resign(self, log_id: str, directory: Path | None) -> str:
        """A key of the attacker's in place of the log's (the key file and the verifier keys
        recorded in the store), and every checkpoint signed again with it over the roots the
        stored events now produce. Returns the new verifier key."""
        import json

        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        from auditkeep.crypto.signing import format_signing_key
        from auditkeep.ledger.datadir import key_name
        from auditkeep.log.checkpoint import Checkpoint
        from auditkeep.log.note import NoteSigner, sign_note

        private = Ed25519PrivateKey.generate()
        signer = NoteSigner(key_name(log_id), private)
        vkey = signer.verifier_key()
        origin = f"auditkeep.local/{log_id}/acme"
        leaves = [bytes(r[0]) for r in self.rows("SELECT leaf FROM entries WHERE tenant_id=? ORDER BY k", (self.tid,))]
        f = Frontier()
        statements: list[tuple[str, Sequence[Any]]] = [
            ("UPDATE meta SET value=? WHERE key='verifier_key'", (vkey,)),
            ("UPDATE meta SET value=? WHERE key='verifier_keys'", (json.dumps([{"vkey": vkey}]),)),
        ]
        for (size,) in self.rows("SELECT size FROM checkpoints WHERE tenant_id=? ORDER BY size", (self.tid,)):
            f.append([leaf_hash(x) for x in leaves[f.size : int(size)]])
            note = sign_note(Checkpoint(origin, f.size, f.root()).body(), [NoteSigner(origin, private)])
            statements.append(
                ("UPDATE checkpoints SET note=?, root=? WHERE tenant_id=? AND size=?", (note, f.root(), self.tid, size))
            )
        self.run(*statements)
        if directory is not None:
            key_file = directory / "signing.key"
            key_file.unlink()
            key_file.write_text(format_signing_key(signer) + "\n")
            key_file.chmod(0o600)
        return vkey


def open_reader(ledger: Ledger) -> LogReader:
    """A read-only reader of the same store (a new connection, as an auditor would open)."""
    store: Any = ledger.store
    if store.dialect == "sqlite":
        return LogReader.open(store.directory)
    import pg_support
    from auditkeep.store.postgres import PostgresStore

    return LogReader(PostgresStore(pg_support.url_for_schema(store.schema), read_only=True, max_size=2))
