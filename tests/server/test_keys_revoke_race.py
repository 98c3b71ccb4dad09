"""Revoking admin keys from two processes at once never leaves no admin key for all tenants."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from auditkeep.ledger.config import LedgerConfig
from auditkeep.server.keys import ALL_TENANTS, KeyStore, LastAdminKey


@pytest.fixture(params=["sqlite", "postgres"])
def two_nodes(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[Any]]:
    """Two store objects on one store, as two server processes would have."""
    stores: list[Any] = []
    for _ in range(2):
        if request.param == "sqlite":
            from auditkeep.store.sqlite import SQLiteStore

            stores.append(SQLiteStore(tmp_path / "data"))
        else:
            import pg_support

            stores.append(pg_support.store_for_test(request, tmp_path, LedgerConfig()))
    yield stores
    for s in stores:
        s.close()


def test_two_nodes_revoking_the_last_two_admin_keys_leave_one(two_nodes: list[Any]) -> None:
    keys = [KeyStore(s, cache_seconds=0) for s in two_nodes]
    survivor = keys[0].create(ALL_TENANTS, "admin")[0].keyid
    for _round in range(20):
        # exactly two usable admin keys, then each node revokes one of them at the same moment
        pair = [survivor, keys[0].create(ALL_TENANTS, "admin")[0].keyid]
        barrier = threading.Barrier(2)
        outcome: dict[str, str] = {}

        def revoke(
            i: int, pair: list[str] = pair, barrier: threading.Barrier = barrier, outcome: dict[str, str] = outcome
        ) -> None:
            barrier.wait()
            try:
                keys[i].revoke(pair[i])
                outcome[pair[i]] = "revoked"
            except LastAdminKey:
                outcome[pair[i]] = "refused"

        threads = [threading.Thread(target=revoke, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcome.values()) == ["refused", "revoked"]
        active = keys[1].list(ALL_TENANTS, include_revoked=False)
        assert [k.keyid for k in active] == [k for k, v in outcome.items() if v == "refused"]
        survivor = active[0].keyid
