"""Archiving each tenant's log, in index order, into segments on a target.

The cursor ``archive`` of a tenant is the index below which every entry is archived. A run
starts there and works forward segment by segment: build the segment, store its data, store
its manifest, and only then move the cursor past it. A run killed anywhere (``kill -9``
included) loses nothing: the cursor still points at the unfinished segment, and the next
run first looks for a manifest at that position (a complete segment the killed run stored
but did not record) and adopts it, else builds the segment again. Segment boundaries are
multiples of ``segment_entries`` where the run is not cut short, so the rebuilt segment is
the same one.

Which entries are ready: with ``older_than``, those received that long ago; otherwise those
whose first matching retention policy's ``archive_after`` has passed. The run stops at the
first entry that is not ready (an entry whose policy has no ``archive_after`` does not stop
it, as long as it is older than the shortest ``archive_after``), and at the end of the
log's newest signed checkpoint (a new one is signed when the writer runs it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from auditkeep.archive.seal import SegmentSealer, sealer_kms
from auditkeep.archive.segment import build_segment, manifest_name
from auditkeep.archive.target import Target, open_target
from auditkeep.errors import IntegrityError, UserError
from auditkeep.ledger.ledger import Ledger
from auditkeep.retention.policy import Policy, first_match
from auditkeep.retention.run import ARCHIVE_CURSOR, _slim
from auditkeep.store.base import Head, Lease, Store

CURSOR = ARCHIVE_CURSOR
ACTION = "auditkeep.archive.written"
ACTOR = {"id": "auditkeep-archive", "type": "service"}
SEGMENTS_PER_EVENT = 400  # keeps one record well inside the event size and array limits
LEASE = "archive"  # one archiving process per store: two would race to write the same segment


class ArchiveBusy(UserError):
    """Another process holds the archive lease of this store."""


def _take_lease(store: Store) -> Lease:
    lease = store.lease(LEASE)
    if lease is None:
        raise ArchiveBusy("another process is archiving this store now (the archive lease); try again when it is done")
    return lease


@dataclass
class TenantArchive:
    tenant: str
    size: int  # the log's size when the run began
    archived_before: int = 0  # the cursor when the run started
    archived_to: int = 0  # the cursor when it ended
    segments: list[tuple[int, int]] = field(default_factory=list)  # written or adopted
    adopted: int = 0  # segments a killed run had stored, found and recorded
    bytes: int = 0

    @property
    def entries(self) -> int:
        return self.archived_to - self.archived_before


def archived_to(store: Store, tenant_id: int) -> int:
    """The index below which ``tenant_id``'s entries are archived."""
    return store.cursor(CURSOR, tenant_id)[0]


def ready_end(
    store: Store, head: Head, start: int, stop: int, policies: list[Policy], at_ns: int, older_than_ns: int | None
) -> int:
    """The first index in ``[start, stop)`` that is not ready for the archive (``stop`` if all are)."""
    if older_than_ns is not None:
        newest = at_ns - older_than_ns
        policies = []
    else:
        afters = [p.archive_after_ns for p in policies if p.archive_after_ns is not None]
        if not afters:
            return start
        newest = at_ns - min(afters)
    cache: dict[tuple[str | None, str], Policy | None] = {}
    pos = start
    for e in store.entries(head.tenant_id, start, stop):
        if e.index != pos or e.received_ns > newest:
            return pos
        if policies and e.leaf:
            ev = _slim.decode(e.leaf)
            key = (ev.category, ev.action)
            if key not in cache:
                cache[key] = first_match(policies, head.tenant, ev.category, ev.action)
            pol = cache[key]
            if pol is not None and pol.archive_after_ns is not None and e.received_ns > at_ns - pol.archive_after_ns:
                return pos
        pos += 1
    return pos


def _adopt(target: Target, tenant: str, start: int) -> tuple[int, int] | None:
    """A complete segment starting at ``start`` already on the target: (end, bytes)."""
    prefix = manifest_name(tenant, start, 0).rsplit("-", 1)[0] + "-"
    for name in target.names(prefix):
        if not name.endswith(".manifest.json"):
            continue
        raw = target.get(name)
        if raw is None:
            continue
        try:
            m = orjson.loads(raw)
            end, data = int(m["end"]), m["data"]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise IntegrityError(f"{target.description}: {name} is not a readable manifest") from None
        if m.get("first") != start or end <= start:
            raise IntegrityError(f"{target.description}: {name} names another range than its name")
        if target.exists(name.rsplit("/", 1)[0] + "/" + data["name"]):
            return end, int(data.get("bytes", 0))
    return None


def archive_tenant(
    reader: Ledger,
    head: Head,
    target: Target,
    policies: list[Policy],
    segment_entries: int,
    at_ns: int,
    older_than_ns: int | None = None,
    sign: Callable[[str], object] | None = None,
    progress: Callable[[int], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> TenantArchive:
    """Archive one tenant's ready entries (see the module's docstring); ``sign(tenant)`` signs
    a new checkpoint when the newest one does not cover what is ready."""
    store = reader.store
    tid = head.tenant_id
    pos = archived_to(store, tid)
    res = TenantArchive(head.tenant, head.size, pos, pos)
    origin = reader.origin(head.tenant)
    signers = reader.identity.signers_for(origin)
    kms = sealer_kms(store)  # an encrypted store's segments are sealed under its master key
    signed = False
    while pos < head.size:
        if stop is not None and stop():
            break
        aligned = (pos // segment_entries + 1) * segment_entries
        end = ready_end(store, head, pos, min(head.size, aligned), policies, at_ns, older_than_ns)
        if end <= pos:
            break
        cp = store.checkpoint_from(tid, end)
        if cp is None and sign is not None and not signed:
            sign(head.tenant)
            signed = True
            cp = store.checkpoint_from(tid, end)
        if cp is None:
            latest = store.latest_checkpoint(tid)
            end = min(end, latest.size if latest is not None else 0)
            if end <= pos:
                break
            cp = store.checkpoint_from(tid, end)
            assert cp is not None
        found = _adopt(target, head.tenant, pos)
        if found is not None:
            end, size = found
            res.adopted += 1
        else:
            sealer = SegmentSealer(kms, head.tenant, pos, end) if kms is not None else None
            seg = build_segment(store, tid, head.tenant, origin, pos, end, cp, time.time_ns(), signers, sealer)
            target.put(seg.data_name, seg.data)
            target.put(seg.manifest_name, seg.manifest)  # the segment counts from here on
            size = len(seg.data)
        store.set_cursor(CURSOR, tid, end)  # only once both objects are durable
        res.segments.append((pos, end))
        res.bytes += size
        if progress is not None:
            progress(end - pos)
        pos = res.archived_to = end
    if res.segments:
        reader.append_own(_records(res, target), head.tenant, reader.submitter)
    return res


def _records(res: TenantArchive, target: Target) -> list[dict[str, Any]]:
    """The ``auditkeep.archive.written`` events of one run over a tenant: which ranges went
    to which target (after the segments are durable: a record never names a missing one)."""
    out = []
    for i in range(0, len(res.segments), SEGMENTS_PER_EVENT):
        part = res.segments[i : i + SEGMENTS_PER_EVENT]
        out.append({
            "actor": ACTOR,
            "action": ACTION,
            "category": "system",
            "outcome": "success",
            "source": {"service": "auditkeep-archive"},
            "metadata": {"segments": [[a, b] for a, b in part], "count": sum(b - a for a, b in part),
                         "target": target.description[:500]},
        })
    return out


def run_archive(
    ledger: Ledger,
    target: Target,
    policies: list[Policy],
    segment_entries: int,
    at_ns: int | None = None,
    tenant: str | None = None,
    older_than_ns: int | None = None,
    progress: Callable[[int], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> list[TenantArchive]:
    """Archive every tenant's (or ``tenant``'s) ready entries to ``target``. It takes the
    writer: it signs a checkpoint when none covers what is ready, and keeps its cursor."""
    at = time.time_ns() if at_ns is None else at_ns
    heads = [ledger.head(tenant)] if tenant is not None else ledger.tenants()

    def sign(t: str) -> None:
        ledger.checkpoint(t, new=True)

    out = []
    lease = _take_lease(ledger.store)
    try:
        for head in heads:
            out.append(archive_tenant(ledger, head, target, policies, segment_entries, at, older_than_ns,
                                      sign, progress, stop))
            if stop is not None and stop():
                break
    finally:
        lease.release()
    return out


def retention_archiver(ledger: Ledger, archive_settings: Any, policies: list[Policy]) -> Callable[[Head], object] | None:
    """What a retention run calls per tenant before deleting (``archive`` of
    :func:`auditkeep.retention.run.run_retention`): archives the tenant's ready entries, so
    that entries whose policy has ``archive_after`` are archived before they are deleted.
    None when no policy has ``archive_after``."""
    if not any(p.archive_after_ns is not None for p in policies):
        return None
    target = open_target(archive_settings)

    def archive(head: Head) -> object:
        lease = _take_lease(ledger.store)
        try:
            return archive_tenant(ledger, head, target, policies, archive_settings.segment_entries, time.time_ns(),
                                  sign=lambda t: ledger.checkpoint(t, new=True))
        finally:
            lease.release()

    return archive


def list_segments(target: Target, tenant: str | None = None) -> list[dict[str, object]]:
    """The segments on ``target`` (complete ones: a manifest and its data), in order."""
    out: list[dict[str, object]] = []
    names = target.names(f"{tenant}/" if tenant else "")
    have = set(names)
    for name in names:
        if not name.endswith(".manifest.json"):
            continue
        raw = target.get(name)
        try:
            m = orjson.loads(raw or b"")
            data = name.rsplit("/", 1)[0] + "/" + m["data"]["name"]
            row: dict[str, object] = {
                "name": name[: -len(".manifest.json")], "tenant": m["tenant"], "first": m["first"],
                "end": m["end"], "tree_size": m["tree_size"], "expired": m.get("expired", 0),
                "bytes": m["data"].get("bytes"), "created_at": m.get("created_at"),
                "sealed": bool(m["data"].get("sealed")), "complete": data in have,
            }
        except (orjson.JSONDecodeError, KeyError, TypeError):
            row = {"name": name, "error": "not a readable manifest"}
        out.append(row)
    return out


def _manifest_range(tenant: str, name: str) -> tuple[int, int] | None:
    """(first, end) of ``<tenant>/<first>-<end>.manifest.json``, else None."""
    stem = name[len(tenant) + 1 : -len(".manifest.json")] if name.endswith(".manifest.json") else ""
    first, _, end = stem.partition("-")
    if not (first.isdigit() and end.isdigit()):
        return None
    return int(first), int(end)


def segment_rows(
    target: Target, tenant: str, after: int | None, limit: int
) -> tuple[list[dict[str, object]], bool]:
    """One page of ``tenant``'s segments, in index order, starting past the segment whose
    first index is ``after``: the rows (as :func:`list_segments` gives them, plus ``id``,
    ``FIRST-END``) and whether more follow. Only the page's manifests are read."""
    names = target.names(f"{tenant}/")
    have = set(names)
    found = [(r, n) for n in names if (r := _manifest_range(tenant, n)) is not None and (after is None or r[0] > after)]
    rows: list[dict[str, object]] = []
    for (first, end), name in found[:limit]:
        try:
            m = orjson.loads(target.get(name) or b"")
            data = name.rsplit("/", 1)[0] + "/" + m["data"]["name"]
            row: dict[str, object] = {
                "id": f"{first}-{end}", "first": first, "end": end, "tree_size": m["tree_size"],
                "expired": m.get("expired", 0), "bytes": m["data"].get("bytes"), "created_at": m.get("created_at"),
                "sealed": bool(m["data"].get("sealed")), "complete": data in have,
                "lock": target.retention(name),
            }
        except (orjson.JSONDecodeError, KeyError, TypeError):
            row = {"id": f"{first}-{end}", "first": first, "end": end, "error": "not a readable manifest"}
        rows.append(row)
    return rows, len(found) > limit
