"""The entries' part of ``verify``: each stored event's leaf hash recomputed and what is
stored beside it (index, id, tenant, received_at, personal fields) checked against the leaf,
in chunks — in this process, or by worker processes for a long log whose store can be
opened in one (``LogReads.reader_opener``). Both read through the store's reads alone."""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from hashlib import sha256 as _sha256

import msgspec

from auditkeep.crypto.atrest import MAGIC as SEALED_MAGIC
from auditkeep.ledger.sealcheck import SealChecker
from auditkeep.ledger.verify_report import Problem
from auditkeep.log.tiles import TILE_WIDTH
from auditkeep.model.timefmt import format_rfc3339
from auditkeep.store.base import KEY_SHIFT, LogReads, ReaderOpener, Row, row_chunks

_MASK = (1 << KEY_SHIFT) - 1


class _Stamp(msgspec.Struct):
    id: str = ""
    received_at: str = ""
    tenant: str = ""
    action: str = ""
    sealed: dict[str, str] | None = None


class _RetentionMeta(msgspec.Struct):
    ranges: list[tuple[int, int]] = []


class _RetentionRecord(msgspec.Struct):
    metadata: _RetentionMeta | None = None


_stamp = msgspec.json.Decoder(_Stamp)
_retention = msgspec.json.Decoder(_RetentionRecord)
RETENTION_ACTION = "auditkeep.retention.deleted"
TileHash = Callable[[int], bytes]  # the leaf hash an index's level-0 tile holds

@dataclass
class _Checked:
    """One chunk of entries checked: their leaf hashes (in order, up to the first gap), the
    problems found, whether a gap ended the log, and the personal fields checked or erased."""

    hashes: list[bytes]
    problems: list[Problem]
    stop: bool
    first_received: int
    last_received: int
    sealed_checked: int = 0
    erased: int = 0
    expired: list[tuple[int, int]] = field(default_factory=list)  # [start, end) without payload
    recorded: list[tuple[int, int]] = field(default_factory=list)  # ranges retention records name
    unchecked: int = 0  # encrypted payloads not opened (no master key)


def _add(ranges: list[tuple[int, int]], index: int) -> None:
    if ranges and ranges[-1][1] == index:
        ranges[-1] = (ranges[-1][0], index + 1)
    else:
        ranges.append((index, index + 1))


def _check_rows(
    rows: Sequence[Row], start: int, tenant: str, seals: SealChecker | None, tile_hash: TileHash
) -> _Checked:
    """Recompute the leaf hashes of entries ``start, start+1, ...`` and check what is stored
    beside each leaf (index, id, tenant, received_at, personal fields) against the leaf."""
    hashes: list[bytes] = []
    problems: list[Problem] = []
    expired: list[tuple[int, int]] = []
    recorded: list[tuple[int, int]] = []
    unchecked = 0
    expected = start
    prev_received = rows[0][2] if rows else 0
    received_text = format_rfc3339(prev_received) if rows else ""  # a batch shares one
    stop = False
    if seals is not None:
        seals.prepare(rows)
    for k, raw_id, received_ns, leaf, subject, plain in rows:
        index = k & _MASK
        if index != expected:
            problems.append(Problem("missing", f"entry missing (next stored entry is index {index})", expected))
            stop = True
            break
        if received_ns != prev_received:
            if received_ns < prev_received:
                problems.append(Problem("order", "received_at goes backwards (entries reordered?)", index))
            prev_received = received_ns
            received_text = format_rfc3339(received_ns)
        if not leaf:
            # Expired: the payload is gone, its leaf hash is in the tile (and so under every
            # checkpoint's root). The log must also hold a retention record naming it.
            _add(expired, index)
            hashes.append(tile_hash(index))
            expected += 1
            continue
        if leaf[:4] == SEALED_MAGIC:
            # Encrypted, and no master key here: the tile's leaf hash stands in for it (the
            # tree above is still checked); the report counts the payloads not checked.
            unchecked += 1
            hashes.append(tile_hash(index))
            expected += 1
            continue
        try:
            stamp: _Stamp | None = _stamp.decode(leaf)
        except msgspec.DecodeError:
            problems.append(Problem("event", "stored event is not valid JSON (altered)", index))
            stamp = None
        if stamp is not None and stamp.action == RETENTION_ACTION:
            try:
                meta = _retention.decode(leaf).metadata
            except msgspec.ValidationError:
                meta = None
            if meta is not None:
                recorded += [(a, b) for a, b in meta.ranges if 0 <= a < b]
        if stamp is not None:
            if stamp.received_at != received_text or stamp.tenant != tenant or stamp.id.replace("-", "") != raw_id.hex():
                problems.append(Problem("event", "stored id, tenant or received_at differ from the event's", index))
            if seals is not None and (stamp.sealed is not None or plain is not None):
                bad = seals.check(stamp.id, stamp.sealed, subject, plain)
                if bad:
                    problems += [Problem("sealed", message, index) for message in bad]
        hashes.append(_sha256(b"\x00" + leaf).digest())
        expected += 1
    first = rows[0][2] if rows else 0
    if seals is None:
        return _Checked(
            hashes, problems, stop, first, prev_received, expired=expired, recorded=recorded, unchecked=unchecked
        )
    return _Checked(
        hashes, problems, stop, first, prev_received, seals.take_checked(), seals.take_erased(), expired, recorded,
        unchecked,
    )


# Logs at least this long are checked by worker processes (one chunk each, in order), the
# tree built here: hashing is most of the work and one interpreter runs it on one core.
PARALLEL_FROM = 200_000
_RANGE = 65_536


def _checked_chunks(store: LogReads, tid: int, tenant: str, size: int, sealed: bool) -> Iterator[_Checked]:
    opener = store.reader_opener() if size >= PARALLEL_FROM and (os.cpu_count() or 1) > 1 else None
    if opener is not None:
        chunks = _checked_in_workers(opener, tid, tenant, size, os.cpu_count() or 2, sealed)
    else:
        chunks = _checked_here(store, tid, tenant, size, sealed)
    prev_received = 0
    done = 0
    for checked in chunks:
        # Chunks are checked apart: a step back in received_at between two is caught here.
        if checked.hashes and checked.first_received < prev_received:
            checked.problems.insert(0, Problem("order", "received_at goes backwards (entries reordered?)", done))
        prev_received = checked.last_received or prev_received
        done += len(checked.hashes)
        yield checked
        if checked.stop:
            return


def _checked_here(store: LogReads, tid: int, tenant: str, size: int, sealed: bool) -> Iterator[_Checked]:
    done = 0
    seals = SealChecker(lambda subjects: store.subject_salts(tid, subjects)) if sealed else None
    tile_hash = _tile_hashes(lambda idx: store.read_tiles(tid, [(0, idx)]).get((0, idx), b""))
    for rows in row_chunks(store, tid, 0, size):
        checked = _check_rows(rows, done, tenant, seals, tile_hash)
        done += len(checked.hashes)
        yield checked
        if checked.stop:
            return


def _checked_in_workers(
    opener: ReaderOpener, tid: int, tenant: str, size: int, workers: int, sealed: bool
) -> Iterator[_Checked]:
    ctx = multiprocessing.get_context("spawn")  # never fork a process that runs threads
    ranges = iter([(start, min(size, start + _RANGE)) for start in range(0, size, _RANGE)])
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_open_worker, initargs=(opener,)) as pool:
        pending: deque[Future[_Checked]] = deque(
            pool.submit(_check_range, tid, tenant, start, end, sealed) for start, end in itertools.islice(ranges, workers * 2)
        )
        while pending:
            checked = pending.popleft().result()
            nxt = next(ranges, None)
            if nxt is not None:
                pending.append(pool.submit(_check_range, tid, tenant, *nxt, sealed))
            yield checked
            if checked.stop:
                for f in pending:
                    f.cancel()
                return


# A worker process's read-only store, opened once by the pool's initializer, and the salts
# it has read, cached across the ranges it checks (subjects recur).
_worker_store: list[LogReads] = []
_worker_seals: dict[int, SealChecker] = {}


def _open_worker(opener: ReaderOpener) -> None:
    _worker_store[:] = [opener()]


def _check_range(tid: int, tenant: str, start: int, end: int, sealed: bool = True) -> _Checked:
    """Worker: read entries [start, end) through the worker's store and check them."""
    store = _worker_store[0]
    rows: list[Row] = []
    for part in row_chunks(store, tid, start, end, end - start):
        rows += part
    seals = _worker_seals.setdefault(tid, SealChecker()) if sealed else None
    if seals is not None:
        seals.load = lambda subjects: store.subject_salts(tid, subjects)
    tile_hash = _tile_hashes(lambda idx: store.read_tiles(tid, [(0, idx)]).get((0, idx), b""))
    checked = _check_rows(rows, start, tenant, seals, tile_hash)
    if not checked.stop and len(checked.hashes) < end - start:
        missing = start + len(checked.hashes)
        checked.problems.append(Problem("missing", "entry missing (storage ends here)", missing))
        checked.stop = True
    return checked


def _tile_hashes(read_tile: Callable[[int], bytes]) -> TileHash:
    """Leaf hashes of expired entries, from their level-0 tiles (the last tile read is kept)."""
    last: list[tuple[int, bytes]] = []

    def get(index: int) -> bytes:
        idx = index // TILE_WIDTH
        if not last or last[0][0] != idx:
            last[:] = [(idx, read_tile(idx))]
        data = last[0][1]
        j = index % TILE_WIDTH
        h = data[32 * j : 32 * j + 32]
        # A missing tile gives no hash; a zero hash then fails the root and tile checks.
        return h if len(h) == 32 else bytes(32)

    return get
