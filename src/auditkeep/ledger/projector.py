"""The query projection: a consumer that follows the committed log by cursor.

It keeps the search indexes and the full-text index up to date outside the append
transaction (which stays lean). An embedded ledger follows it in a child process
(``auditkeep.ledger.follower``), ``auditkeep serve`` too; a ledger over another store runs it
in a background thread woken by each commit. It is also driven synchronously (``sync``) so
a search never misses a committed event.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import msgspec

from auditkeep.model.event import Event
from auditkeep.model.timefmt import MAX_NS, MIN_NS, clamp, format_rfc3339, parse_rfc3339
from auditkeep.store.base import KEY_SHIFT, PERSONAL_TEXT, Entry, ProjectedRow, Store

log = logging.getLogger("auditkeep.projector")


# What the projection reads of a leaf, without the model's patterns and limits: a leaf was
# validated before it was committed, and decoding it with those checks again cost three
# times as much (3.9 against 1.3 µs an event). gc=False: these hold no cycles, and the
# collector walking thousands of them per chunk cost ~2 µs an event (bench_projection_cpu).
class _Actor(msgspec.Struct, gc=False):
    id: str
    name: str | None = None
    ip: str | None = None
    session_id: str | None = None


class _Resource(msgspec.Struct, gc=False):
    type: str | None = None
    id: str | None = None
    name: str | None = None


class _Source(msgspec.Struct, gc=False):
    service: str | None = None
    host: str | None = None
    request_id: str | None = None


class _Fields(msgspec.Struct, gc=False):
    """What the projection reads of a leaf, but its metadata."""

    actor: _Actor
    action: str
    time: str | None = None
    category: str | None = None
    resource: _Resource | None = None
    outcome: str | None = None
    reason: str | None = None
    source: _Source | None = None


class LeafView(_Fields, gc=False):
    metadata: dict[str, Any] | None = None


# The projection's own view: metadata left as its JSON text. Decoding it into dicts and
# walking them for their strings cost ~3 µs an event; the strings come from the text instead
# (_words), and a store that indexes metadata paths takes the text as it is.
class _RowView(_Fields, gc=False):
    metadata: msgspec.Raw = msgspec.Raw()


_leaf_decoder = msgspec.json.Decoder(LeafView)
_row_decoder = msgspec.json.Decoder(_RowView)
_any_decoder = msgspec.json.Decoder()
_NO_METADATA = (b"", b"{}", b"null")
_new_row = tuple.__new__  # ProjectedRow's own __new__ is a Python function: ~0.2 µs a row
_sealed_decoder = msgspec.json.Decoder(dict[str, Any])
# Entries a projection transaction takes at most. Each transaction rewrites every index page
# its rows touch (the actor and resource indexes take rows all over), so larger ones cost less
# an event: rebuilding 100k events' projection, 2,000 a transaction ~32 µs an event (3.2 KB
# written to the WAL an event), 5,000 ~28-30 (1.6 KB), 10,000 ~26 (1.0 KB), 20,000 ~25.7
# (0.75 KB). A range is cut into even transactions, not CHUNK and a small rest.
CHUNK = 10_000
TEXT_LIMIT = 4096


def project_entry(tenant_id: int, e: Entry) -> ProjectedRow:
    """The search row of an entry (``ValueError`` or a msgspec error for a leaf this version
    cannot read)."""
    ev = _row_decoder.decode(e.leaf)
    return _row(tenant_id, e, ev, _full_text(_words(ev), e.sealed))


def project_erased(tenant_id: int, e: Entry) -> tuple[str, ProjectedRow]:
    """The full text an entry was indexed with (plaintext included) and its row without the
    plaintext, from one decode of the leaf (erasure replaces the one by the other)."""
    ev = _row_decoder.decode(e.leaf)
    parts = _words(ev)
    return _full_text(parts, e.sealed), _row(tenant_id, e, ev, _full_text(parts, None))


def _row(tenant_id: int, e: Entry, ev: _RowView, text: str) -> ProjectedRow:
    # The child that follows the log runs this for every event, as often as the appender
    # seals one: written flat (the row a plain tuple's, no helper for the time bounds).
    t = ev.time
    time_ns = parse_rfc3339(t) if t else e.received_ns
    if not MIN_NS <= time_ns <= MAX_NS:
        # Committed before the time bounds held: indexed at the nearest bound, so the row is
        # still found by every other filter and one event never stalls its tenant's search.
        log.warning("entry %d of tenant %d: time %s is out of range; indexed at %s",
                    e.index, tenant_id, t, format_rfc3339(clamp(time_ns)))
        time_ns = clamp(time_ns)
    r = ev.resource
    m = ev.metadata
    return _new_row(ProjectedRow, (
        (tenant_id << KEY_SHIFT) | e.index,
        tenant_id,
        time_ns,
        e.received_ns,
        ev.actor.id,
        ev.action,
        r.type if r else None,
        r.id if r else None,
        ev.outcome or "unknown",
        ev.category,
        text,
        e.index,
        None if len(m) < 5 and bytes(m) in _NO_METADATA else m,
    ))


def projected_text(e: Entry) -> str:
    """What full-text search indexed for an entry (to remove it from a contentless index)."""
    return _full_text(_words(_row_decoder.decode(e.leaf)), e.sealed)


def _text(ev: LeafView | Event, sealed: bytes | None) -> str:
    return _full_text(_parts(ev), sealed)


def _full_text(parts: list[str], sealed: bytes | None) -> str:
    """The public words, then PERSONAL_TEXT and the personal plaintext's words (when there
    are any), cut at TEXT_LIMIT."""
    text = " ".join(parts)
    if sealed:
        personal = [v for v in _sealed_decoder.decode(sealed).values() if isinstance(v, str)]
        if personal:
            text += PERSONAL_TEXT + " ".join(personal)
    return text[:TEXT_LIMIT] if len(text) > TEXT_LIMIT else text


def _string_values(text: str) -> list[str]:
    """The string values (not the keys) of a JSON text without a backslash, in document order.

    Without a backslash no string holds a quote: split at the quotes, the odd pieces are the
    strings, and a string followed by a colon is a key. Decoding the text into dicts and
    walking them gives the same strings in the same order, at ~3 µs an event more."""
    cut = text.split('"')
    return [v for v, after in zip(cut[1::2], cut[2::2], strict=True) if after.lstrip()[:1] != ":"]


def _parts(ev: LeafView | Event) -> list[str]:
    """The strings of the committed event that full-text search sees, in order."""
    parts = _named_parts(ev)
    if ev.metadata:
        _strings(ev.metadata, parts, [sum(map(len, parts))])
    return parts


def _words(ev: _RowView) -> list[str]:
    """:func:`_parts` from the projection's view: the same strings in the same order."""
    parts = _named_parts(ev)
    m = ev.metadata
    if len(m) > 2:
        text = str(m, "utf-8")
        if "\\" in text:  # an escape: decode it, as _parts does
            _strings(_any_decoder.decode(m), parts, [sum(map(len, parts))])
        else:  # _strings stops past TEXT_LIMIT, but the text is cut there anyway
            parts += _string_values(text)
    return parts


def _named_parts(ev: LeafView | Event | _RowView) -> list[str]:
    """The words of the event's named fields (all but metadata), in order."""
    a = ev.actor
    parts: list[str] = [a.id, ev.action]
    if a.name:
        parts.append(a.name)
    if a.ip:
        parts.append(a.ip)
    if a.session_id:
        parts.append(a.session_id)
    r = ev.resource
    if r is not None:
        parts += [v for v in (r.type, r.id, r.name) if v]
    if ev.reason:
        parts.append(ev.reason)
    s = ev.source
    if s is not None:
        parts += [v for v in (s.service, s.host, s.request_id) if v]
    return parts


def _strings(value: Any, out: list[str], budget: list[int]) -> None:
    """Collect string values (and keys) of metadata for full-text search, up to a budget."""
    if budget[0] > TEXT_LIMIT:
        return
    if isinstance(value, str):
        out.append(value)
        budget[0] += len(value)
        return
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for v in items:
        # strings inline, containers by recursion; numbers and the like add nothing
        if type(v) is str:
            if budget[0] > TEXT_LIMIT:
                return
            out.append(v)
            budget[0] += len(v)
        elif isinstance(v, dict | list):
            _strings(v, out, budget)


def _even_step(pending: int) -> int:
    """The size of each of the fewest transactions of at most CHUNK entries that take
    ``pending`` entries (12,000: two of 6,000, not 10,000 and 2,000)."""
    if pending <= CHUNK:
        return max(pending, 1)
    parts = -(-pending // CHUNK)
    return -(-pending // parts)


class Projector:
    def __init__(self, store: Store, tenant_ids: Callable[[], list[tuple[int, int]]]) -> None:
        """``tenant_ids`` returns (tenant_id, committed size) for every log."""
        self._store = store
        self._heads = tenant_ids
        self._wake = threading.Event()
        self._stop = False
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="auditkeep-projector", daemon=True)
        self._thread.start()

    def notify(self, _tenants: object = None) -> None:
        self._wake.set()

    def close(self) -> None:
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(0.5)
            self._wake.clear()
            if self._stop:
                return
            try:
                for tid, size in self._heads():
                    self.sync(tid, size)
            except Exception as exc:  # keep following; the next wake retries
                log.warning("projection failed: %s", exc)

    def sync(self, tenant_id: int, size: int, progress: Callable[[int], None] | None = None) -> int:
        """Project entries of one tenant up to ``size``; returns how many were projected."""
        done = 0
        with self._lock:
            pos = self._store.projection_position(tenant_id)
            step = _even_step(size - pos)
            while pos < size:
                end = min(size, pos + step)
                rows: list[ProjectedRow] = []
                last = pos - 1
                for e in self._store.entries(tenant_id, pos, end):
                    last = e.index
                    if not e.leaf:  # expired under retention: nothing left to search
                        continue
                    try:
                        rows.append(project_entry(tenant_id, e))
                    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
                        # a leaf this version cannot read: the projection moves past it
                        # instead of failing on it forever; verify still checks it
                        log.warning("entry %d of tenant %d is not searchable: %s", e.index, tenant_id, exc)
                if last < pos:
                    break
                self._store.project(tenant_id, rows, last + 1)
                done += last + 1 - pos
                if progress is not None:
                    progress(last + 1 - pos)
                pos = last + 1
        return done
