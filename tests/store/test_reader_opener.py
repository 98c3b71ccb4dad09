"""LogReads.reader_opener: what verify's worker processes open a log with."""

from __future__ import annotations

import pickle
from pathlib import Path

from auditkeep.ledger import Ledger
from auditkeep.store.base import LogReads
from auditkeep.store.sqlite import SQLiteStore


def test_the_sqlite_opener_pickles_and_opens_the_same_log_read_only(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "data") as lg:
        lg.append([{"actor": {"id": f"u{i}"}, "action": "db.query"} for i in range(10)])
        store = lg.store
        assert isinstance(store, SQLiteStore)
        opener = store.reader_opener()
        # sent to a worker process as it is here: by pickle
        reader: LogReads = pickle.loads(pickle.dumps(opener))()
        assert isinstance(reader, SQLiteStore) and reader.read_only
        head = lg.head("default")
        try:
            assert [e.leaf for e in reader.entries(head.tenant_id, 0, 10)] == [
                e.leaf for e in store.entries(head.tenant_id, 0, 10)
            ]
        finally:
            reader.close()


def test_an_encrypted_store_gives_no_opener(tmp_path: Path) -> None:
    # a worker would open the inner store and read ciphertext: verify reads in-process instead
    from auditkeep.crypto.atrest import EncryptionSettings
    from auditkeep.ledger.atrest import EncryptedStore

    with Ledger.open(tmp_path / "data", encryption=EncryptionSettings(enabled=True)) as lg:
        assert isinstance(lg.store, EncryptedStore)
        assert lg.store.reader_opener() is None
        assert lg.store.inner.reader_opener() is not None
