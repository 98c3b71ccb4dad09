"""The encrypted ledger on either store, for the tests of encryption at rest."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from auditkeep.crypto.atrest import EncryptionSettings
from auditkeep.ledger import Ledger, LedgerConfig
from auditkeep.ledger.atrest import at_rest
from auditkeep.ledger.datadir import establish

ON = EncryptionSettings(enabled=True)


@pytest.fixture
def open_encrypted(
    request: pytest.FixtureRequest, tmp_path: Path, store_kind: str
) -> Iterator[Callable[..., Ledger]]:
    made: list[Ledger] = []
    data = tmp_path / "data"

    def factory(settings: EncryptionSettings = ON) -> Ledger:
        cfg = LedgerConfig()
        if store_kind == "sqlite":
            lg = Ledger.open(data, cfg, encryption=settings)
        else:
            import pg_support  # type: ignore[import-not-found]

            data.mkdir(exist_ok=True)
            raw = pg_support.store_for_test(request, tmp_path, cfg)
            store = at_rest(raw, settings, data, create=True)
            identity, _ = establish(store, data)
            lg = Ledger(store, identity, cfg)
        made.append(lg)
        return lg

    yield factory
    for lg in made:
        lg.close()
