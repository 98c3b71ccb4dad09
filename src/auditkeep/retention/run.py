"""Planning and running retention over the committed log.

Entries are considered in index order, and since ``received_at`` never decreases within a
log, the scan stops at the first entry too young for any policy. An entry is due when its
first matching policy has a ``delete_after`` that has passed, no active hold covers it, and
it is not one of the log's own retention, hold or erasure records.

Each chunk is done in two durable steps: first an ``auditkeep.retention.deleted`` event
records the index ranges (so ``verify`` can tell an expired entry from a deleted one), then
the payloads are deleted. A run killed in between is resumed by the next one, which finds
the same entries still due and records them again: nothing is lost, at worst recorded
twice. The cursor ``retention`` keeps the index below which every entry has expired, so a
run does not rescan them.

On SQLite, a run that may expire at least half of the search projection leaves the search
and full-text rows of the entries it expires and rebuilds both once at its end, from the
rows above each tenant's cursor (see ``_text_later``); the projection is marked stale first,
so a run killed before the rebuild leaves the mark, and the next run rebuilds it. Meanwhile
no search returns an expired entry: a search reads each hit's entry and skips those without
a payload.

On PostgreSQL, a run ends by compacting each past monthly partition whose entries have
(nearly) all expired (``PostgresStore.compact_expired_months``): the partition is dropped and
replaced by a compact copy, which gives its space back at once.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

import msgspec

from auditkeep.ledger.ledger import Ledger
from auditkeep.ledger.projector import projected_text
from auditkeep.ledger.reader import LogReader
from auditkeep.model.timefmt import format_rfc3339, parse_rfc3339
from auditkeep.retention.holds import Hold, HoldBook, covering
from auditkeep.retention.policy import Policy, first_match, protected
from auditkeep.store.base import KEY_SHIFT, Entry, Head, Store, entry_key, key_runs
from auditkeep.store.sqlite import SQLiteStore

CURSOR = "retention"
ARCHIVE_CURSOR = "archive"  # the archive's (auditkeep.archive.run): entries below it are archived
ACTION = "auditkeep.retention.deleted"
ACTOR = {"id": "auditkeep-retention", "type": "service"}
CHUNK = 20_000
# A run that rebuilds the SQLite projection at its end goes in larger chunks: each chunk
# costs its own durable transactions (the record, the payloads, the cursor), and on a disk
# shared with other work each fsync costs tens of milliseconds.
LARGE_CHUNK = 100_000
RANGES_PER_EVENT = 400  # keeps one record well inside the event size and array limits


class SlimActor(msgspec.Struct):
    """The part of an event's actor retention and erasure decide on."""

    id: str


class SlimResource(msgspec.Struct):
    type: str | None = None
    id: str | None = None


class _Slim(msgspec.Struct):
    """The fields retention decides on."""

    actor: SlimActor
    action: str
    time: str | None = None
    category: str | None = None
    resource: SlimResource | None = None


_slim = msgspec.json.Decoder(_Slim)


@dataclass
class TenantPlan:
    tenant: str
    size: int
    scanned: int = 0
    due: int = 0
    held: int = 0
    already_expired: int = 0
    ranges: list[tuple[int, int]] = field(default_factory=list)  # [start, end) of the due entries
    by_policy: Counter[str] = field(default_factory=Counter)
    holds: Counter[str] = field(default_factory=Counter)  # hold id -> entries it kept
    records: int = 0  # auditkeep.retention.deleted events appended (run only)
    unarchived: int = 0  # due, but kept until archived (their policy has archive_after)

    def count(self, scanned: int, due: list[int], policy_of: list[str]) -> None:
        """Add a scanned chunk: its due entries (ascending) and the policy of each."""
        self.scanned += scanned
        self.due += len(due)
        self.by_policy.update(policy_of)
        for start, stop in key_runs(due):
            if self.ranges and self.ranges[-1][1] == start:
                self.ranges[-1] = (self.ranges[-1][0], stop)
            else:
                self.ranges.append((start, stop))


@dataclass
class _Chunk:
    due: list[int]
    policy_of: list[str]
    texts: dict[int, str]
    low: int  # every entry below has expired
    scanned: int


class _Decide(msgspec.Struct):
    """The fields a policy decides on (without holds, nothing else is decoded)."""

    action: str
    category: str | None = None


_decide = msgspec.json.Decoder(_Decide)
# Every protected action starts with "auditkeep.", and a leaf is canonical JSON (RFC 8785:
# no whitespace, "." never escaped), so a leaf without these bytes has no protected action.
_OWN_ACTION = b'"action":"auditkeep.'
_Row = tuple[int, int, bytes, Entry | None]  # index, received_ns, leaf, the entry when wanted


def _rows(store: Store, tid: int, start: int, end: int, want_entries: bool) -> Iterator[_Row]:
    """(index, received_ns, leaf, entry) in index order: on SQLite, unless the entries are
    wanted (for their full-text rows), straight from the rows without building entries (most
    of a large run's scan)."""
    if isinstance(store, SQLiteStore) and not want_entries:
        mask = (1 << KEY_SHIFT) - 1
        for chunk in store.entries_raw(tid, start, end):
            for k, _, received_ns, leaf in chunk:
                yield k & mask, received_ns, leaf, None
    else:
        for e in store.entries(tid, start, end):
            yield e.index, e.received_ns, e.leaf, e


def _catch_all(policies: list[Policy], tenant: str, at_ns: int) -> tuple[Policy, int] | None:
    """The policy every unprotected entry of ``tenant`` falls to, when the first policy of the
    tenant matches every category and action and deletes (then no leaf needs decoding)."""
    mine = [p for p in policies if fnmatchcase(tenant, p.tenant)]
    if mine and mine[0].category == "*" and mine[0].action == "*" and mine[0].delete_after_ns is not None:
        return mine[0], at_ns - mine[0].delete_after_ns
    return None


# A leaf is canonical JSON (RFC 8785): keys sorted, no whitespace, "." never escaped. An
# event's leaf starting with the first of these has "action" as its first key, so it starts
# with the second exactly when its action is in auditkeep's own namespace (which holds every
# protected action); a leaf starting otherwise is decoded.
_PLAIN = b'{"action":"'
_OWN = b'{"action":"auditkeep.'


def _scan_unread(
    store: SQLiteStore, head: Head, policies: list[Policy], everything: tuple[Policy, int],
    plan: TenantPlan, chunk_size: int,
) -> Iterator[_Chunk]:
    """:func:`_scan` for a tenant whose first policy takes every entry received by ``cut``
    (no hold, no archive_after, no full-text rows wanted): every entry from the cursor up to
    the first received after ``cut`` is due but the few SQLite hands back as exceptions
    (:meth:`SQLiteStore.retention_exceptions`): no payload, or a leaf that may hold a
    protected action, which is decoded and decided as :func:`_scan` does."""
    pol, cut = everything
    tid = head.tenant_id
    low, _ = store.cursor(CURSOR, tid)
    pos = low
    contiguous = True
    stop = _first_received_after(store, head, pos, cut)
    while pos < stop:
        end = min(stop, pos + chunk_size)
        due: list[int] = []
        policy_of: list[str] = []
        at = pos  # entries [at, next exception) are due
        for index, _, leaf in store.retention_exceptions(tid, pos, end, _PLAIN, _OWN):
            if at < index:
                due.extend(range(at, index))
                policy_of.extend([pol.name] * (index - at))
                if contiguous:
                    low = index
            at = index + 1
            if not leaf:
                plan.already_expired += 1
                if contiguous:
                    low = index + 1
                continue
            ev = _decide.decode(leaf)
            if protected(ev.action) or first_match(policies, head.tenant, ev.category, ev.action) is not pol:
                contiguous = False
                continue
            due.append(index)
            policy_of.append(pol.name)
            if contiguous:
                low = index + 1
        if at < end:
            due.extend(range(at, end))
            policy_of.extend([pol.name] * (end - at))
            if contiguous:
                low = end
        plan.count(end - pos, due, policy_of)
        yield _Chunk(due, policy_of, {}, low, end - pos)
        pos = end


def _scan(
    store: Store,
    head: Head,
    policies: list[Policy],
    holds: list[Hold],
    at_ns: int,
    plan: TenantPlan,
    want_texts: bool,
    chunk_size: int = CHUNK,
) -> Iterator[_Chunk]:
    deletes = [p.delete_after_ns for p in policies if p.delete_after_ns is not None]
    if not deletes:
        return
    newest_due = at_ns - min(deletes)  # nothing received after this can be due
    tid = head.tenant_id
    low, _ = store.cursor(CURSOR, tid)
    # an entry whose policy has archive_after is deleted only once archived (auditkeep.archive)
    archived = store.cursor(ARCHIVE_CURSOR, tid)[0] if any(p.archive_after_ns is not None for p in policies) else 0
    contiguous = True
    projected = store.projection_position(tid) if want_texts else 0
    pos = low
    # per (category, action): the policy that may expire such an entry (None: never due)
    cache: dict[tuple[str | None, str], tuple[Policy, int] | None] = {}
    everything = None if holds else _catch_all(policies, head.tenant, at_ns)
    if (everything is not None and everything[0].archive_after_ns is None and not want_texts
            and isinstance(store, SQLiteStore)):
        yield from _scan_unread(store, head, policies, everything, plan, chunk_size)
        return
    while pos < head.size:
        end = min(head.size, pos + chunk_size)
        due: list[int] = []
        policy_of: list[str] = []
        texts: dict[int, str] = {}
        scanned = 0
        finished = False
        for index, received_ns, leaf, entry in _rows(store, tid, pos, end, want_texts):
            if received_ns > newest_due:
                finished = True
                break
            scanned += 1
            pos = index + 1
            if not leaf:
                plan.already_expired += 1
                if contiguous:
                    low = index + 1
                continue
            ev: _Slim | _Decide | None = None
            if everything is not None and _OWN_ACTION not in leaf:
                found: tuple[Policy, int] | None = everything
            else:
                ev = _slim.decode(leaf) if holds else _decide.decode(leaf)
                key = (ev.category, ev.action)
                if key in cache:
                    found = cache[key]
                else:
                    pol = first_match(policies, head.tenant, ev.category, ev.action)
                    found = None
                    if pol is not None and pol.delete_after_ns is not None and not protected(ev.action):
                        found = (pol, at_ns - pol.delete_after_ns)
                    cache[key] = found
            if found is None or received_ns > found[1]:
                contiguous = False
                continue
            pol = found[0]
            if pol.archive_after_ns is not None and index >= archived:
                plan.unarchived += 1
                contiguous = False
                continue
            if holds:
                assert isinstance(ev, _Slim)
                r = ev.resource
                hold = covering(holds, ev.actor.id, r.type if r else None, r.id if r else None,
                                parse_rfc3339(ev.time) if ev.time else received_ns)
                if hold is not None:
                    plan.held += 1
                    plan.holds[hold.id] += 1
                    contiguous = False
                    continue
            due.append(index)
            policy_of.append(pol.name)
            if entry is not None and index < projected:
                texts[entry_key(tid, index)] = projected_text(entry)
            if contiguous:
                low = index + 1
        else:
            finished = pos < end  # the store ended early
        plan.count(scanned, due, policy_of)
        yield _Chunk(due, policy_of, texts, low, scanned)
        if finished:
            return


def plan_retention(
    reader: LogReader,
    policies: list[Policy],
    at_ns: int | None = None,
    tenant: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[TenantPlan]:
    """What a run at ``at_ns`` (default now) would delete, changing nothing."""
    at = time.time_ns() if at_ns is None else at_ns
    book = HoldBook(reader.store)
    out = []
    for head in _heads(reader, tenant):
        plan = TenantPlan(head.tenant, head.size)
        for chunk in _scan(reader.store, head, policies, book.active(head.tenant), at, plan, False):
            if progress is not None:
                progress(chunk.scanned)
        out.append(plan)
    return out


def run_retention(
    ledger: Ledger,
    policies: list[Policy],
    at_ns: int | None = None,
    tenant: str | None = None,
    progress: Callable[[int], None] | None = None,
    stop: Callable[[], bool] | None = None,
    chunk_size: int | None = None,
    archive: Callable[[Head], object] | None = None,
) -> list[TenantPlan]:
    """Delete the payloads of the due entries (see the module's docstring for the order of
    the steps and how a killed run resumes). ``archive(head)`` archives a tenant's ready
    entries first, so that those whose policy has ``archive_after`` can go in this run."""
    at = time.time_ns() if at_ns is None else at_ns
    store = ledger.store
    book = HoldBook(store)
    embedded = store if isinstance(store, SQLiteStore) else None
    out = []
    for head in _heads(ledger, tenant):
        if archive is not None:
            archive(head)
        plan = TenantPlan(head.tenant, head.size)
        out.append(plan)
        text_later = embedded is not None and _text_later(embedded, head, policies, at)
        want_texts = embedded is not None and not text_later
        size = chunk_size or (LARGE_CHUNK if text_later else CHUNK)
        for chunk in _scan(store, head, policies, book.active(head.tenant), at, plan, want_texts, size):
            if chunk.due:
                events = _records(chunk, at)
                ledger.append_own(events, head.tenant, ledger.submitter)  # auditkeep.retention.*
                plan.records += len(events)
                if embedded is not None:
                    embedded.expire(head.tenant_id, chunk.due, chunk.texts, text_later=text_later)
                else:
                    store.expire(head.tenant_id, chunk.due, chunk.texts)
            store.set_cursor(CURSOR, head.tenant_id, chunk.low)
            if progress is not None:
                progress(chunk.scanned)
            if stop is not None and stop():
                _finish_text(embedded)
                return out
    _finish_text(embedded)
    compact = getattr(store, "compact_expired_months", None)  # PostgreSQL: whole expired months
    if compact is not None:
        compact(at)
    return out


def _finish_text(store: SQLiteStore | None) -> None:
    """Rebuild a projection left stale by this run, or by a run killed before its end; below
    each tenant's cursor every entry has expired, so those rows go unread."""
    if store is not None and store.text_index_stale():
        below = {h.tenant_id: store.cursor(CURSOR, h.tenant_id)[0] for h in store.heads()}
        store.rebuild_text_index(projected_text, below)


def _text_later(store: SQLiteStore, head: Head, policies: list[Policy], at_ns: int) -> bool:
    """Whether this run should leave the full-text index to one rebuild at its end instead of
    forgetting each expired entry's row. SQLite's contentless index forgets a row only when
    given its text again, which costs a decode of the event and a tokenisation per entry; a
    rebuild costs the same per entry that stays. So the rebuild is chosen when the entries
    that may expire (those received before the youngest policy's limit, from the cursor on)
    are at least as many as the rest of the index: it then costs at most about as much as
    forgetting them would, and far less when most of the index expires at once."""
    deletes = [p.delete_after_ns for p in policies if p.delete_after_ns is not None]
    if not deletes:
        return False
    newest_due = at_ns - min(deletes)
    low, _ = store.cursor(CURSOR, head.tenant_id)
    end = _first_received_after(store, head, low, newest_due)
    may_expire = store.projected_rows(head.tenant_id, low, end)
    return may_expire > 0 and 2 * may_expire >= store.projected_rows()


def _first_received_after(store: Store, head: Head, low: int, ns: int) -> int:
    """The first index at or after ``low`` received after ``ns`` (``received_at`` never
    decreases within a log), by bisection."""
    lo, hi = low, head.size
    while lo < hi:
        mid = (lo + hi) // 2
        e = next(store.entries(head.tenant_id, mid, mid + 1), None)
        if e is not None and e.received_ns <= ns:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _records(chunk: _Chunk, at_ns: int) -> list[dict[str, Any]]:
    """The ``auditkeep.retention.deleted`` events of one chunk (ranges split to stay small)."""
    ranges = key_runs(chunk.due)
    events = []
    at = 0  # the ranges cover ``due`` in order, so a part's policies are the next slice of policy_of
    for i in range(0, len(ranges), RANGES_PER_EVENT):
        part = ranges[i : i + RANGES_PER_EVENT]
        n = sum(e - s for s, e in part)
        counts = Counter(chunk.policy_of[at : at + n])
        at += n
        events.append(
            {
                "actor": ACTOR,
                "action": ACTION,
                "category": "system",
                "outcome": "success",
                "source": {"service": "auditkeep-retention"},
                "metadata": {
                    "ranges": [[s, e] for s, e in part],
                    "count": sum(e - s for s, e in part),
                    "policies": [[name, n] for name, n in sorted(counts.items())],
                    "at": format_rfc3339(at_ns),
                },
            }
        )
    return events


def _heads(reader: LogReader, tenant: str | None) -> list[Head]:
    if tenant is not None:
        return [reader.head(tenant)]
    return reader.tenants()
