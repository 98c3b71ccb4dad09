"""Check an auditkeep evidence bundle with nothing but the bundle and a verifier key.

This module imports only the standard library and ``cryptography`` (never auditkeep
unguarded), so that an auditor can run it alone: ``examples/verify_bundle.py`` is this same
file, and takes the hashing and signed-note code from ``examples/tlogcheck.py`` beside it,
as auditkeep takes it from :mod:`auditkeep.evidence.tlogcheck` (tests keep each pair
identical). The format it checks is documented in docs/evidence.md.

Every check that fails adds a reason naming what failed; the bundle is valid only when
no check fails.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import sys
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

try:  # within auditkeep
    from auditkeep.evidence.tlogcheck import (
        IntegrityError,
        Key,
        commitment,
        parse_checkpoint,
        parse_note,
        range_root,
        time_ns,
        verify_consistency,
    )
except ImportError:  # run alone as examples/verify_bundle.py, next to examples/tlogcheck.py
    import os

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from tlogcheck import (  # type: ignore[import-not-found,no-redef]
        IntegrityError,
        Key,
        commitment,
        parse_checkpoint,
        parse_note,
        range_root,
        time_ns,
        verify_consistency,
    )

FORMAT = "auditkeep-evidence/1"
MANIFEST = "manifest.json"
MAX_BUNDLE_BYTES = 8 * 2**30  # uncompressed, all members together
MAX_SMALL_FILE = 16 * 2**20  # manifest, notes, proofs, keys, README, report
KINDS = ("before", "event", "hashed", "after", "expired")
FULL_KINDS = ("before", "event", "after")

_sha256 = hashlib.sha256
_decode = json.JSONDecoder().raw_decode  # one leaf is one canonical object: no whitespace to skip


class BundleError(IntegrityError, ValueError):
    """The bundle cannot be read at all (not a zip, no manifest, unsupported format)."""


@dataclass
class Result:
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures

    def fail(self, reason: str) -> None:
        if len(self.failures) < 100:
            self.failures.append(reason)


# --- filters the verifier can recheck --------------------------------------------------------


def _field(ev: dict[str, Any], path: str) -> Any:
    node: Any = ev
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def matches(ev: dict[str, Any], filters: dict[str, Any]) -> bool | None:
    """Whether a leaf matches the bundle's filters; None when a filter cannot be checked
    from the leaf alone (full text, sealed fields)."""
    checks = {
        "actor": "actor.id",
        "outcome": "outcome",
        "category": "category",
        "resource_type": "resource.type",
        "resource_id": "resource.id",
    }
    unknown = False
    for name, want in filters.items():
        if name == "action":
            got = ev.get("action")
            ok = got == want or (want.endswith("*") and isinstance(got, str) and got.startswith(want[:-1]))
        elif name in checks:
            ok = _field(ev, checks[name]) == want
        else:
            unknown = True
            continue
        if not ok:
            return False
    return None if unknown else True


# --- the bundle ----------------------------------------------------------------------------


class _Bundle:
    def __init__(self, zf: zipfile.ZipFile, result: Result, max_bytes: int) -> None:
        self.zf = zf
        self.result = result
        names = [i.filename for i in zf.infolist()]
        if len(names) != len(set(names)):
            raise BundleError("the zip holds two members of the same name")
        if MANIFEST not in names:
            raise BundleError("no manifest.json: not an auditkeep evidence bundle")
        if sum(i.file_size for i in zf.infolist()) > max_bytes:
            raise BundleError(f"the bundle unpacks to more than {max_bytes} bytes")
        self.names = set(names)

    def small(self, name: str) -> bytes:
        info = self.zf.getinfo(name)
        if info.file_size > MAX_SMALL_FILE:
            raise BundleError(f"{name} is larger than {MAX_SMALL_FILE} bytes")
        return self.zf.read(name)

    def lines(self, name: str) -> Iterator[bytes]:
        """The member's lines (for the small ones)."""
        for chunk in _Stream(self.zf, name).chunks():
            yield from chunk


class _Stream:
    """A large member read once, in large pieces (a zip member's readline is slow): its
    lines a piece at a time, and its SHA-256 taken on the way, so the member is inflated
    once rather than once to hash it and again to check it. ``hexdigest`` reads whatever
    the checks left unread."""

    def __init__(self, zf: zipfile.ZipFile, name: str) -> None:
        self._f = zf.open(name)
        self._h = _sha256()

    def chunks(self) -> Iterator[list[bytes]]:
        rest = b""
        while chunk := self._f.read(1 << 22):
            self._h.update(chunk)
            parts = (rest + chunk).split(b"\n")
            rest = parts.pop()
            if parts:
                yield parts
        if rest:
            yield [rest]

    def hexdigest(self) -> str:
        while chunk := self._f.read(1 << 22):
            self._h.update(chunk)
        self._f.close()
        return self._h.hexdigest()


def _hash_member(zf: zipfile.ZipFile, name: str) -> str:
    h = _sha256()
    with zf.open(name) as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def verify_bundle(
    source: str | bytes | io.IOBase,
    keys: Sequence[str],
    witnesses: Sequence[str] = (),
    *,
    max_bytes: int = MAX_BUNDLE_BYTES,
    progress: Callable[[int], None] | None = None,
) -> Result:
    """Check a bundle (a path, its bytes, or a binary file) against verifier keys (``vkey``
    text) and, optionally, witness keys that must have cosigned its checkpoint."""
    trusted = [Key.parse(k) for k in keys]
    if not trusted:
        raise ValueError("give at least one verifier key")
    witness_keys = [Key.parse(k) for k in witnesses]
    result = Result()
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    try:
        zf = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BundleError(f"not a zip file: {exc}") from None
    with zf:
        try:
            _verify(_Bundle(zf, result, max_bytes), trusted, witness_keys, progress)
        except (zipfile.BadZipFile, EOFError) as exc:
            result.fail(f"the zip is damaged: {exc}")
    return result


def _verify(b: _Bundle, keys: list[Key], witnesses: list[Key], progress: Callable[[int], None] | None) -> None:
    r = b.result
    try:
        m = json.loads(b.small(MANIFEST))
    except ValueError:
        raise BundleError("manifest.json is not JSON") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise BundleError(f"manifest.json does not declare format {FORMAT!r}")
    files = m.get("files")
    if not isinstance(files, dict):
        raise BundleError("manifest.json lists no files")
    # 1. Every file listed, with its hash; nothing more, nothing less. The two large
    # members are hashed as step 3 reads them (and their hashes compared after it).
    for name in sorted(b.names - set(files) - {MANIFEST}):
        r.fail(f"{name} is in the bundle but not in the manifest (added)")
    for required in ("checkpoint.txt", "latest-checkpoint.txt", "proof.json", "leaves.tsv", "events.jsonl"):
        if required not in b.names:
            raise BundleError(f"the bundle has no {required}")
    streams = {name: _Stream(b.zf, name) for name in ("leaves.tsv", "events.jsonl") if name in files}
    for name, digest in sorted(files.items()):
        if name not in b.names:
            r.fail(f"{name} is listed in the manifest but missing (removed)")
        elif name not in streams and _hash_member(b.zf, name) != digest:
            r.fail(f"{name} does not have the SHA-256 the manifest lists (changed)")
    _verify_range(b, m, keys, witnesses, progress, streams)
    for name, stream in sorted(streams.items()):
        if stream.hexdigest() != files[name]:
            r.fail(f"{name} does not have the SHA-256 the manifest lists (changed)")


def _verify_range(
    b: _Bundle,
    m: dict[str, Any],
    keys: list[Key],
    witnesses: list[Key],
    progress: Callable[[int], None] | None,
    streams: dict[str, _Stream],
) -> None:
    r = b.result
    try:
        tenant, origin = str(m["tenant"]), str(m["origin"])
        since, until = time_ns(m["window"]["since"]), time_ns(m["window"]["until"])
        filters = dict(m.get("filters") or {})
        rng = m["range"]
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"manifest.json is incomplete: {exc}") from None
    r.summary.update(tenant=tenant, origin=origin, since=m["window"]["since"], until=m["window"]["until"], filters=filters)
    signed = _checkpoints(b, origin, keys, witnesses)
    if signed is None:
        return
    size, root, range_hashes = signed

    # 3. The range: contiguous indices, full leaves hashing to their listed hashes.
    leaves: list[bytes] = []
    kinds: list[str] = []
    first = -1
    events = (line for chunk in (streams.get("events.jsonl") or _Stream(b.zf, "events.jsonl")).chunks() for line in chunk)
    reveal = _load_reveal(b)
    counted = {"event": 0, "hashed": 0, "expired": 0}
    last_received = -1
    n = -1
    full_kinds = set(FULL_KINDS)
    for rows in (streams.get("leaves.tsv") or _Stream(b.zf, "leaves.tsv")).chunks():
        if progress is not None:
            progress(len(rows))
        for row in rows:
            n += 1
            try:
                idx_text, hash_hex, kind = row.decode().split("\t")
                index, listed = int(idx_text), bytes.fromhex(hash_hex)
            except ValueError:
                r.fail(f"leaves.tsv line {n + 1} is malformed")
                return
            if first < 0:
                first = index
            if index != first + n:
                r.fail(f"leaves.tsv line {n + 1} is index {index}, expected {first + n} (entries removed, added or reordered)")
                return
            if kind not in KINDS or len(listed) != 32:
                r.fail(f"leaves.tsv line {n + 1} has kind {kind!r} or a hash of the wrong length")
                return
            leaves.append(listed)
            kinds.append(kind)
            if kind not in full_kinds:  # hashed, or expired: retention deleted the event, its hash remains
                counted[kind] += 1
                continue
            data = next(events, None)
            if data is None:
                r.fail(f"events.jsonl ends before the leaf of index {index}")
                return
            if _sha256(b"\x00" + data).digest() != listed:
                r.fail(f"the event at index {index} does not hash to its listed leaf hash (event changed)")
                continue
            try:
                text = data.decode()
                ev, stop = _decode(text)
                if stop != len(text) or not isinstance(ev, dict):
                    raise ValueError("not one JSON object")
                received = time_ns(ev["received_at"])
            except (ValueError, KeyError, TypeError, UnicodeDecodeError):
                r.fail(f"the leaf at index {index} is not an event with a received_at")
                continue
            if ev.get("tenant") != tenant:
                r.fail(f"the event at index {index} belongs to tenant {ev.get('tenant')!r}, not {tenant!r}")
            if received < last_received:
                r.fail(f"the event at index {index} was received before the one listed ahead of it (reordered)")
            last_received = received
            if kind == "event":
                counted["event"] += 1
                if not since <= received < until:
                    r.fail(f"the event at index {index} ({ev['received_at']}) is outside the window (stretched or added)")
                if filters and matches(ev, filters) is False:
                    r.fail(f"the event at index {index} does not match the bundle's filters")
                if reveal:
                    opened = reveal.pop(index, None)
                    if opened is not None:
                        _check_reveal(r, index, ev, opened)
            elif kind == "before" and received >= since:
                r.fail(f"the entry before the range (index {index}) is inside the window: the bundle is cut at the start")
            elif kind == "after" and received < until:
                r.fail(f"the entry after the range (index {index}) is inside the window: the bundle is cut at the end")
    if next(events, None) is not None:
        r.fail("events.jsonl holds more events than leaves.tsv lists (added)")
    for index in sorted(reveal):
        r.fail(f"reveal.jsonl opens index {index}, which is not an event of the bundle")
    if first < 0:
        r.fail("leaves.tsv is empty")
        return
    _check_bounds(r, first, leaves, kinds, counted, (size, root, range_hashes), filters, rng)


def _check_bounds(
    r: Result,
    first: int,
    leaves: list[bytes],
    kinds: list[str],
    counted: dict[str, int],
    signed: tuple[int, bytes, list[bytes]],
    filters: dict[str, Any],
    rng: Any,
) -> None:
    """Steps 4 and 5 on the range read in step 3, and the manifest's range against it."""
    size, root, range_hashes = signed
    end = first + len(leaves)
    # 4. Completeness: the range is bounded by entries outside the window, or by the log.
    for pos, kind in enumerate(kinds):
        if (kind == "before" and pos != 0) or (kind == "after" and pos != len(kinds) - 1):
            r.fail(f"index {first + pos} is marked {kind!r} but is not at that end of the range (stretched)")
    if first > 0 and kinds[0] != "before":
        r.fail(f"the range starts at index {first} without the entry before it: the bundle is cut at the start")
    if end < size and kinds[-1] != "after":
        r.fail(f"the range ends at index {end - 1} without the entry after it: the bundle is cut at the end")
    if end > size:
        r.fail(f"the range ends at index {end - 1}, beyond the checkpoint's {size} entries")
        return
    if counted["expired"]:
        r.notes.append(f"{counted['expired']} entries of the range expired under a retention policy: only their leaf hashes are given")
    if not filters and counted["hashed"]:
        r.fail("entries of the window are given as hashes only, but the bundle has no filters")
    # 5. The range's leaves and the proof give the checkpoint's root.
    proof_iter = iter(range_hashes)
    try:
        computed = range_root(first, leaves, size, proof_iter)
        if next(proof_iter, None) is not None:
            r.fail("the range proof has more hashes than the range needs")
        elif not hmac.compare_digest(computed, root):
            r.fail("the range's leaves and proof do not give the checkpoint's root (an entry was changed, removed, added or reordered)")
    except ValueError as exc:
        r.fail(f"the range proof does not fit the range: {exc}")
    open_end = end == size and kinds[-1] != "after"
    if open_end:
        r.notes.append(
            f"the log held {size} entries at the checkpoint and the window had not ended: "
            "the bundle is complete up to that checkpoint"
        )
    want = {"first": first, "end": end, "events": counted["event"], "hashed": counted["hashed"]}
    got = {k: rng.get(k) for k in want} if isinstance(rng, dict) else {}
    if got != want:
        r.fail(f"the manifest's range {got} does not match the bundle's {want}")
    r.summary.update(first=first, end=end, events=counted["event"], hashed=counted["hashed"], open_end=open_end)


def _checkpoints(b: _Bundle, origin: str, keys: list[Key], witnesses: list[Key]) -> tuple[int, bytes, list[bytes]] | None:
    """Step 2; the checkpoint's size and root and the range proof's hashes, or None when
    they cannot be read."""
    r = b.result
    # 2. Checkpoints: signed by a trusted key, for this log, consistent with each other.
    cps: dict[str, tuple[int, bytes]] = {}
    cosigned: set[str] = set()
    for name in ("checkpoint.txt", "latest-checkpoint.txt"):
        try:
            note = b.small(name).decode()
            text, sigs = parse_note(note)
            cp_origin, size, root = parse_checkpoint(text)
        except (ValueError, UnicodeDecodeError) as exc:
            r.fail(f"{name}: {exc}")
            continue
        if cp_origin != origin:
            r.fail(f"{name} is for log {cp_origin!r}, the manifest says {origin!r}")
        if not any(k.signs(text, cp_origin, sigs) for k in keys):
            r.fail(f"{name} carries no valid signature by the given verifier key(s)")
        cosigned |= {w.name for w in witnesses if w.signs(text, cp_origin, sigs)}
        cps[name] = (size, root)
    for w in witnesses:
        if w.name not in cosigned:
            r.fail(f"no valid cosignature by witness {w.name} on either checkpoint")
    if len(cps) < 2:
        return None
    (size, root), (latest_size, latest_root) = cps["checkpoint.txt"], cps["latest-checkpoint.txt"]
    r.summary.update(checkpoint_size=size, latest_size=latest_size, witnesses=sorted(cosigned))
    try:
        proof = json.loads(b.small("proof.json"))
        range_hashes = [bytes.fromhex(h) for h in proof["range"]["hashes"]]
        cons = proof["consistency"]
        cons_hashes = [bytes.fromhex(h) for h in cons["hashes"]]
        if (proof["range"]["tree_size"], cons["from"], cons["to"]) != (size, size, latest_size):
            r.fail("proof.json is for other tree sizes than the checkpoints")
    except (ValueError, KeyError, TypeError) as exc:
        r.fail(f"proof.json is malformed: {exc}")
        return None
    if any(len(h) != 32 for h in range_hashes + cons_hashes):
        r.fail("proof.json holds a hash that is not 32 bytes")
        return None
    why = verify_consistency(size, latest_size, cons_hashes, root, latest_root)
    if why:
        r.fail(f"the checkpoint is not a prefix of the latest checkpoint: {why}")
    return size, root, range_hashes


def _load_reveal(b: _Bundle) -> dict[int, dict[str, Any]]:
    if "reveal.jsonl" not in b.names:
        return {}
    out: dict[int, dict[str, Any]] = {}
    for n, line in enumerate(b.lines("reveal.jsonl")):
        try:
            item = json.loads(line)
            out[int(item["index"])] = item
        except (ValueError, KeyError, TypeError):
            b.result.fail(f"reveal.jsonl line {n + 1} is malformed")
    return out


def _check_reveal(r: Result, index: int, ev: dict[str, Any], opened: dict[str, Any]) -> None:
    sealed = ev.get("sealed") or {}
    try:
        key = bytes.fromhex(opened["event_key"])
        values = dict(opened["values"])
    except (KeyError, ValueError, TypeError):
        r.fail(f"reveal.jsonl entry for index {index} is malformed")
        return
    if opened.get("id") != ev.get("id"):
        r.fail(f"reveal.jsonl entry for index {index} names another event id")
    for path, value in values.items():
        expected = sealed.get(path)
        if expected is None:
            r.fail(f"index {index}: revealed {path} is not committed in the leaf")
            continue
        try:
            ok = hmac.compare_digest(commitment(key, path, value), str(expected))
        except ValueError:
            ok = False
        if not ok:
            r.fail(f"index {index}: revealed {path} differs from the value committed in the leaf")
    r.summary["revealed"] = r.summary.get("revealed", 0) + 1


def main(argv: Sequence[str] | None = None) -> int:
    """``verify_bundle.py BUNDLE --key VKEY [--key VKEY] [--witness VKEY]``: exit 0 when
    valid, 1 when a check fails, 2 when the bundle or a key cannot be read."""
    import argparse

    parser = argparse.ArgumentParser(description="Check an auditkeep evidence bundle.")
    parser.add_argument("bundle")
    parser.add_argument("--key", action="append", required=True, help="verifier key (repeatable)")
    parser.add_argument("--witness", action="append", default=[], help="witness key that must have cosigned")
    args = parser.parse_args(argv)
    try:
        result = verify_bundle(args.bundle, args.key, args.witness)
    except (BundleError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for note in result.notes:
        print(f"note: {note}")
    if not result.ok:
        for reason in result.failures:
            print(f"FAIL: {reason}")
        return 1
    s = result.summary
    print(
        f"OK: tenant {s['tenant']}, window {s['since']} .. {s['until']}: {s['events']} event(s), "
        f"{s['hashed']} hashed, indices {s['first']}..{s['end'] - 1}, checkpoint {s['checkpoint_size']}, "
        f"consistent with {s['latest_size']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
