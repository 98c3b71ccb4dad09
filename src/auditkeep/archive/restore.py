"""Restoring a segment into a separate data directory, for investigation.

The entries go back under their original tenant and indexes, with their exact leaf bytes,
so ``auditkeep search`` and ``show`` (pointed at that directory with ``--data``) find them
as they were. The directory is a copy to read, not a log to continue: it holds the
archived range without the rest of the tree (no tiles). Each segment's manifest is kept
beside its entries, so ``auditkeep verify --key VKEY`` checks the restored entries against
the segment's signed checkpoint and reports the ranges as partial (archive/restored.py).
Personal fields were never archived (only their commitments), so they read as erased.
Entries whose payload retention had deleted before archiving are not restored.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zstandard
from cryptography.exceptions import InvalidTag

from auditkeep.archive.check import (
    MAX_RAW,
    SegmentError,
    SegmentReport,
    Unwrap,
    _opener,
    load_manifest,
)
from auditkeep.crypto.atrest import EncryptionSettings
from auditkeep.errors import UserError
from auditkeep.ledger.ledger import Ledger
from auditkeep.model.timefmt import parse_rfc3339
from auditkeep.store.base import SUBJECTS_ARE_ACTORS, Doc, Entry, Head

BATCH = 5000
RESTORED = "archive.restored"  # the manifests of the restored segments (archive/restored.py)
RESTORED_META = "restored"


@dataclass
class Restored:
    directory: str
    tenant: str
    first: int
    end: int
    entries: int  # written now
    skipped: int  # already there (the same segment restored before) or expired


def _sealed_opener(
    m: dict[str, Any], unwrap: Unwrap | None, data_key: bytes | None = None
) -> Callable[[int, str], bytes] | None:
    if m["data"].get("sealed") is None:
        return None
    if unwrap is None and data_key is None:
        raise UserError("the segment's leaves are sealed (archived from an encrypted store): restoring it needs "
                        f"that store's master key (key id {m['data']['sealed'].get('master_key')}), from [encryption]")
    rep = SegmentReport()
    opener = _opener(m, unwrap, rep, data_key)
    if opener is None:
        raise SegmentError(rep.failures[0] if rep.failures else "the segment's data key does not unwrap")
    return opener


def restore_segment(
    manifest_raw: bytes, data: bytes, out: Path, unwrap: Unwrap | None = None, data_key: bytes | None = None
) -> Restored:
    """Write the segment's entries into the data directory ``out`` (created if needed). A
    sealed segment is opened with its own ``data_key`` or with ``unwrap`` (the master key's of
    the manifest's wrapping) and restored into an encrypted directory (with a master key of
    its own, ``out/master.key``)."""
    m = load_manifest(manifest_raw)
    opener = _sealed_opener(m, unwrap, data_key)
    tenant, first, end = m["tenant"], m["first"], m["end"]
    try:
        raw = zstandard.ZstdDecompressor().stream_reader(data).read(MAX_RAW + 1)
    except zstandard.ZstdError as exc:
        raise SegmentError(f"the data file is not zstd: {exc}") from None
    if len(raw) > MAX_RAW:
        raise SegmentError(f"the data file decompresses to more than {MAX_RAW} bytes")
    rows: list[Entry] = []
    skipped = 0
    for n, line in enumerate(raw.splitlines(), start=1):
        try:
            row = json.loads(line)
            index = int(row["index"])
            leaf = opener(index, row["sealed"]).decode() if opener is not None and "sealed" in row else row["leaf"]
            if leaf is None:
                skipped += 1  # expired before it was archived: nothing to restore
                continue
            ev = json.loads(leaf)
            rows.append(Entry(index, uuid.UUID(ev["id"]).bytes, parse_rfc3339(ev["received_at"]), leaf.encode()))
        except (ValueError, KeyError, TypeError, InvalidTag) as exc:
            raise SegmentError(f"line {n} of the segment is not an entry ({exc}); run `auditkeep archive verify`") from None
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} is not a directory")
    # the plaintext of a sealed segment goes into an encrypted directory only
    with Ledger.open(out, background=False, encryption=EncryptionSettings(enabled=True) if opener else None) as lg:
        tid = lg.tenant_id(tenant, create=True)
        store = lg.store
        store.set_meta(SUBJECTS_ARE_ACTORS, "0")  # subjects as the archived log's writer set them
        reproject = store.projection_position(tid) > first
        written = 0
        for i in range(0, len(rows), BATCH):
            part = rows[i : i + BATCH]
            with store.append_txn([tid]) as txn:
                have = txn.existing(tid, [e.id for e in part])
                fresh = [e for e in part if e.id not in have]
                skipped += len(part) - len(fresh)
                head = txn.head(tid)
                size = max(head.size, end)
                new_head = Head(tid, tenant, size, head.root, max(head.received_ns, *(e.received_ns for e in part)),
                                head.checkpoint_size, head.checkpoint_ns)
                txn.write(tid, fresh, {}, new_head)
                written += len(fresh)
        # the manifest stays beside the entries: `auditkeep verify` checks them against it
        store.doc_put(Doc(RESTORED, f"{first}-{end}", tenant, time.time_ns(), None, manifest_raw))
        store.set_meta(RESTORED_META, "archive")
        if reproject:
            store.reset_projection()  # an earlier range restored after a later one
        lg.sync_projection(tenant)
    return Restored(str(out), tenant, first, end, written, skipped)
