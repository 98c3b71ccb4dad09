"""GDPR erasure by crypto-shredding: destroy a data subject's salt and personal plaintext.

The leaves hold only salted commitments to personal fields (docs/leaf-format.md), so
destroying the subject's salt and the plaintext kept beside the leaves erases the values
while every leaf, tile, root, checkpoint and proof stays as it was. The store also rewrites
the search index without the values and leaves no copy in its files (SQLite:
``secure_delete`` and truncated WALs; PostgreSQL: ``VACUUM``).

An active legal hold covering any of the subject's events blocks the whole erasure. The
erasure is recorded first, as ``auditkeep.subject.erased`` in the tenant's log, with an
erasure id, counts, index ranges and the reason, and nothing that names the subject; a
crash after the record and before the shredding is finished by running the erasure again.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import msgspec

from auditkeep.errors import NotFound
from auditkeep.ledger.ledger import Ledger
from auditkeep.ledger.projector import project_erased, projected_text
from auditkeep.model.errors import ValidationError
from auditkeep.model.event import Submitter
from auditkeep.model.timefmt import parse_rfc3339
from auditkeep.retention.holds import MAX_REASON, HoldBook, HoldError, _text, covering
from auditkeep.retention.run import CURSOR, SlimActor, SlimResource
from auditkeep.store.base import (
    SUBJECTS_ARE_ACTORS,
    Entry,
    ProjectedRow,
    Store,
    entry_key,
    key_runs,
)
from auditkeep.store.sqlite import SQLiteStore

ACTION = "auditkeep.subject.erased"
MAX_SUBJECT = 1024
RANGES_KEPT = 500  # the record lists at most this many ranges (and says how many there were)


class _Slim(msgspec.Struct):
    actor: SlimActor
    time: str | None = None
    resource: SlimResource | None = None


_slim = msgspec.json.Decoder(_Slim)


@dataclass
class Erasure:
    erasure_id: str
    tenant: str
    events: int  # events whose personal plaintext was destroyed
    ranges: list[tuple[int, int]] = field(default_factory=list)


def erase_subject(
    ledger: Ledger, tenant: str, subject: str, reason: str, actor: dict[str, str], submitter: Submitter | None = None
) -> Erasure:
    """Erase ``subject``'s personal fields in ``tenant``'s log (see the module docstring)."""
    if not isinstance(subject, str) or not subject or len(subject) > MAX_SUBJECT or "\x00" in subject:
        raise ValidationError(f"must be 1-{MAX_SUBJECT} characters without NUL", "subject")
    why = _text(reason, "reason", MAX_REASON) or ""
    tid = ledger.tenant_id(tenant)
    store = ledger.store
    scanned_below = ledger.head(tenant).size  # the scan sees every entry below it
    by_actor = ledger.config.subject_field == "actor.id" and store.meta(SUBJECTS_ARE_ACTORS) == "1"
    entries = store.subject_entries(tid, subject, by_actor)
    has_salt = bool(store.subject_salts(tid, [subject]))
    if not entries and not has_salt:
        raise NotFound(f"no personal data of subject {subject!r} in tenant {tenant!r} (unknown, or erased already)")
    _check_holds(HoldBook(store).active(tenant), entries, subject)
    old_texts: dict[int, str] = {}
    rows: list[ProjectedRow] = []
    for e in entries:
        if not e.leaf:
            continue
        old_texts[entry_key(tid, e.index)], row = project_erased(tid, e)
        rows.append(row)
    ranges = key_runs([e.index for e in entries])
    erasure = Erasure("er_" + secrets.token_hex(8), tenant, len(entries), ranges)
    ledger.append_own([_record(erasure, why, actor)], tenant, submitter or ledger.submitter)
    _rebuild_stale_text(store)
    store.erase_subject(tid, subject, old_texts, rows, scanned_below)
    return erasure


def _rebuild_stale_text(store: Store) -> None:
    """A SQLite projection left stale by a killed retention run still holds the full-text
    rows of entries expired since, the subject's among them (not found by the erasure: they
    have no plaintext left in the log): rebuild it first, as that run would have at its end."""
    if isinstance(store, SQLiteStore) and store.text_index_stale():
        below = {h.tenant_id: store.cursor(CURSOR, h.tenant_id)[0] for h in store.heads()}
        store.rebuild_text_index(projected_text, below)


def _check_holds(holds: list[Any], entries: list[Entry], subject: str) -> None:
    if not holds:
        return
    blocking: dict[str, int] = {}
    for e in entries:
        if not e.leaf:
            continue
        ev = _slim.decode(e.leaf)
        r = ev.resource
        h = covering(holds, ev.actor.id, r.type if r else None, r.id if r else None,
                     parse_rfc3339(ev.time) if ev.time else e.received_ns)
        if h is not None:
            blocking[h.id] = blocking.get(h.id, 0) + 1
    if blocking:
        named = ", ".join(f"{hid} ({n} events)" for hid, n in sorted(blocking.items()))
        raise HoldError(
            f"subject {subject!r} cannot be erased: active legal holds cover its events: {named}; "
            "nothing was erased (release the holds first: auditkeep hold release ID)"
        )


def _record(erasure: Erasure, reason: str, actor: dict[str, str]) -> dict[str, Any]:
    kept = erasure.ranges[:RANGES_KEPT]
    return {
        "actor": actor,
        "action": ACTION,
        "category": "admin",
        "outcome": "success",
        "reason": reason,
        "resource": {"type": "erasure", "id": erasure.erasure_id},
        "source": {"service": "auditkeep"},
        "metadata": {
            "events": erasure.events,
            "ranges": [[a, b] for a, b in kept],
            "ranges_total": len(erasure.ranges),
        },
    }
