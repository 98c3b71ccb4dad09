"""verify finds every kind of tampering, done by editing the SQLite file directly."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from auditkeep.ledger import Ledger, LedgerConfig
from auditkeep.log.hashing import leaf_hash
from auditkeep.log.tiles import Frontier

N = 700  # three level-0 tiles, the last one partial
TID = 1


@pytest.fixture(autouse=True, params=["here", "workers"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every case both ways: checked in this process, and by worker processes in ranges of
    100 entries (as a large log is)."""
    from auditkeep.ledger import verify_rows

    if request.param == "workers":
        monkeypatch.setattr(verify_rows, "PARALLEL_FROM", 0)
        monkeypatch.setattr(verify_rows, "_RANGE", 100)
    return str(request.param)


@pytest.fixture
def data(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "data"
    with Ledger.open(d, LedgerConfig(checkpoint_interval=3600)) as lg:
        for start in range(0, N, 100):
            lg.append([{"actor": {"id": f"u{i}"}, "action": "db.query", "metadata": {"i": i}} for i in range(start, start + 100)])
            lg.checkpoint(new=True)
        assert lg.verify().ok
    yield d


def _sql(d: Path, *statements: tuple[str, tuple[object, ...]]) -> None:
    conn = sqlite3.connect(d / "log.db")
    with conn:
        for sql, params in statements:
            conn.execute(sql, params)
    conn.close()


def _verify(d: Path, trusted: tuple[str, ...] = ()) -> tuple[bool, int | None, list[str]]:
    with Ledger.open(d, create=False, background=False) as lg:
        rep = lg.verify(trusted=trusted).tenants[0]
    first = rep.first
    return rep.ok, (first.index if first else None), [p.kind for p in rep.problems]


def _key(index: int) -> int:
    return (TID << 40) | index


def test_intact(data: Path) -> None:
    assert _verify(data) == (True, None, [])


def test_one_byte_changed_in_an_event(data: Path) -> None:
    conn = sqlite3.connect(data / "log.db")
    leaf = conn.execute("SELECT leaf FROM entries WHERE k=?", (_key(321),)).fetchone()[0]
    conn.close()
    altered = leaf.replace(b'"i":321', b'"i":322')
    assert altered != leaf
    _sql(data, ("UPDATE entries SET leaf=? WHERE k=?", (altered, _key(321))))
    ok, first, kinds = _verify(data)
    assert not ok and first == 321
    assert "tile" in kinds or "event" in kinds


def test_deleted_event(data: Path) -> None:
    _sql(data, ("DELETE FROM entries WHERE k=?", (_key(400),)))
    ok, first, kinds = _verify(data)
    assert not ok and first == 400 and "missing" in kinds


def test_two_events_swapped(data: Path) -> None:
    conn = sqlite3.connect(data / "log.db")
    a = conn.execute("SELECT leaf FROM entries WHERE k=?", (_key(10),)).fetchone()[0]
    b = conn.execute("SELECT leaf FROM entries WHERE k=?", (_key(20),)).fetchone()[0]
    conn.close()
    _sql(data, ("UPDATE entries SET leaf=? WHERE k=?", (b, _key(10))), ("UPDATE entries SET leaf=? WHERE k=?", (a, _key(20))))
    ok, first, _ = _verify(data)
    assert not ok and first == 10


def test_truncated_log(data: Path) -> None:
    _sql(data, ("DELETE FROM entries WHERE k>=?", (_key(650),)))
    ok, first, kinds = _verify(data)
    assert not ok and first == 650 and "missing" in kinds


def test_tile_changed(data: Path) -> None:
    conn = sqlite3.connect(data / "log.db")
    tile = conn.execute("SELECT data FROM tiles WHERE tenant_id=? AND level=0 AND idx=1", (TID,)).fetchone()[0]
    conn.close()
    altered = bytearray(tile)
    altered[32 * 5] ^= 1
    _sql(data, ("UPDATE tiles SET data=? WHERE tenant_id=? AND level=0 AND idx=1", (bytes(altered), TID)))
    ok, first, kinds = _verify(data)
    assert not ok and first == 256 + 5 and kinds == ["tile"]


def test_checkpoint_with_bad_signature(data: Path) -> None:
    conn = sqlite3.connect(data / "log.db")
    note = conn.execute("SELECT note FROM checkpoints WHERE tenant_id=? AND size=300", (TID,)).fetchone()[0]
    conn.close()
    text, sig_line = note.rsplit("\n— ", 1)
    name, sig = sig_line.split(" ")
    sig = ("A" if sig[10] != "A" else "B").join([sig[:10], sig[11:]])
    _sql(data, ("UPDATE checkpoints SET note=? WHERE tenant_id=? AND size=300", (f"{text}\n— {name} {sig}", TID)))
    ok, _, kinds = _verify(data)
    assert not ok and kinds == ["checkpoint"]


def _rewrite_as_shorter_log(d: Path, keep: int) -> None:
    """What an attacker with the database would do: drop the tail and recompute a
    consistent tree, tiles and head for what is left."""
    conn = sqlite3.connect(d / "log.db")
    leaves = [r[0] for r in conn.execute("SELECT leaf FROM entries WHERE k<? ORDER BY k", (_key(keep),))]
    f = Frontier()
    tiles = f.append([leaf_hash(x) for x in leaves])
    with conn:
        conn.execute("DELETE FROM entries WHERE k>=?", (_key(keep),))
        conn.execute("DELETE FROM tiles WHERE tenant_id=?", (TID,))
        conn.executemany("INSERT INTO tiles VALUES(?,?,?,?)", [(TID, lv, ix, b) for (lv, ix), b in tiles.items()])
        conn.execute("UPDATE logs SET size=?, root=? WHERE tenant_id=?", (keep, f.root(), TID))
    conn.close()


def test_rollback_below_a_stored_checkpoint(data: Path) -> None:
    _rewrite_as_shorter_log(data, 450)
    ok, first, kinds = _verify(data)
    assert not ok and "rollback" in kinds and first == 450


def test_rollback_with_checkpoints_removed_is_caught_by_a_trusted_checkpoint(data: Path) -> None:
    with Ledger.open(data, create=False, background=False) as lg:
        handed_out = lg.checkpoint()  # e.g. saved by an auditor earlier
    _rewrite_as_shorter_log(data, 450)
    _sql(data, ("DELETE FROM checkpoints WHERE size>?", (450,)), ("UPDATE logs SET cp_size=400", ()))
    assert _verify(data)[0]  # internally consistent again...
    ok, first, kinds = _verify(data, (handed_out,))
    assert not ok and kinds == ["rollback"] and first == 450  # ...but not with what was handed out


def test_rewritten_history_contradicts_signed_checkpoints(data: Path) -> None:
    """Changing an event and recomputing every tile and the head still fails: the signed
    checkpoints commit to the old roots."""
    conn = sqlite3.connect(data / "log.db")
    leaf = conn.execute("SELECT leaf FROM entries WHERE k=?", (_key(5),)).fetchone()[0]
    conn.close()
    _sql(data, ("UPDATE entries SET leaf=? WHERE k=?", (leaf.replace(b'"i":5', b'"i":6'), _key(5))))
    _rewrite_as_shorter_log(data, N)
    ok, _, kinds = _verify(data)
    assert not ok and set(kinds) == {"checkpoint"}
