"""Building an evidence bundle: a window of one tenant's log, with the proof that it is
complete and unaltered (format: docs/evidence.md, checked by :mod:`.bundlecheck`).

The window bounds ``received_at``, which never decreases within a log, so the window is one
contiguous index range. The bundle holds that range plus the entry just before and just
after it (both outside the window: nothing of the window can be left out at either end),
the leaves, a proof of the range against a signed checkpoint, and a consistency proof from
that checkpoint to the newest one. Everything is read through :class:`LogReader`; nothing
is written to the store and nothing is signed.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

import orjson

from auditkeep import __version__
from auditkeep.crypto.commit import HmacKey, event_key
from auditkeep.evidence.bundlecheck import FORMAT, MANIFEST, range_proof_nodes
from auditkeep.evidence.readme import readme_text
from auditkeep.evidence.report import Stats, render_report
from auditkeep.ledger.reader import LogReader, NotFound
from auditkeep.log.hashing import leaf_hash
from auditkeep.log.proofs import consistency_proof, subtree_hash
from auditkeep.model.errors import ValidationError
from auditkeep.model.timefmt import format_rfc3339

FILTER_NAMES = ("actor", "action", "resource_type", "resource_id", "outcome", "category", "text", "metadata")
_PAGE = 10_000


@dataclass
class BundleSummary:
    tenant: str
    since: str
    until: str
    first: int
    end: int
    events: int
    hashed: int
    checkpoint_size: int
    latest_size: int
    open_end: bool
    revealed: int = 0
    files: dict[str, str] = field(default_factory=dict)


def _info(name: str) -> zipfile.ZipInfo:
    """A member stamped with the time of writing (a streamed member would say 1980)."""
    info = zipfile.ZipInfo(name, time.localtime()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


class _Member:
    """A file written in pieces, with its SHA-256 for the manifest: straight into the zip,
    or (``spool``) into a temporary file copied in later, as a zip takes one writer at a time."""

    def __init__(self, zf: zipfile.ZipFile, name: str, files: dict[str, str], *, spool: bool = False) -> None:
        self._zf = zf
        # closed by close() or discard(): the member outlives any one block
        self._f: IO[bytes] = tempfile.TemporaryFile() if spool else zf.open(_info(name), "w", force_zip64=True)  # noqa: SIM115
        self._spool = spool
        self._buf = bytearray()
        self._h = hashlib.sha256()
        self._name = name
        self._files = files

    def write(self, data: bytes) -> None:
        # Gathered into large pieces: zlib and the zip writer cost per call, not per byte.
        self._buf += data
        if len(self._buf) >= 1 << 20:
            self.flush()

    def flush(self) -> None:
        self._h.update(self._buf)
        self._f.write(self._buf)
        self._buf.clear()

    def close(self) -> None:
        self.flush()
        if self._spool:
            self._f.seek(0)
            with self._zf.open(_info(self._name), "w", force_zip64=True) as dst:
                shutil.copyfileobj(self._f, dst, 1 << 20)
        self._f.close()
        self._files[self._name] = self._h.hexdigest()

    def discard(self) -> None:
        self._f.close()


def _first_at_or_after(reader: LogReader, tenant: str, received_ns: int, size: int) -> int:
    """The first index below ``size`` received at or after ``received_ns`` (``size`` if none):
    a binary search, as received_at never decreases within a log."""
    lo, hi = 0, size
    while lo < hi:
        mid = (lo + hi) // 2
        if reader.entry(mid, tenant).received_ns < received_ns:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _matching(reader: LogReader, tenant: str, since_ns: int, until_ns: int, filters: dict[str, Any]) -> set[int]:
    """Indices of the window's entries that match ``filters`` (through search)."""
    out: set[int] = set()
    cursor: str | None = None
    while True:
        page = reader.search(
            tenant, received_since=since_ns, received_until=until_ns, order="oldest", cursor=cursor, limit=_PAGE, **filters
        )
        if page.unindexed:
            raise ValidationError(
                f"the search index is {page.unindexed} entries behind the log here; filters need it current "
                "(run the writer, or `auditkeep reindex`)",
                "filters",
            )
        out.update(rec.index for rec in page.items)
        cursor = page.next_cursor
        if cursor is None:
            return out


def build_bundle(
    reader: LogReader,
    out: IO[bytes],
    tenant: str,
    since_ns: int,
    until_ns: int,
    *,
    filters: dict[str, Any] | None = None,
    reveal_subject: str | None = None,
    max_entries: int | None = None,
    progress: Callable[[int], None] | None = None,
    total: Callable[[int], None] | None = None,
) -> BundleSummary:
    """Write the bundle of ``tenant``'s entries received in ``[since_ns, until_ns)`` to
    ``out`` (a zip). ``filters`` (search filters) keep the matching events in full and the
    others as leaf hashes; ``reveal_subject`` opens that subject's personal fields."""
    filters = {k: v for k, v in (filters or {}).items() if v not in (None, "", [], ())}
    for name in filters:
        if name not in FILTER_NAMES:
            raise ValidationError(f"unknown filter {name!r}; filters are {', '.join(FILTER_NAMES)}", "filters")
    if until_ns <= since_ns:
        raise ValidationError("the window is empty: until must be after since", "until")
    tid = reader.tenant_id(tenant)
    store = reader.store
    latest = store.latest_checkpoint(tid)
    if latest is None or latest.size == 0:
        raise NotFound(
            f"tenant {tenant!r} has no signed checkpoint over any entry yet (a writer signs one within "
            "checkpoint_interval; `auditkeep checkpoint --new` signs one now)"
        )
    start = _first_at_or_after(reader, tenant, since_ns, latest.size)
    stop = _first_at_or_after(reader, tenant, until_ns, latest.size)
    need = stop + 1 if stop < latest.size else latest.size
    cp = store.checkpoint_from(tid, need) or latest  # the earliest that proves the range
    size = cp.size
    first = start - 1 if start > 0 else 0
    end = stop + 1 if stop < size else size
    if max_entries is not None and end - first > max_entries:
        raise ValidationError(
            f"the window spans {end - first} entries, more than the {max_entries} allowed here; narrow it", "since"
        )
    matching = _matching(reader, tenant, since_ns, until_ns, filters) if filters else None
    salt = None
    if reveal_subject is not None:
        raw = store.subject_salts(tid, [reveal_subject]).get(reveal_subject)
        salt = HmacKey(raw) if raw is not None else None
    if total is not None:
        total(end - first)

    read = lambda keys: store.read_tiles(tid, keys)  # noqa: E731
    range_hashes = [subtree_hash(lo, hi, read).hex() for lo, hi in range_proof_nodes(first, end, size)]
    cons = [h.hex() for h in consistency_proof(size, latest.size, read)]
    window = (format_rfc3339(since_ns), format_rfc3339(until_ns))
    stats = Stats(since_ns, until_ns)
    files: dict[str, str] = {}
    counts = {"event": 0, "hashed": 0, "revealed": 0}
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        leaves = _Member(zf, "leaves.tsv", files, spool=True)
        reveal = _Member(zf, "reveal.jsonl", files, spool=True) if reveal_subject is not None else None
        events = _Member(zf, "events.jsonl", files)
        try:
            pos = first
            for e in store.entries(tid, first, end):
                if e.index != pos:
                    raise NotFound(f"entry {pos} is missing from the store")
                pos += 1
                lh = leaf_hash(e.leaf).hex() if e.leaf else ""
                if not e.leaf:
                    # Expired by retention: only its leaf hash, kept in the tile, remains.
                    tile = store.read_tiles(tid, [(0, e.index // 256)]).get((0, e.index // 256), b"")
                    lh = tile[32 * (e.index % 256) : 32 * (e.index % 256) + 32].hex()
                    kind = "expired"
                elif e.index < start:
                    kind = "before"
                elif e.index >= stop:
                    kind = "after"
                elif matching is None or e.index in matching:
                    kind = "event"
                else:
                    kind = "hashed"
                leaves.write(f"{e.index}\t{lh}\t{kind}\n".encode())
                if progress is not None and not (pos - first) % 4096:
                    progress(4096)
                if kind in counts:
                    counts[kind] += 1
                if kind in ("hashed", "expired"):
                    continue
                events.write(e.leaf + b"\n")
                if kind != "event":
                    continue
                ev = orjson.loads(e.leaf)
                stats.add(ev, e.received_ns)
                if reveal is not None and salt is not None and e.subject == reveal_subject and e.sealed is not None:
                    reveal.write(
                        orjson.dumps(
                            {
                                "index": e.index,
                                "id": ev["id"],
                                "event_key": event_key(salt, ev["id"]).hex(),
                                "values": orjson.loads(e.sealed),
                            }
                        )
                        + b"\n"
                    )
                    counts["revealed"] += 1
            if progress is not None:
                progress((pos - first) % 4096)
            if pos != end:
                raise NotFound(f"entries {pos} to {end - 1} are missing from the store")
        except BaseException:
            for m in (events, leaves, reveal):
                if m is not None:
                    m.discard()
            raise
        for m in (events, leaves, reveal):
            if m is not None:
                m.close()
        open_end = end == size and stop >= size
        summary = BundleSummary(
            tenant, window[0], window[1], first, end, counts["event"], counts["hashed"], size, latest.size, open_end,
            counts["revealed"],
        )
        keys = [k.verifier().vkey() for k in reader.stored_keys()]
        small: dict[str, bytes] = {
            "checkpoint.txt": cp.note.encode(),
            "latest-checkpoint.txt": latest.note.encode(),
            "proof.json": orjson.dumps(
                {
                    "range": {"tree_size": size, "first": first, "end": end, "hashes": range_hashes},
                    "consistency": {"from": size, "to": latest.size, "hashes": cons},
                },
                option=orjson.OPT_INDENT_2,
            ),
            "keys.txt": "".join(k + "\n" for k in keys).encode(),
            "README.txt": readme_text(summary, reader.origin(tenant), filters, reveal_subject).encode(),
            "report.html": render_report(summary, stats, filters).encode(),
        }
        for name, data in small.items():
            zf.writestr(name, data)
            files[name] = hashlib.sha256(data).hexdigest()
        manifest = {
            "format": FORMAT,
            "generator": f"auditkeep {__version__}",
            "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tenant": tenant,
            "origin": reader.origin(tenant),
            "window": {"since": window[0], "until": window[1]},
            "filters": filters,
            "range": {"first": first, "end": end, "events": counts["event"], "hashed": counts["hashed"]},
            "checkpoint_size": size,
            "latest_size": latest.size,
            "personal_fields": "revealed for one subject" if reveal_subject is not None else "omitted (commitments only)",
            "reveal": {"subject": reveal_subject, "events": counts["revealed"], "erased": salt is None}
            if reveal_subject is not None
            else None,
            "files": files,
        }
        zf.writestr(MANIFEST, orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    summary.files = files
    return summary
