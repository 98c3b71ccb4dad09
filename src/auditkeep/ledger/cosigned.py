"""Witness cosignatures kept with the checkpoints they cosign, in both stores.

One document per cosigned checkpoint (collection ``cosignatures``, id ``<tenant id>:<size>``)
maps each witness's verifier key to its signature line. The lines are only ever added to the
stored note when it is served: the checkpoint row itself stays as the log signed it, and
whoever reads a cosigned note checks the cosignatures with witness keys of their own.
"""

from __future__ import annotations

import time

import msgspec

from auditkeep.log.cosignature import CosignatureVerifier, verify_cosignatures
from auditkeep.log.note import NoteError
from auditkeep.store.base import CheckpointRow, Doc, Store

__all__ = ["COLLECTION", "add_cosignature", "cosignature_lines", "cosigned_note"]

COLLECTION = "cosignatures"
MAX_WITNESS_LINES = 64  # a bound on what one document holds (the note format takes 100 lines)

_lines = msgspec.json.Decoder(dict[str, str])


def _doc_id(row: CheckpointRow) -> str:
    return f"{row.tenant_id}:{row.size}"


def cosignature_lines(store: Store, row: CheckpointRow) -> dict[str, str]:
    """{witness vkey: signature line} stored for the checkpoint ``row``."""
    doc = store.doc_get(COLLECTION, _doc_id(row))
    if doc is None:
        return {}
    try:
        return _lines.decode(doc.data)
    except msgspec.DecodeError:
        return {}


def add_cosignature(store: Store, tenant: str, row: CheckpointRow, witness: CosignatureVerifier, line: str) -> int:
    """Keep ``witness``'s cosignature ``line`` of ``row`` (checked here: a line that does not
    verify over the stored note is never stored). One writer at a time (the submitter holds
    a store lease), so read-modify-write is safe. Returns how many witnesses have now
    cosigned ``row``."""
    if not verify_cosignatures(row.note + line, [witness]):
        raise NoteError(f"not a cosignature by {witness.name} of the checkpoint at size {row.size}")
    lines = cosignature_lines(store, row)
    lines[witness.vkey()] = line
    if len(lines) > MAX_WITNESS_LINES:
        raise NoteError(f"more than {MAX_WITNESS_LINES} cosignatures for one checkpoint")
    store.doc_put(Doc(COLLECTION, _doc_id(row), tenant, time.time_ns(), None, msgspec.json.encode(lines)))
    return len(lines)


def cosigned_note(store: Store, row: CheckpointRow) -> str:
    """The checkpoint note with the stored cosignature lines appended (log signature first)."""
    lines = cosignature_lines(store, row)
    return row.note + "".join(lines[k] for k in sorted(lines))
