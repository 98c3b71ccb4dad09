"""Checking an archive segment offline: the segment, its manifest and a verifier key.

The checks (docs/archive.md):

1. the manifest names this format and a consistent range;
2. its checkpoint note is signed by the given key and names the manifest's origin;
3. the manifest's leaf hashes and range proof lead to that checkpoint's root, so every leaf
   hash in the manifest is the one the signed tree holds at its index;
4. the segment note, signed by the same key, names this range, the data file's SHA-256 and
   the entries that had no payload left when archived (retention had deleted it);
5. line by line, each entry has the next index and a leaf whose hash is the manifest's hash
   at that index, or no leaf where the segment note says so. A segment of an encrypted
   store holds its leaves sealed (``"sealed"``, see :mod:`auditkeep.archive.seal`): given
   ``unwrap`` (the master key's) or the segment's own data key (a segment key file, written by
   ``auditkeep archive key``: the key and the context it opens), each is opened and checked
   the same way; without either the lines are checked for their order only and counted as
   ``sealed`` (the data file is still the one the signed note names, and the manifest's
   hashes still lead to the checkpoint).

Each failure adds a reason naming what failed (a changed, removed, added or reordered line
names its line number and index); the segment is valid only when none fails.

Outside auditkeep this module needs only the standard library, ``cryptography`` and
``zstandard``: ``examples/verify_segment.py`` is this same file (a test keeps the two
identical) and takes the hashing and signed-note code from ``examples/tlogcheck.py``
beside it, as auditkeep takes it from ``auditkeep.evidence.tlogcheck``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

try:  # within auditkeep
    from auditkeep.evidence.tlogcheck import (
        IntegrityError,
        Key,
        leaf_hash,
        parse_checkpoint,
        parse_note,
        range_root,
    )
except ImportError:  # run alone as examples/verify_segment.py, next to examples/tlogcheck.py
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from tlogcheck import (  # type: ignore[import-not-found,no-redef]
        IntegrityError,
        Key,
        leaf_hash,
        parse_checkpoint,
        parse_note,
        range_root,
    )

FORMAT = "auditkeep-archive/1"
HASH_SIZE = 32
MAX_MANIFEST = 256 * 2**20
MAX_RAW = 8 * 2**30  # decompressed data of one segment
MAX_REASONS = 100


class SegmentError(IntegrityError, ValueError):
    """The segment cannot be read at all (no manifest, not JSON, not this format)."""


@dataclass
class SegmentReport:
    tenant: str = ""
    first: int = 0
    end: int = 0
    tree_size: int = 0
    entries: int = 0  # lines whose leaf was checked
    expired: int = 0  # lines of entries whose payload retention had deleted (hash only)
    sealed: int = 0  # sealed lines not opened (no master key given): order checked, payload not
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def fail(self, reason: str) -> None:
        if len(self.failures) < MAX_REASONS:
            self.failures.append(reason)


_HASHED = re.compile(r"\.[0-9a-f]{16}$")


def segment_stem(name: str) -> str:
    """``.../<first>-<end>`` of either object of a segment (or of the stem itself)."""
    for suffix in (".manifest.json", ".jsonl.zst"):
        if name.endswith(suffix):
            return _HASHED.sub("", name[: -len(suffix)])
    return name


def read_segment(get: Callable[[str], bytes | None], name: str) -> tuple[bytes, bytes]:
    """(manifest, data) of the segment ``name`` (either object, or the stem) through ``get``:
    the manifest first, then the data object it names, next to it."""
    stem = segment_stem(name)
    manifest = get(stem + ".manifest.json")
    if manifest is None:
        raise SegmentError(f"no manifest {stem}.manifest.json")
    m = load_manifest(manifest)
    data_file = m["data"].get("name")
    if not isinstance(data_file, str) or "/" in data_file or not data_file.endswith(".jsonl.zst"):
        raise SegmentError("the manifest's data.name is not a file name")
    folder = stem.rsplit("/", 1)[0] + "/" if "/" in stem else ""
    data = get(folder + data_file)
    if data is None:
        raise SegmentError(f"no data object {folder}{data_file} (named by the manifest)")
    return manifest, data


def read_segment_files(path: Path) -> tuple[bytes, bytes]:
    """(manifest, data) of a segment stored as files next to each other (``path``: either)."""

    def get(name: str) -> bytes | None:
        try:
            return Path(name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SegmentError(f"cannot read {name}: {exc.strerror or exc}") from None

    return read_segment(get, str(path))


def load_manifest(raw: bytes) -> dict[str, Any]:
    if len(raw) > MAX_MANIFEST:
        raise SegmentError(f"the manifest is larger than {MAX_MANIFEST} bytes")
    try:
        m = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SegmentError(f"the manifest is not JSON: {exc}") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise SegmentError(f"not an archive manifest (format {FORMAT!r} expected)")
    want = {"tenant": str, "origin": str, "first": int, "end": int, "tree_size": int, "checkpoint": str,
            "leaf_hashes": str, "range_proof": list, "data": dict}
    for key, typ in want.items():
        if not isinstance(m.get(key), typ) or isinstance(m.get(key), bool):
            raise SegmentError(f"the manifest's {key!r} is missing or not a {typ.__name__}")
    return m


def parse_keys(vkeys: Sequence[str]) -> list[Key]:
    """Verifier keys (``name+keyid+base64``, as ``auditkeep pubkey`` prints them)."""
    return [Key.parse(v) for v in vkeys]


Unwrap = Callable[[bytes, bytes], bytes]  # (wrapped key, context) -> key: the master key's


def line_aad(context: str, index: int) -> bytes:
    """What a sealed line is bound to: its segment and its index."""
    return f"{context}\n{index}".encode()


SEGMENT_KEY_FORMAT = "auditkeep-segment-key/1"
MAX_SEGMENT_KEY_FILE = 64 * 1024


def load_segment_key(raw: bytes, manifest_raw: bytes) -> bytes:
    """The data key in a segment key file (``{"format": "auditkeep-segment-key/1",
    "context": ..., "key": base64}``, as ``auditkeep archive key`` writes it), checked to be
    the key of this segment: its context must be the one the manifest's ``data.sealed``
    names (a key of another segment is refused, not tried line by line)."""
    m = load_manifest(manifest_raw)
    info = m["data"].get("sealed")
    if not isinstance(info, dict):
        raise SegmentError("a segment key was given, but this segment's leaves are not sealed")
    try:
        doc = json.loads(raw)
        if not isinstance(doc, dict) or doc.get("format") != SEGMENT_KEY_FORMAT:
            raise ValueError(f"not a segment key file (format {SEGMENT_KEY_FORMAT!r} expected)")
        key = base64.b64decode(doc["key"], validate=True)
        if len(key) != 32:
            raise ValueError("its key is not 32 bytes")
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise SegmentError(f"the segment key file cannot be read: {exc}") from None
    if doc.get("context") != info.get("context"):
        raise SegmentError(f"the segment key is for {doc.get('context')!r}, this segment is {info.get('context')!r}")
    return key


def _opener(
    m: dict[str, Any], unwrap: Unwrap | None, rep: SegmentReport, data_key: bytes | None = None
) -> Callable[[int, str], bytes] | None:
    """Opens the sealed lines of the segment, or None (not sealed, or no key to open them):
    with the segment's own ``data_key``, or with the data key ``unwrap`` takes out of the
    manifest's wrapped key."""
    info = m["data"].get("sealed")
    if info is None or (unwrap is None and data_key is None):
        return None
    try:
        context = str(info["context"])
        key = data_key if data_key is not None else unwrap(base64.b64decode(info["wrapped_key"]), context.encode())  # type: ignore[misc]
        aead = AESGCM(key)
    except Exception as exc:  # any failure of the KMS: said, and the rest is checked
        rep.fail(f"the segment's data key does not unwrap under the master key given: {exc}")
        return None

    def open_line(index: int, sealed: str) -> bytes:
        blob = base64.b64decode(sealed, validate=True)
        return aead.decrypt(blob[:12], blob[12:], line_aad(context, index))

    return open_line


def check_segment(
    manifest_raw: bytes, data: bytes, vkeys: Sequence[str], unwrap: Unwrap | None = None,
    data_key: bytes | None = None,
) -> SegmentReport:
    """Check a segment (its manifest's bytes and the compressed data) with verifier keys;
    ``unwrap`` (a master key's) or ``data_key`` (the segment's own, :func:`load_segment_key`)
    opens the leaves of a sealed segment."""
    keys = parse_keys(vkeys)
    m = load_manifest(manifest_raw)
    rep = SegmentReport(m["tenant"], m["first"], m["end"], m["tree_size"])
    first, end, size = m["first"], m["end"], m["tree_size"]
    if not 0 <= first < end <= size:
        rep.fail(f"the range [{first}, {end}) does not lie inside a tree of {size} entries")
        return rep
    # 2. the checkpoint
    root: bytes | None = None
    try:
        text, sigs = parse_note(m["checkpoint"])
        origin, cp_size, cp_root = parse_checkpoint(text)
        if origin != m["origin"]:
            rep.fail(f"checkpoint: its origin is {origin!r}, the manifest says {m['origin']!r}")
        elif not any(k.signs(text, origin, sigs) for k in keys):
            rep.fail("checkpoint: not signed by any of the given keys")
        elif cp_size != size:
            rep.fail(f"the checkpoint is of size {cp_size}, the manifest says {size}")
        else:
            root = cp_root
    except ValueError as exc:
        rep.fail(f"checkpoint: {exc}")
    # 3. leaf hashes + range proof -> root
    try:
        blob = base64.b64decode(m["leaf_hashes"], validate=True)
    except (binascii.Error, ValueError):
        rep.fail("the manifest's leaf_hashes is not base64")
        return rep
    if len(blob) != (end - first) * HASH_SIZE:
        rep.fail(f"the manifest holds {len(blob) // HASH_SIZE} leaf hashes for a range of {end - first}")
        return rep
    hashes = [blob[i : i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE)]
    try:
        proof = [bytes.fromhex(h) for h in m["range_proof"]]
        if any(len(p) != HASH_SIZE for p in proof):
            raise ValueError("a range proof hash is not 32 bytes")
        it = iter(proof)
        got = range_root(first, hashes, size, it)
        if next(it, None) is not None:
            rep.fail("the range proof has more hashes than the tree needs")
        elif root is not None and not hmac.compare_digest(got, root):
            rep.fail("the manifest's leaf hashes and range proof do not lead to the checkpoint's root")
    except (ValueError, TypeError) as exc:
        rep.fail(f"range proof: {exc}")
    # 4. the signed segment note: the data file's hash and the entries that had no payload
    expired = _segment_note(m, keys, first, end, size, rep)
    if expired is not None and hashlib.sha256(data).hexdigest() != expired[0]:
        rep.fail("the data file is not the one the segment note signs (the lines below say where)")
    # 5. the data, line by line
    opener = _opener(m, unwrap, rep, data_key)
    _check_lines(data, first, end, hashes, expired[1] if expired is not None else set(), rep, opener)
    return rep


def _segment_note(
    m: dict[str, Any], keys: Sequence[Key], first: int, end: int, size: int, rep: SegmentReport
) -> tuple[str, set[int]] | None:
    """(data SHA-256, expired indexes) from the signed segment note, or None when it fails."""
    note = m.get("segment_note")
    if not isinstance(note, str):
        rep.fail("the manifest has no segment_note")
        return None
    try:
        body, sigs = parse_note(note)
    except ValueError as exc:
        rep.fail(f"segment note: {exc}")
        return None
    if not any(k.signs(body, m["origin"], sigs) for k in keys):
        rep.fail("segment note: not signed by any of the given keys")
        return None
    lines = body.split("\n")
    try:
        fmt, origin, rng, digest, exp = lines[:5]
        a, b, c = (int(x) for x in rng.split(" "))
        if fmt != FORMAT or not exp.startswith("expired ") or len(lines) != 6 or lines[5]:
            raise ValueError
        expired: set[int] = set()
        if exp != "expired -":
            for part in exp[len("expired ") :].split(","):
                lo, hi = (int(x) for x in part.split("-"))
                if not first <= lo < hi <= end:
                    raise ValueError
                expired.update(range(lo, hi))
    except ValueError:
        rep.fail("segment note: not a segment note of this format")
        return None
    if (origin, a, b, c) != (m["origin"], first, end, size):
        rep.fail(f"segment note: it signs {origin} [{a}, {b}) of {c}, not what the manifest says")
    return digest, expired


def _check_lines(
    data: bytes, first: int, end: int, hashes: list[bytes], expired: set[int], rep: SegmentReport,
    open_line: Callable[[int, str], bytes] | None = None,
) -> None:
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(data)
        raw = reader.read(MAX_RAW + 1)
    except zstandard.ZstdError as exc:
        rep.fail(f"the data file is not zstd: {exc}")
        return
    if len(raw) > MAX_RAW:
        rep.fail(f"the data file decompresses to more than {MAX_RAW} bytes")
        return
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    seen: set[int] = set()
    unopened: list[str] = []  # sealed lines that did not open: said one by one unless none opened
    want = first  # the index after the previous line's: a removed line is reported once, not on every later line
    for n, line in enumerate(lines, start=1):
        try:
            row = json.loads(line)
            index, sealed = row["index"], row.get("sealed")
            leaf = row["leaf"] if sealed is None else None
            if (not isinstance(index, int) or isinstance(index, bool) or not (leaf is None or isinstance(leaf, str))
                    or not (sealed is None or isinstance(sealed, str))):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            rep.fail(f"line {n}: not an entry line (expected index {want})")
            continue
        if not first <= index < end:
            rep.fail(f"line {n}: index {index} is outside the segment's range [{first}, {end})")
            want += 1
            continue
        if index in seen:
            rep.fail(f"line {n}: index {index} appears twice")
        seen.add(index)
        if index != want:
            rep.fail(f"line {n}: index {index}, expected {want} (an entry was removed, added or reordered)")
        want = index + 1
        if sealed is not None:
            if open_line is None:
                rep.sealed += 1  # no master key: the order is checked, the payload is not
                continue
            try:
                opened = open_line(index, sealed)
            except (InvalidTag, ValueError):
                unopened.append(f"line {n} (index {index}): the sealed leaf does not open (changed)")
                continue
            if not hmac.compare_digest(leaf_hash(opened), hashes[index - first]):
                rep.fail(f"line {n} (index {index}): the leaf does not match its hash in the signed tree (changed)")
            else:
                rep.entries += 1
            continue
        if leaf is None:
            rep.expired += 1
            if index not in expired:
                rep.fail(f"line {n} (index {index}): no leaf, but the segment note does not name it as expired (changed)")
            continue
        if not hmac.compare_digest(leaf_hash(leaf.encode("utf-8")), hashes[index - first]):
            rep.fail(f"line {n} (index {index}): the leaf does not match its hash in the signed tree (changed)")
        else:
            rep.entries += 1
    if unopened and rep.entries == 0:  # not one line opens: the key, not every line, is wrong
        rep.fail(f"none of the {len(unopened)} sealed leaves opens with the key given (a wrong key, or every line changed)")
    else:
        for reason in unopened:
            rep.fail(reason)
    missing = [i for i in range(first, end) if i not in seen]
    if missing:
        shown = ", ".join(str(i) for i in missing[:10]) + (" ..." if len(missing) > 10 else "")
        rep.failures.append(f"{len(missing)} entries of the range have no line (removed): {shown}")  # always said


def read_segment_key(path: Path, manifest_raw: bytes) -> bytes:
    """The data key in the segment key file ``path`` (see :func:`load_segment_key`)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_SEGMENT_KEY_FILE + 1)
    except OSError as exc:
        raise SegmentError(f"cannot read the segment key {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_SEGMENT_KEY_FILE:
        raise SegmentError(f"the segment key file {path} is larger than {MAX_SEGMENT_KEY_FILE} bytes")
    return load_segment_key(raw, manifest_raw)


def check_segment_files(path: Path, keys: Sequence[str], segment_key: Path | None = None) -> SegmentReport:
    """Check the segment stored as files next to each other (``path``: either file); with
    ``segment_key`` (a segment key file) its sealed leaves are opened and checked too."""
    manifest, data = read_segment_files(path)
    data_key = read_segment_key(segment_key, manifest) if segment_key is not None else None
    return check_segment(manifest, data, keys, data_key=data_key)


def main(argv: Sequence[str] | None = None) -> int:
    """``verify_segment.py SEGMENT --key VKEY [--key VKEY] [--segment-key FILE]``: exit 0
    when valid, 1 when a check fails, 2 when the segment or a key cannot be read."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="Check an auditkeep archive segment.")
    parser.add_argument("segment", help="either file of the segment, or their common stem")
    parser.add_argument("--key", action="append", required=True, help="verifier key (repeatable)")
    parser.add_argument("--segment-key", type=Path, default=None, metavar="FILE",
                        help="the segment's data key, a file written by `auditkeep archive key` (sealed segments: "
                             "their leaves are then opened and checked)")
    args = parser.parse_args(argv)
    try:
        rep = check_segment_files(Path(args.segment), args.key, args.segment_key)
    except (SegmentError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not rep.ok:
        for reason in rep.failures:
            print(f"FAIL: {reason}")
        return 1
    if rep.sealed:
        print(f"note: {rep.sealed} leaves are sealed (encrypted store) and were not opened: their order and the "
              "data file's signed hash were checked, the leaves against their hashes were not (give the segment's "
              "key, --segment-key FILE from `auditkeep archive key`, to check them)")
    print(f"OK: tenant {rep.tenant}, entries {rep.first}..{rep.end - 1}: {rep.entries} checked, "
          f"{rep.expired} expired, against the checkpoint of size {rep.tree_size}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
