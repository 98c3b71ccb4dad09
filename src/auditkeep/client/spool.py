"""The on-disk spool: batches the server has not taken yet, kept across restarts.

    spool_dir/
      slot-0/           one slot per live client process (an exclusive flock on slot-N/lock)
        lock
        cursor          where delivery stands: segment number and offset (crc-checked)
        000000000007.seg  append-only segments of framed records (see framing.py)
      slot-1/ ...

Each record is one batch, written whole and fsync'd before the batch counts as spooled.
Delivery reads records in order and moves the cursor past each one the server accepted;
fully delivered segments are deleted. The cursor is written without fsync: if a crash
loses its last move, the batches after the older position are sent again, and the server
answers a resent event (same id, same content) with its original receipt.

A client takes the lowest free slot, so a restarted process finds its own spool again;
it also adopts any other slot whose owner is gone and drains it first. Only the worker
thread touches a Spool.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from auditkeep.client.framing import frame, read_frame
from auditkeep.errors import AuditkeepError
from auditkeep.fsutil import fsync_dir

__all__ = ["Position", "Spool", "SpoolBatch", "SpoolLockedError", "SpoolRecord"]

log = logging.getLogger("auditkeep.client")

_CURSOR = struct.Struct("<QQI")
_SEGMENT_SUFFIX = ".seg"

Position = tuple[int, int, int]
"""(slot rank, segment number, offset): totally ordered in delivery order."""


class SpoolLockedError(AuditkeepError, RuntimeError):
    """No spool slot could be locked (should not happen: slots are created on demand)."""


class SpoolBatch(msgspec.Struct, frozen=True):
    """The payload of one record: a batch for one tenant (None: the key's tenant)."""

    tenant: str | None
    events: list[msgspec.Raw]


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(SpoolBatch).decode


@dataclass(frozen=True)
class SpoolRecord:
    """A batch read back from the spool, to be acknowledged once delivered."""

    tenant: str | None
    events: list[bytes]
    start: Position
    end: Position


@dataclass
class _Slot:
    path: Path
    lock_fd: int
    rank: int
    segments: list[int] = field(default_factory=list)
    sizes: dict[int, int] = field(default_factory=dict)
    cursor: tuple[int, int] = (0, 0)

    def seg_path(self, n: int) -> Path:
        return self.path / f"{n:012d}{_SEGMENT_SUFFIX}"

    def pending_bytes(self) -> int:
        total = sum(self.sizes.values())
        if self.segments and self.segments[0] == self.cursor[0]:
            total -= min(self.cursor[1], self.sizes[self.segments[0]])
        return total

    def empty(self) -> bool:
        return self.pending_bytes() == 0


def _try_lock(path: Path) -> int | None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _read_cursor(path: Path) -> tuple[int, int]:
    try:
        raw = (path / "cursor").read_bytes()
    except FileNotFoundError:
        return (0, 0)
    if len(raw) == _CURSOR.size:
        seg, off, crc = _CURSOR.unpack(raw)
        if zlib.crc32(raw[:16]) == crc:
            return (seg, off)
    log.warning("spool cursor in %s is damaged; batches there will be sent again", path)
    return (0, 0)


class Spool:
    """A bounded, crash-safe FIFO of batches in ``directory``."""

    def __init__(self, directory: str | os.PathLike[str], max_bytes: int, segment_bytes: int | None = None) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes or max(64 * 1024, min(16 << 20, max_bytes // 8))
        self.corrupt_bytes = 0  # damaged bytes skipped while reading
        self.spooled_events = 0  # events appended by this process
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._slots: list[_Slot] = []
        self._own = self._acquire()
        self._write_fd: int | None = None
        self._write_seg = 0
        self._read: tuple[_Slot, int, int] | None = None  # slot, segment, fd
        self._peeked: SpoolRecord | None = None
        self._closed = False

    # -- opening ------------------------------------------------------------------------------

    def _acquire(self) -> _Slot:
        taken: list[tuple[int, Path, int]] = []
        own: tuple[int, Path, int] | None = None
        existing = sorted(
            (int(p.name[5:]), p) for p in self.directory.glob("slot-*") if p.name[5:].isdigit()
        )
        for n, path in existing:
            fd = _try_lock(path)
            if fd is None:
                continue
            if own is None:
                own = (n, path, fd)
            else:
                taken.append((n, path, fd))
        n = 0
        used = {m for m, _ in existing}
        while own is None:
            if n not in used:
                fd = _try_lock(self.directory / f"slot-{n}")
                if fd is not None:
                    own = (n, self.directory / f"slot-{n}", fd)
            n += 1
            if n > 4096:
                raise SpoolLockedError(f"no free spool slot in {self.directory}")
        # Orphans drain before our own slot: they hold older batches.
        for rank, (_, path, fd) in enumerate(taken):
            slot = self._load(path, fd, rank)
            if slot.empty():
                self._discard(slot)
            else:
                self._slots.append(slot)
                log.info("adopting spooled batches from %s", path)
        mine = self._load(own[1], own[2], len(taken))
        self._slots.append(mine)
        return mine

    def _load(self, path: Path, fd: int, rank: int) -> _Slot:
        slot = _Slot(path, fd, rank, cursor=_read_cursor(path))
        for p in path.glob(f"*{_SEGMENT_SUFFIX}"):
            stem = p.name[: -len(_SEGMENT_SUFFIX)]
            if not stem.isdigit():
                continue
            n = int(stem)
            if n < slot.cursor[0]:
                p.unlink(missing_ok=True)  # delivered; its deletion was interrupted
                continue
            slot.segments.append(n)
            slot.sizes[n] = p.stat().st_size
        slot.segments.sort()
        if slot.segments and slot.cursor[0] < slot.segments[0]:
            slot.cursor = (slot.segments[0], 0)
        return slot

    def _discard(self, slot: _Slot) -> None:
        for n in slot.segments:
            slot.seg_path(n).unlink(missing_ok=True)
        os.close(slot.lock_fd)

    # -- state --------------------------------------------------------------------------------

    @property
    def pending_bytes(self) -> int:
        return sum(s.pending_bytes() for s in self._slots)

    def empty(self) -> bool:
        return all(s.empty() for s in self._slots)

    def tail(self) -> Position:
        """The position just after the last record appended (what a flush waits for)."""
        own = self._own
        if own.segments:
            last = own.segments[-1]
            return (own.rank, last, own.sizes[last])
        return (own.rank, *own.cursor)

    def reached(self, pos: Position) -> bool:
        """Whether every record before ``pos`` has been acknowledged."""
        if self.empty():
            return True
        for slot in self._slots:
            if not slot.empty():
                return (slot.rank, *slot.cursor) >= pos
        return True

    # -- writing ------------------------------------------------------------------------------

    def append(self, tenant: str | None, events: list[bytes]) -> bool:
        """Write one batch durably; False when it does not fit (the spool is full or the disk
        refuses), in which case nothing was written."""
        if self._closed:
            return False
        data = frame(_encode(SpoolBatch(tenant, [msgspec.Raw(e) for e in events])))
        if self.pending_bytes + len(data) > self.max_bytes:
            return False
        own = self._own
        try:
            fd = self._writer(len(data))
            before = own.sizes[self._write_seg]
            try:
                _write_all(fd, data)
                os.fdatasync(fd)
            except OSError:
                # Leave no half record behind: the next append would follow it.
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, before)
                raise
        except OSError as exc:
            log.warning("cannot write to the spool in %s: %s", own.path, exc)
            return False
        own.sizes[self._write_seg] = before + len(data)
        self.spooled_events += len(events)
        return True

    def _writer(self, need: int) -> int:
        own = self._own
        if self._write_fd is not None and own.sizes[self._write_seg] + need <= self.segment_bytes:
            return self._write_fd
        if self._write_fd is not None and own.sizes[self._write_seg] == 0:
            return self._write_fd  # an oversized batch still gets a segment of its own
        self._close_writer()
        n = max([*own.segments, own.cursor[0] - 1, 0]) + 1
        fd = os.open(own.seg_path(n), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        fsync_dir(own.path)  # the new file's name must survive a crash too
        own.segments.append(n)
        own.sizes[n] = 0
        self._write_fd, self._write_seg = fd, n
        return fd

    def _close_writer(self) -> None:
        if self._write_fd is not None:
            os.close(self._write_fd)
            self._write_fd = None

    # -- reading ------------------------------------------------------------------------------

    def peek(self) -> SpoolRecord | None:
        """The oldest batch not yet acknowledged (the same one until :meth:`ack`)."""
        if self._peeked is not None:
            return self._peeked
        for slot in self._slots:
            while slot.segments:
                seg = slot.segments[0]
                if slot.cursor[0] != seg:
                    slot.cursor = (seg, 0)
                fd = self._reader(slot, seg)
                size = slot.sizes[seg]
                got = read_frame(fd, slot.cursor[1], size)
                if got is None:
                    if slot.cursor[1] < size:
                        self._skipped(slot, seg, size - slot.cursor[1])
                    if slot is self._own and seg == self._write_seg:
                        break  # caught up with the writer
                    self._finish_segment(slot, seg)
                    continue
                if got.skipped:
                    self._skipped(slot, seg, got.skipped)
                try:
                    batch = _decode(got.payload)
                except msgspec.DecodeError:
                    # A good checksum over a bad payload: written by something else. Skip it.
                    self._skipped(slot, seg, got.end - got.start)
                    slot.cursor = (seg, got.end)
                    continue
                self._peeked = SpoolRecord(
                    batch.tenant,
                    [bytes(e) for e in batch.events],
                    (slot.rank, seg, got.start),
                    (slot.rank, seg, got.end),
                )
                return self._peeked
        return None

    def ack(self, record: SpoolRecord) -> None:
        """Mark ``record`` delivered: move the cursor past it, delete what is used up."""
        rank, seg, end = record.end
        slot = next(s for s in self._slots if s.rank == rank)
        slot.cursor = (seg, end)
        self._peeked = None
        if end >= slot.sizes.get(seg, 0) and not (slot is self._own and seg == self._write_seg):
            self._finish_segment(slot, seg)
        elif slot is self._own and self._own.empty():
            # Caught up: start the next batch in a fresh segment and drop this one.
            self._close_writer()
            self._finish_segment(slot, seg)
        else:
            self._save_cursor(slot)
        if slot is not self._own and slot.empty():
            self._slots.remove(slot)
            self._discard(slot)

    def _finish_segment(self, slot: _Slot, seg: int) -> None:
        if self._read is not None and self._read[0] is slot and self._read[1] == seg:
            os.close(self._read[2])
            self._read = None
        slot.segments.remove(seg)
        slot.sizes.pop(seg, None)
        slot.cursor = (slot.segments[0], 0) if slot.segments else (seg + 1, 0)
        self._save_cursor(slot)
        slot.seg_path(seg).unlink(missing_ok=True)

    def _save_cursor(self, slot: _Slot) -> None:
        seg, off = slot.cursor
        raw = struct.pack("<QQ", seg, off)
        tmp = slot.path / "cursor.tmp"
        tmp.write_bytes(raw + struct.pack("<I", zlib.crc32(raw)))
        os.replace(tmp, slot.path / "cursor")

    def _reader(self, slot: _Slot, seg: int) -> int:
        if self._read is not None and self._read[0] is slot and self._read[1] == seg:
            return self._read[2]
        if self._read is not None:
            os.close(self._read[2])
        fd = os.open(slot.seg_path(seg), os.O_RDONLY)
        self._read = (slot, seg, fd)
        return fd

    def _skipped(self, slot: _Slot, seg: int, n: int) -> None:
        self.corrupt_bytes += n
        log.warning("skipped %d damaged bytes in spool segment %s", n, slot.seg_path(seg))

    # -- closing ------------------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._close_writer()
        if self._read is not None:
            os.close(self._read[2])
            self._read = None
        for slot in self._slots:
            self._save_cursor(slot)
            os.close(slot.lock_fd)
        self._slots.clear()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
