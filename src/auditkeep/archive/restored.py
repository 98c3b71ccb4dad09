"""Verifying a data directory restored from archive segments (``archive restore``).

Such a directory holds some ranges of a tenant's log, not the tree: no tiles, no earlier
entries. Restoring keeps each segment's manifest beside the entries (collection
``archive.restored``), and ``auditkeep verify`` on the directory checks each restored range
against it with the keys the checker brings: the manifest's checkpoint is signed by one of
them, its leaf hashes and range proof lead to that checkpoint's root, the signed segment
note names the entries that had no payload, and every restored entry's leaf hashes to the
manifest's hash at its index. An entry changed, missing or outside every restored range is
a problem; the ranges are reported as partial (the rest of the tree is not here).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Any

from auditkeep.archive.check import HASH_SIZE, SegmentReport, _segment_note
from auditkeep.archive.restore import RESTORED, RESTORED_META
from auditkeep.evidence.tlogcheck import Key, leaf_hash, range_root
from auditkeep.ledger.reader import LogReader
from auditkeep.ledger.trust import Trust
from auditkeep.ledger.verify_report import Problem, TenantReport, VerifyReport
from auditkeep.log.checkpoint import CheckpointError, verify_checkpoint
from auditkeep.log.note import NoteError
from auditkeep.store.base import Head, Store

COLLECTION = RESTORED
META = RESTORED_META  # set in a directory written by archive restore


def is_restored(store: Store) -> bool:
    return store.meta(META) is not None


def _manifests(store: Store, tenant: str) -> list[dict[str, Any]]:
    docs = store.doc_list(COLLECTION, tenant=tenant, limit=100_000)
    return sorted((json.loads(d.data) for d in docs), key=lambda m: int(m["first"]))


def _check_range(m: dict[str, Any], trust: Trust, rep: TenantReport) -> tuple[list[bytes], set[int]] | None:
    """The range's leaf hashes and expired indexes, once its proof checks out; else None."""
    first, end, size = int(m["first"]), int(m["end"]), int(m["tree_size"])
    where = f"restored range {first}..{end - 1}"
    try:
        # the origin of the archived log (this directory's own differs), signed by the given keys
        cp = verify_checkpoint(m["checkpoint"], list(trust.keys), m["origin"])
    except (NoteError, CheckpointError) as exc:
        rep.problems.append(Problem("checkpoint", f"{where}: its checkpoint does not verify: {exc}", first))
        return None
    rep.checkpoints_checked += 1
    try:
        blob = base64.b64decode(m["leaf_hashes"], validate=True)
        hashes = [blob[i : i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE)]
        proof = iter(bytes.fromhex(h) for h in m["range_proof"])
        ok = cp.size == size and len(hashes) == end - first and range_root(first, hashes, size, proof) == cp.root
    except (binascii.Error, ValueError, TypeError):
        ok = False
    if not ok:
        rep.problems.append(Problem("checkpoint", f"{where}: its leaf hashes do not lead to the signed checkpoint", first))
        return None
    note = SegmentReport()
    keys = [Key.parse(k.vkey()) for k in trust.keys]
    expired = _segment_note(m, keys, first, end, size, note)
    for reason in note.failures:
        rep.problems.append(Problem("checkpoint", f"{where}: {reason}", first))
    if expired is None:
        return None
    if cp.size > rep.signed_size:
        rep.signed_size, rep.latest = cp.size, cp
    return hashes, expired[1]


def verify_restored_tenant(store: Store, head: Head, trust: Trust,
                           progress: Callable[[int], None] | None = None) -> TenantReport:
    rep = TenantReport(head.tenant, head.size)
    tid = head.tenant_id
    ranges: list[tuple[int, int, list[bytes], set[int]]] = []
    for m in _manifests(store, head.tenant):
        rep.restored.append((int(m["first"]), int(m["end"])))
        checked = _check_range(m, trust, rep) if m.get("tenant") == head.tenant else None
        if checked is not None:
            ranges.append((int(m["first"]), int(m["end"]), *checked))
    seen: set[int] = set()
    for e in store.entries(tid, 0, head.size):
        seen.add(e.index)
        hit = next((r for r in ranges if r[0] <= e.index < r[1]), None)
        if hit is None:
            if not any(a <= e.index < b for a, b in rep.restored):
                rep.problems.append(Problem("event", f"entry {e.index} lies in no restored range (added)", e.index))
            continue
        first, _, hashes, expired = hit
        if e.index in expired or not e.leaf:
            rep.problems.append(Problem("event", f"entry {e.index}: the segment had no payload for it (added)", e.index))
        elif leaf_hash(e.leaf) != hashes[e.index - first]:
            rep.problems.append(Problem("event", f"entry {e.index}: its leaf does not match the signed tree (changed)",
                                        e.index))
        else:
            rep.entries_checked += 1
        if progress is not None:
            progress(1)
    for first, end, _, expired in ranges:
        rep.expired += len(expired)
        if expired:
            rep.expired_ranges.append((min(expired), max(expired) + 1))
        gone = [i for i in range(first, end) if i not in seen and i not in expired]
        if gone:
            rep.problems.append(Problem("missing", f"{len(gone)} restored entries are missing, the first {gone[0]}", gone[0]))
    return rep


def verify_restored(reader: LogReader, trust: Trust, tenant: str | None = None,
                    progress: Callable[[int], None] | None = None) -> VerifyReport:
    """Verify a restored directory (see the module docstring), one tenant or all."""
    heads: Sequence[Head] = reader.store.heads() if tenant is None else [reader.head(tenant)]
    return VerifyReport([verify_restored_tenant(reader.store, h, trust, progress)
                         for h in heads], trust)
