"""Every change to a segment fails `archive verify` offline, with a reason naming it."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard
from archive_support import DAY, fill
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auditkeep.archive.check import SegmentError, SegmentReport, check_segment, read_segment
from auditkeep.archive.run import run_archive
from auditkeep.archive.target import DirTarget
from auditkeep.ledger import Ledger
from auditkeep.log.note import NoteSigner

FIRST, END = 256, 512


@pytest.fixture(scope="module")
def segment(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, list[bytes], str]:
    """(manifest, data lines, key) of the segment [256, 512) of a 600-entry log."""
    tmp = tmp_path_factory.mktemp("tamper")
    with Ledger.open(tmp / "data") as lg:
        fill(lg, 600)
        target = DirTarget(tmp / "arch")
        run_archive(lg, target, [], 256, lg.head("default").received_ns + DAY, older_than_ns=1)
        k = lg.pubkey()
    manifest, data = read_segment(target.get, f"default/{FIRST:012d}-{END:012d}")
    lines = zstandard.ZstdDecompressor().stream_reader(data).read().splitlines()
    return manifest, lines, k


def _pack(lines: list[bytes]) -> bytes:
    return zstandard.ZstdCompressor().compress(b"\n".join(lines) + b"\n")


def _check(segment: tuple[bytes, list[bytes], str], edit: Callable[[list[bytes]], list[bytes]] | None = None,
           manifest_edit: Callable[[dict[str, object]], None] | None = None) -> SegmentReport:
    manifest, lines, k = segment
    m = json.loads(manifest)
    if manifest_edit is not None:
        manifest_edit(m)
    new_lines = edit(list(lines)) if edit is not None else lines
    return check_segment(json.dumps(m).encode(), _pack(new_lines), [k])


def _leaf_edit(line: bytes, old: str, new: str) -> bytes:
    row = json.loads(line)
    assert old in row["leaf"]
    row["leaf"] = row["leaf"].replace(old, new)
    return json.dumps(row, separators=(",", ":")).encode()


def test_the_untouched_segment_verifies(segment: tuple[bytes, list[bytes], str]) -> None:
    rep = _check(segment)
    assert rep.ok, rep.failures
    assert (rep.first, rep.end, rep.entries, rep.expired) == (FIRST, END, END - FIRST, 0)


def test_a_changed_line_fails_naming_it(segment: tuple[bytes, list[bytes], str]) -> None:
    def edit(lines: list[bytes]) -> list[bytes]:
        lines[10] = _leaf_edit(lines[10], '"n":266', '"n":999')
        return lines

    rep = _check(segment, edit)
    assert not rep.ok
    assert any(r.startswith("line 11 (index 266)") and "changed" in r for r in rep.failures), rep.failures
    assert any("not the one the segment note signs" in r for r in rep.failures), rep.failures


def test_a_removed_line_fails_naming_the_index(segment: tuple[bytes, list[bytes], str]) -> None:
    rep = _check(segment, lambda lines: lines[:40] + lines[41:])
    assert not rep.ok
    assert any("line 41: index 297, expected 296" in r for r in rep.failures), rep.failures
    assert any("have no line (removed): 296" in r for r in rep.failures), rep.failures


def test_the_last_line_removed_fails(segment: tuple[bytes, list[bytes], str]) -> None:
    rep = _check(segment, lambda lines: lines[:-1])
    assert any("have no line (removed): 511" in r for r in rep.failures), rep.failures


def test_reordered_lines_fail(segment: tuple[bytes, list[bytes], str]) -> None:
    def edit(lines: list[bytes]) -> list[bytes]:
        lines[3], lines[4] = lines[4], lines[3]
        return lines

    rep = _check(segment, edit)
    assert any("line 4: index 260, expected 259" in r for r in rep.failures), rep.failures
    assert any("line 5: index 259, expected 261" in r for r in rep.failures), rep.failures
    assert any("line 6: index 261, expected 260" in r for r in rep.failures), rep.failures


def test_a_line_whose_leaf_and_index_were_both_rewritten_fails(segment: tuple[bytes, list[bytes], str]) -> None:
    """A duplicated line put in the place of another (index rewritten to match) fails its hash."""
    def edit(lines: list[bytes]) -> list[bytes]:
        row = json.loads(lines[0])
        row["index"] = FIRST + 7
        lines[7] = json.dumps(row).encode()
        return lines

    rep = _check(segment, edit)
    assert any(r.startswith("line 8 (index 263)") for r in rep.failures), rep.failures


def test_an_added_line_fails(segment: tuple[bytes, list[bytes], str]) -> None:
    rep = _check(segment, lambda lines: [*lines, lines[-1]])
    assert any("index 511 appears twice" in r for r in rep.failures), rep.failures


def test_a_line_turned_into_an_expired_one_fails(segment: tuple[bytes, list[bytes], str]) -> None:
    """Replacing an entry by ``"leaf": null`` (as if retention had deleted it before archiving)
    fails, even with the manifest's data hash updated: the signed segment note names the
    entries that really had no payload, and the data file's hash."""
    def edit(lines: list[bytes]) -> list[bytes]:
        row = json.loads(lines[2])
        row["leaf"] = None
        lines[2] = json.dumps(row).encode()
        return lines

    rep = _check(segment, edit)
    assert any(r.startswith("line 3 (index 258): no leaf") for r in rep.failures), rep.failures
    assert any("not the one the segment note signs" in r for r in rep.failures), rep.failures


def test_a_changed_segment_note_fails(segment: tuple[bytes, list[bytes], str]) -> None:
    def medit(m: dict[str, object]) -> None:
        m["segment_note"] = str(m["segment_note"]).replace("expired -", "expired 258-259")

    assert any(r.startswith("segment note:") for r in _check(segment, manifest_edit=medit).failures)

    def drop(m: dict[str, object]) -> None:
        del m["segment_note"]

    assert any("no segment_note" in r for r in _check(segment, manifest_edit=drop).failures)


def test_a_changed_leaf_hash_in_the_manifest_fails(segment: tuple[bytes, list[bytes], str]) -> None:
    def medit(m: dict[str, object]) -> None:
        blob = bytearray(base64.b64decode(str(m["leaf_hashes"])))
        blob[32 * 5] ^= 1
        m["leaf_hashes"] = base64.b64encode(bytes(blob)).decode()

    rep = _check(segment, manifest_edit=medit)
    assert any("do not lead to the checkpoint's root" in r for r in rep.failures), rep.failures
    assert any(r.startswith("line 6 (index 261)") for r in rep.failures), rep.failures


def test_a_changed_range_proof_or_range_fails(segment: tuple[bytes, list[bytes], str]) -> None:
    def proof(m: dict[str, object]) -> None:
        p = list(m["range_proof"])  # type: ignore[call-overload]
        p[0] = "00" * 32
        m["range_proof"] = p

    assert any("root" in r for r in _check(segment, manifest_edit=proof).failures)

    def shift(m: dict[str, object]) -> None:
        m["first"], m["end"] = FIRST + 1, END + 1

    assert not _check(segment, manifest_edit=shift).ok


def test_another_key_or_a_forged_checkpoint_fails(segment: tuple[bytes, list[bytes], str]) -> None:
    manifest, lines, k = segment
    other = NoteSigner(k.split("+")[0], Ed25519PrivateKey.generate())
    rep = check_segment(manifest, _pack(lines), [other.verifier().vkey()])
    assert any(r.startswith("checkpoint:") for r in rep.failures), rep.failures

    def forge(m: dict[str, object]) -> None:  # the same body signed by another key
        body = str(m["checkpoint"]).split("\n\n", 1)[0] + "\n"
        m["checkpoint"] = other.sign(body)

    assert any(r.startswith("checkpoint:") for r in _check(segment, manifest_edit=forge).failures)


def test_what_is_not_a_segment_is_refused(segment: tuple[bytes, list[bytes], str]) -> None:
    manifest, lines, k = segment
    with pytest.raises(SegmentError, match="not JSON"):
        check_segment(b"{", _pack(lines), [k])
    with pytest.raises(SegmentError, match="format"):
        check_segment(b'{"format": "other"}', _pack(lines), [k])
    rep = check_segment(manifest, b"not zstd", [k])
    assert any("not zstd" in r for r in rep.failures), rep.failures


def test_segment_files_are_found_from_either_name(tmp_path: Path, segment: tuple[bytes, list[bytes], str]) -> None:
    from auditkeep.archive.check import check_segment_files

    manifest, lines, k = segment
    name = json.loads(manifest)["data"]["name"]
    (tmp_path / f"{FIRST:012d}-{END:012d}.manifest.json").write_bytes(manifest)
    (tmp_path / name).write_bytes(_pack(lines))
    assert check_segment_files(tmp_path / name, [k]).ok
    assert check_segment_files(tmp_path / f"{FIRST:012d}-{END:012d}.manifest.json", [k]).ok
    assert check_segment_files(tmp_path / f"{FIRST:012d}-{END:012d}", [k]).ok
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / f"{FIRST:012d}-{END:012d}.manifest.json").write_bytes(manifest)
    with pytest.raises(SegmentError, match="no data object"):
        check_segment_files(lonely / f"{FIRST:012d}-{END:012d}.manifest.json", [k])
