"""The embedded store's directory is 0700 and every file in it 0600, whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from auditkeep.ledger import Ledger


@pytest.fixture(params=[0o022, 0o000])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield int(request.param)
    finally:
        os.umask(old)


def _modes(data: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in [data, *data.iterdir()]}


def test_every_store_file_is_owner_only(tmp_path: Path, umask: int) -> None:
    data = tmp_path / "data"
    with Ledger.open(data) as lg:
        lg.append([{"actor": {"id": "a"}, "action": "x.y", "metadata": {"password": "hunter2"}}], "t")
        assert lg.search("t").items  # the projection wrote index.db and its WAL
        lease = lg.store.lease("alerts-runner")
        assert lease is not None
        modes = _modes(data)
        lease.release()
    assert {"log.db", "log.db-wal", "log.db-shm", "index.db", "index.db-wal", "signing.key"} <= set(modes)
    assert modes.pop("data") == 0o700, oct(_modes(data)["data"])
    assert {name: oct(m) for name, m in modes.items() if m != 0o600} == {}


def test_files_left_loose_by_an_earlier_release_are_tightened(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Ledger.open(data) as lg:
        lg.append([{"actor": {"id": "a"}, "action": "x.y"}], "t")
    data.chmod(0o755)
    for p in data.iterdir():
        if p.name != "signing.key":  # a loose signing key is refused, not fixed (test_signing)
            p.chmod(0o644)
    with Ledger.open(data) as lg:
        assert lg.search("t").items
        modes = _modes(data)
    assert modes.pop("data") == 0o700
    assert all(m == 0o600 for m in modes.values()), {k: oct(v) for k, v in modes.items()}
