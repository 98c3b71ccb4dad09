"""Segments of an encrypted store hold their leaves sealed (a data key of the segment's own,
wrapped by the master key), on both stores: no plaintext in any archive file; the segment
still proves itself against the signed checkpoint without the master key (the leaves are
counted as sealed, not checked) and, with it, every leaf is opened and checked; a changed
line is caught either way; restoring needs the master key and writes an encrypted directory;
an erased subject's personal plaintext is in no segment written after the erasure."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zstandard
from archive_support import DAY, MARKER_IP, MARKER_NAME, check, fill, key

from auditkeep.archive.check import check_segment, read_segment_files
from auditkeep.archive.restore import restore_segment
from auditkeep.archive.run import run_archive
from auditkeep.archive.target import DirTarget
from auditkeep.crypto.atrest import EncryptionSettings
from auditkeep.errors import UserError
from auditkeep.ledger import Ledger, LedgerConfig
from auditkeep.ledger.atrest import EncryptedStore, at_rest
from auditkeep.ledger.datadir import establish
from auditkeep.ledger.reader import LogReader
from auditkeep.retention.erase import erase_subject

ON = EncryptionSettings(enabled=True)


@pytest.fixture
def encrypted(request: pytest.FixtureRequest, tmp_path: Path, store_kind: str) -> Iterator[Callable[[], Ledger]]:
    made: list[Ledger] = []

    def factory() -> Ledger:
        data = tmp_path / "data"
        if store_kind == "sqlite":
            lg = Ledger.open(data, encryption=ON)
        else:
            import pg_support  # type: ignore[import-not-found]

            data.mkdir(exist_ok=True)
            store = at_rest(pg_support.store_for_test(request, tmp_path, LedgerConfig()), ON, data, create=True)
            identity, _ = establish(store, data)
            lg = Ledger(store, identity, LedgerConfig())
        made.append(lg)
        return lg

    yield factory
    for lg in made:
        lg.close()


def _raw(root: Path) -> bytes:
    """Every archive file, the data files decompressed."""
    out = b""
    for p in sorted(root.rglob("*")):
        if p.is_file():
            b = p.read_bytes()
            out += zstandard.ZstdDecompressor().stream_reader(b).read() if p.name.endswith(".zst") else b
    return out


def test_sealed_segments_verify_with_and_without_the_master_key(encrypted: Callable[[], Ledger], tmp_path: Path) -> None:
    lg = encrypted()
    store = lg.store
    assert isinstance(store, EncryptedStore)
    fill(lg, 300)
    target = DirTarget(tmp_path / "arch")
    done = run_archive(lg, target, [], 256, lg.head("default").received_ns + DAY, older_than_ns=1)
    assert done[0].segments == [(0, 256), (256, 300)]
    raw = _raw(tmp_path / "arch")
    assert b"user.login" not in raw and b"metadata" not in raw and b'"sealed"' in raw  # no leaf in the clear
    unwrap = store.keys.kms.unwrap
    for first, end in done[0].segments:
        rep = check(target, "default", first, end, key(lg))  # the public key alone
        assert rep.ok and rep.sealed == end - first and rep.entries == 0, rep.failures
        stem = tmp_path / f"arch/default/{first:012d}-{end:012d}"
        rep = check_segment(*read_segment_files(stem), [key(lg)], unwrap)  # with the master key: opened
        assert rep.ok and rep.entries == end - first and rep.sealed == 0, rep.failures

    # one sealed line changed: the signed data hash fails without the key; with it, the line names itself
    stem = tmp_path / "arch/default/000000000000-000000000256"
    manifest, data = read_segment_files(stem)
    lines = zstandard.ZstdDecompressor().stream_reader(data).read().split(b"\n")
    row = lines[9]
    at = row.index(b'"sealed":"') + len(b'"sealed":"') + 30
    lines[9] = row[:at] + (b"A" if row[at : at + 1] != b"A" else b"B") + row[at + 1 :]
    bad = zstandard.ZstdCompressor().compress(b"\n".join(lines))
    rep = check_segment(manifest, bad, [key(lg)])
    assert not rep.ok and any("not the one the segment note signs" in f for f in rep.failures)
    rep = check_segment(manifest, bad, [key(lg)], unwrap)
    assert any("line 10 (index 9): the sealed leaf does not open" in f for f in rep.failures), rep.failures


def test_restore_and_erasure_of_a_sealed_segment(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "data", encryption=ON) as lg:
        store = lg.store
        assert isinstance(store, EncryptedStore)
        fill(lg, 200)
        erase_subject(lg, "default", "u3", "request 1", {"id": "admin", "type": "user"})
        target = DirTarget(tmp_path / "arch")
        run_archive(lg, target, [], 4096, lg.head("default").received_ns + DAY, older_than_ns=1)
        unwrap = store.keys.kms.unwrap
        vkey = key(lg)
    stem = tmp_path / "arch/default/000000000000-000000000201"  # 200 events and the erasure record
    manifest, data = read_segment_files(stem)
    raw = _raw(tmp_path / "arch")
    assert MARKER_NAME.encode() not in raw and MARKER_IP.encode() not in raw
    out = tmp_path / "restored"
    with pytest.raises(UserError, match="sealed"):
        restore_segment(manifest, data, out)  # needs the master key
    assert restore_segment(manifest, data, out, unwrap).entries == 201
    # opened, the leaves hold personal fields as commitments only: the erased subject's are gone for good
    assert (out / "master.key").exists()
    with LogReader.open(out, encryption=EncryptionSettings()) as rd:
        leaves = b"".join(e.leaf for e in rd.store.entries(rd.tenant_id("default"), 0, 201))
        assert MARKER_NAME.encode() not in leaves and b"user.login" in leaves
        rec = rd.record_at(3, "default")  # u3's event
        assert rec.event.actor.id == "u3" and rec.event.actor.name == "[erased]"
        assert rd.record_at(4, "default").event.actor.name == "[erased]"  # nothing personal was archived at all
    for p in out.rglob("*"):  # the restored directory is encrypted too
        if p.is_file() and p.name != "master.key":
            assert b"user.login" not in p.read_bytes(), p
    assert check_segment(manifest, data, [vkey], unwrap).ok
