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
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import IO

import orjson

try:
    from isal import isal_zlib as _isal
except ImportError:  # an optional speed-up: the bundle is the same format without it
    _isal = None  # type: ignore[assignment]

from auditkeep import __version__
from auditkeep.crypto.commit import HmacKey, event_key
from auditkeep.evidence.bundlecheck import FORMAT, MANIFEST
from auditkeep.evidence.readme import readme_text
from auditkeep.evidence.report import Stats, render_report
from auditkeep.evidence.tlogcheck import range_proof_nodes
from auditkeep.ledger.reader import LogReader, NotFound
from auditkeep.log.proofs import consistency_proof, subtree_hash
from auditkeep.model.errors import ValidationError
from auditkeep.model.timefmt import format_rfc3339
from auditkeep.query.filters import Filters
from auditkeep.store.base import KEY_SHIFT, Store, row_chunks

FILTER_NAMES = ("actor", "action", "resource_type", "resource_id", "outcome", "category", "text", "metadata")
"""The search filters a bundle can hold (the window bounds received_at itself)."""
_PAGE = 10_000
_MASK = (1 << KEY_SHIFT) - 1
_sha256 = hashlib.sha256


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


def _open_member(zf: zipfile.ZipFile, name: str) -> IO[bytes]:
    """A deflated member open for writing, deflated by ISA-L when it is installed: the same
    raw deflate stream zlib writes (any unzip reads it), made about four times faster at a
    smaller size than zlib's level 1, which was half of a bundle's build time."""
    dst = zf.open(_info(name), "w", force_zip64=True)
    # The zip writer keeps its compressor in this attribute (CPython 3.6 to 3.13); where it
    # does not, zlib's stays in place.
    if _isal is not None and hasattr(dst, "_compressor"):
        dst._compressor = _isal.compressobj(1, zlib.DEFLATED, -15)
    return dst


class _Member:
    """A file written in pieces, with its SHA-256 for the manifest: straight into the zip,
    or (``spool``) into a temporary file copied in later, as a zip takes one writer at a time."""

    def __init__(self, zf: zipfile.ZipFile, name: str, files: dict[str, str], *, spool: bool = False) -> None:
        self._zf = zf
        # closed by close() or discard(): the member outlives any one block
        self._f: IO[bytes] = tempfile.TemporaryFile() if spool else _open_member(zf, name)  # noqa: SIM115
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
            with _open_member(self._zf, self._name) as dst:
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


def _matching(reader: LogReader, tenant: str, since_ns: int, until_ns: int, filters: Filters) -> set[int]:
    """Indices of the window's entries that match ``filters`` (through search)."""
    out: set[int] = set()
    cursor: str | None = None
    window = replace(filters, received_since=since_ns, received_until=until_ns)
    while True:
        page = reader.search(tenant, order="oldest", cursor=cursor, limit=_PAGE, filters=window)
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


def _write_range(
    store: Store,
    tid: int,
    bounds: tuple[int, int, int, int],
    matching: set[int] | None,
    leaves: _Member,
    events: _Member,
    stats: Stats,
    reveal: tuple[str, Callable[[int, bytes, bytes], None]] | None,
    progress: Callable[[int], None] | None,
) -> tuple[int, int, int]:
    """Write leaves.tsv and events.jsonl for entries ``first`` to ``end`` (``bounds`` is
    first, start, stop, end: the window is ``[start, stop)``), a chunk of raw store rows at a
    time (no object per entry; leaves counted for the report in one decode per chunk).
    Returns the index reached and the counts of events and hashed entries."""
    first, start, stop, end = bounds
    pos, n_events, n_hashed = first, 0, 0
    tile: tuple[int, bytes] = (-1, b"")
    for rows in row_chunks(store, tid, first, end):
        if (rows[0][0] & _MASK) != pos or (rows[-1][0] & _MASK) != pos + len(rows) - 1:
            raise NotFound(f"entries from {pos} are missing from the store")  # keys are unique and ordered
        lines: list[str] = []
        full: list[bytes] = []
        counted: list[bytes] = []
        received: list[int] = []
        for index, (_k, _id, received_ns, leaf, subject, sealed) in enumerate(rows, pos):
            if not leaf:
                # Expired by retention: only its leaf hash, kept in the tile, remains.
                if tile[0] != index // 256:
                    tile = (index // 256, store.read_tiles(tid, [(0, index // 256)]).get((0, index // 256), b""))
                lines.append(f"{index}\t{tile[1][32 * (index % 256) : 32 * (index % 256) + 32].hex()}\texpired\n")
                continue
            lh = _sha256(b"\x00" + leaf).hexdigest()
            if start <= index < stop:
                if matching is not None and index not in matching:
                    lines.append(f"{index}\t{lh}\thashed\n")
                    n_hashed += 1
                    continue
                lines.append(f"{index}\t{lh}\tevent\n")
                counted.append(leaf)
                received.append(received_ns)
                if reveal is not None and subject == reveal[0] and sealed is not None:
                    reveal[1](index, leaf, sealed)
            else:
                lines.append(f"{index}\t{lh}\t{'before' if index < start else 'after'}\n")
            full.append(leaf)
        leaves.write("".join(lines).encode())
        if full:
            full.append(b"")
            events.write(b"\n".join(full))
        stats.add_leaves(counted, received)
        n_events += len(counted)
        pos += len(rows)
        if progress is not None:
            progress(len(rows))
    return pos, n_events, n_hashed


def build_bundle(
    reader: LogReader,
    out: IO[bytes],
    tenant: str,
    since_ns: int,
    until_ns: int,
    *,
    filters: Filters | None = None,
    reveal_subject: str | None = None,
    max_entries: int | None = None,
    progress: Callable[[int], None] | None = None,
    total: Callable[[int], None] | None = None,
) -> BundleSummary:
    """Write the bundle of ``tenant``'s entries received in ``[since_ns, until_ns)`` to
    ``out`` (a zip). ``filters`` (search filters) keep the matching events in full and the
    others as leaf hashes; ``reveal_subject`` opens that subject's personal fields."""
    chosen = filters.kwargs() if filters is not None else {}  # as the manifest records them
    for name in chosen:
        if name not in FILTER_NAMES:
            raise ValidationError(f"a bundle cannot hold filter {name!r}; its filters are {', '.join(FILTER_NAMES)}", "filters")
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

            def opened(index: int, leaf: bytes, sealed: bytes) -> None:
                assert reveal is not None and salt is not None
                ev_id = orjson.loads(leaf)["id"]
                item = {"index": index, "id": ev_id, "event_key": event_key(salt, ev_id).hex(), "values": orjson.loads(sealed)}
                reveal.write(orjson.dumps(item) + b"\n")
                counts["revealed"] += 1

            got = _write_range(
                store, tid, (first, start, stop, end), matching, leaves, events, stats,
                (reveal_subject, opened) if reveal_subject is not None and reveal is not None and salt is not None else None,
                progress,
            )  # fmt: skip
            pos, counts["event"], counts["hashed"] = got
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
            "README.txt": readme_text(summary, reader.origin(tenant), chosen, reveal_subject).encode(),
            "report.html": render_report(summary, stats, chosen).encode(),
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
            "filters": chosen,
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
