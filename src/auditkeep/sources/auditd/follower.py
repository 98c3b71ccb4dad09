"""Follow a live ``audit.log`` across rotation, resuming after a restart without loss or
duplicates.

:meth:`AuditdFollower.batches` yields batches of events; the caller delivers a batch, then
calls its ``commit``. Only then is the position saved (atomically), so a crash before the
commit delivers the batch again on restart, and a batch committed is never delivered
again. The saved position is the start of the oldest event still open (its records may be
spread over lines already read), together with the ids of events already delivered whose
records lie after that point: on restart those are read again and skipped.

Rotation: auditd renames ``audit.log`` to ``audit.log.1`` and opens a new ``audit.log``.
The follower notices the new inode, reads the old file to its end, then starts the new one.
A restart that finds its file rotated away looks for it among the rotated siblings
(``audit.log.*``, matched by inode) and reads on from there. A file that shrank below the
saved offset was truncated in place (copytruncate) and is read from its start.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from auditkeep.fsutil import fsync_dir
from auditkeep.model import DEFAULT_LIMITS, Event, Limits
from auditkeep.sources.auditd.grouping import Reassembler, RecordGroup
from auditkeep.sources.auditd.mapping import event_id, map_group
from auditkeep.sources.auditd.parser import MAX_LINE_BYTES, SOURCE, parse_line
from auditkeep.sources.auditd.users import UserDirectory
from auditkeep.sources.base import SourceError

STATE_VERSION = 1
_CHUNK = 1 << 16
_COMPRESSED = (".gz", ".xz", ".bz2", ".zst", ".lz4")

FileId = tuple[int, int]  # (device, inode)


@dataclass
class Batch:
    """Events read since the previous batch, and how to acknowledge them.

    Unpacks as ``events, commit = batch``; ``errors`` (records for quarantine) and ``lost``
    (events the kernel lost, for a ``source.dropped`` event) belong to the same batch and
    are acknowledged by the same ``commit``.
    """

    events: list[Event]
    commit: Callable[[], None]
    errors: list[SourceError] = field(default_factory=list)
    lost: int = 0

    def __iter__(self) -> Iterator[Any]:
        return iter((self.events, self.commit))


@dataclass
class _Mark:
    """Something delivered (an event id or an error's line) and where its last line is."""

    ticket: int  # read order of its last line in this run (-1: restored from the state)
    dev: int
    ino: int
    offset: int


class _Open:
    """One open file being read."""

    def __init__(self, path: Path, f: BinaryIO, fid: FileId, offset: int) -> None:
        self.path = path
        self.f = f
        self.fid = fid
        self.offset = offset  # of the next byte not yet split into a line
        self.buf = b""
        self.discarding = False  # inside an over-long line, up to its newline

    def close(self) -> None:
        self.f.close()


class AuditdFollower:
    """Read ``path`` (an audit.log) from the position saved in ``state_path``.

    ``batch_size`` bounds the events in a batch; an idle file yields what it has after
    ``poll_interval``. ``host`` names the machine for lines without ``node=`` (default: this
    host's name); ``users`` resolves uids (default: /etc/passwd and /etc/group). The
    grouping options are :class:`.grouping.Reassembler`'s. ``start_at_end`` starts a file
    with no saved state at its end rather than its beginning. ``validate`` is
    :func:`.mapping.map_group`'s.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        state_path: str | os.PathLike[str],
        *,
        host: str | None = None,
        users: UserDirectory | None = None,
        batch_size: int = 500,
        poll_interval: float = 0.25,
        window: int = 32,
        timeout: float = 2.0,
        limits: Limits = DEFAULT_LIMITS,
        max_line_bytes: int = MAX_LINE_BYTES,
        start_at_end: bool = False,
        validate: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.state_path = Path(state_path)
        self.host = host if host is not None else socket.gethostname()
        self.users = users if users is not None else UserDirectory()
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.window = window
        self.timeout = timeout
        self.limits = limits
        self.max_line_bytes = max_line_bytes
        self.start_at_end = start_at_end
        self.validate = validate
        self.clock = clock
        self._stop = False

    def stop(self) -> None:
        """Ask a following :meth:`batches` to finish (from another thread or a callback)."""
        self._stop = True

    # -- the loop ------------------------------------------------------------------------

    def batches(self, follow: bool = True) -> Generator[Batch, None, None]:
        """Yield batches until :meth:`stop` (``follow``) or the end of the file (not
        ``follow``: then every open event is closed and delivered too)."""
        self._stop = False
        run = _Run(self)
        try:
            yield from run.loop(follow)
        finally:
            run.close()

    # -- state ---------------------------------------------------------------------------

    def load_state(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.state_path.read_text("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"unreadable follower state {self.state_path}: {exc}") from None
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise RuntimeError(f"follower state {self.state_path} has an unknown version")
        return data

    def save_state(self, state: dict[str, Any]) -> None:
        """Write the state atomically: a temporary file, fsync, rename, fsync the directory."""
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        data = json.dumps(state, separators=(",", ":")).encode("utf-8")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.state_path)
        fsync_dir(self.state_path.parent)


class _Run:
    """The reading state of one :meth:`AuditdFollower.batches` call."""

    def __init__(self, fol: AuditdFollower) -> None:
        self.fol = fol
        self.reasm = Reassembler(fol.window, fol.timeout, clock=fol.clock)
        self.cur: _Open | None = None
        self.queue: list[Path] = []  # rotated files still to read before fol.path
        self.ticket = 0
        self.marks: dict[str, _Mark] = {}  # delivered in this run
        self.skip: dict[str, _Mark] = {}  # delivered before the restart, not yet re-read
        self.events: list[Event] = []
        self.errors: list[SourceError] = []
        self.batch_marks: dict[str, _Mark] = {}
        self.committed_upto = -1
        self.generation = 0
        self._restore()

    # -- setup ---------------------------------------------------------------------------

    def _restore(self) -> None:
        state = self.fol.load_state()
        if state is None:
            self._open_current(at_end=self.fol.start_at_end)
            return
        for mark, where in state.get("delivered", {}).items():
            self.skip[mark] = _Mark(-1, int(where[0]), int(where[1]), int(where[2]))
        self.reasm.restore_serial_state(state.get("serials", {}))
        fid: FileId = (int(state["dev"]), int(state["ino"]))
        offset = int(state["offset"])
        try:
            st = self.fol.path.stat()
        except FileNotFoundError:
            st = None
        if st is not None and (st.st_dev, st.st_ino) == fid:
            if st.st_size < offset:
                self._forget_skips(fid)  # truncated while stopped
                offset = 0
            self._open_current(offset=offset)
            return
        rotated = self._rotated_siblings()
        for i, p in enumerate(rotated):
            try:
                pst = p.stat()
            except OSError:
                continue
            if (pst.st_dev, pst.st_ino) == fid:
                f = p.open("rb")
                f.seek(offset if pst.st_size >= offset else 0)
                self.cur = _Open(p, f, fid, offset if pst.st_size >= offset else 0)
                self.queue = rotated[i + 1 :]
                return
        # The saved file is gone: whatever it still held cannot be read any more.
        self.skip.clear()
        self._open_current()

    def _rotated_siblings(self) -> list[Path]:
        """Rotated copies of the log (audit.log.1, audit.log.2...), oldest first."""
        base = self.fol.path
        out: list[tuple[float, Path]] = []
        try:
            entries = list(base.parent.iterdir())
        except OSError:
            return []
        for p in entries:
            if not p.name.startswith(base.name + ".") or p.name.endswith(_COMPRESSED):
                continue
            if p.name.endswith(".tmp"):
                continue
            try:
                st = p.stat()
            except OSError:
                continue
            if p.is_file():
                out.append((st.st_mtime, p))
        return [p for _, p in sorted(out, key=lambda t: (t[0], t[1].name))]

    def _open_current(self, offset: int = 0, at_end: bool = False) -> bool:
        try:
            f = self.fol.path.open("rb")
        except FileNotFoundError:
            return False
        st = os.fstat(f.fileno())
        if at_end:
            offset = st.st_size
        f.seek(offset)
        self.cur = _Open(self.fol.path, f, (st.st_dev, st.st_ino), offset)
        return True

    def close(self) -> None:
        if self.cur is not None:
            self.cur.close()
            self.cur = None

    # -- reading -------------------------------------------------------------------------

    def loop(self, follow: bool) -> Iterator[Batch]:
        fol = self.fol
        while True:
            got = self._read_some()
            if len(self.events) + len(self.errors) >= fol.batch_size:
                yield self._batch(self.reasm.take_lost())
                continue
            if got:
                continue
            # Idle: nothing more to read right now.
            if self._switch_file():
                continue
            if not follow:
                self._deliver(self.reasm.close())
                lost = self.reasm.take_lost()
                if self.events or self.errors or lost:
                    yield self._batch(lost)
                return
            self._deliver(self.reasm.flush_expired())
            lost = self.reasm.take_lost()
            if self.events or self.errors or lost:
                yield self._batch(lost)
                continue
            if fol._stop:
                return
            time.sleep(fol.poll_interval)
            if fol._stop:
                return

    def _read_some(self) -> bool:
        """Split buffered lines (reading more when none is complete) until the batch is
        full; False when there is nothing to do."""
        cur = self.cur
        if cur is None:
            return False
        data = cur.buf
        if data.find(b"\n") == -1:
            chunk = cur.f.read(_CHUNK)
            if not chunk:
                return False
            data += chunk
        full = self.fol.batch_size
        start = 0
        while len(self.events) + len(self.errors) < full:
            nl = data.find(b"\n", start)
            if nl == -1:
                break
            if cur.discarding:
                cur.discarding = False
            else:
                self._line(data[start:nl], cur.offset + start)
            start = nl + 1
        rest = data[start:]
        cur.offset += start
        overlong = len(rest) > self.fol.max_line_bytes and rest.find(b"\n") == -1
        if overlong and not cur.discarding:
            # An over-long line: quarantine its head, skip the rest up to its newline.
            self._line(rest, cur.offset)
            cur.discarding = True
        if cur.discarding and rest.find(b"\n") == -1:
            cur.offset += len(rest)
            rest = b""
        cur.buf = rest
        return True

    def _line(self, line: bytes, offset: int) -> None:
        cur = self.cur
        assert cur is not None
        self.ticket += 1
        pos = (cur.fid[0], cur.fid[1], offset, self.ticket)
        if not line.strip():
            return
        try:
            record = parse_line(line, self.fol.max_line_bytes)
        except SourceError as err:
            self._deliver([err], pos)
            return
        record.position = pos
        self._deliver(self.reasm.push(record), pos)

    def _switch_file(self) -> bool:
        """At the end of the current file: move to the next one if the log rotated."""
        cur = self.cur
        if cur is None:
            return self._open_current()
        if self.queue:
            nxt = self.queue.pop(0)
            self._finish_file(cur)
            try:
                f = nxt.open("rb")
            except OSError:
                self.cur = None
                return True
            st = os.fstat(f.fileno())
            self.cur = _Open(nxt, f, (st.st_dev, st.st_ino), 0)
            return True
        if cur.path != self.fol.path:
            # Done with the rotated files: on to the live log.
            self._finish_file(cur)
            self.cur = None
            return self._open_current()
        try:
            st = self.fol.path.stat()
        except FileNotFoundError:
            return False  # between a rename and the new file's creation
        if (st.st_dev, st.st_ino) != cur.fid:
            # Rotated: read what the old file still has, then take the new one.
            if cur.f.read(1):
                cur.f.seek(-1, os.SEEK_CUR)
                return True
            self._finish_file(cur)
            self.cur = None
            return self._open_current()
        if st.st_size < cur.offset + len(cur.buf):
            # Truncated in place (copytruncate): start again from the beginning. Marks of
            # what the old content held can no longer match anything.
            cur.f.seek(0)
            cur.offset = 0
            cur.buf = b""
            cur.discarding = False
            self._forget_skips(cur.fid)
            return True
        return False

    def _finish_file(self, cur: _Open) -> None:
        if cur.buf.strip() and not cur.discarding:
            self._line(cur.buf, cur.offset)  # a last line without its newline
        cur.close()
        self._forget_skips(cur.fid)

    def _forget_skips(self, fid: FileId) -> None:
        for k in [k for k, m in self.skip.items() if (m.dev, m.ino) == fid]:
            del self.skip[k]

    # -- output --------------------------------------------------------------------------

    def _deliver(
        self,
        items: Sequence[RecordGroup | SourceError],
        pos: tuple[int, int, int, int] | None = None,
    ) -> None:
        fol = self.fol
        for it in items:
            if isinstance(it, SourceError):
                where = pos if pos is not None else (0, 0, 0, self.ticket)
                mark = f"line:{where[0]}:{where[1]}:{where[2]}"
                if self._seen(mark, where):
                    continue
                self.errors.append(it)
                continue
            last = max(
                (r.position for r in it.records if r.position is not None),
                key=lambda p: p[3],
                default=(0, 0, 0, self.ticket),
            )
            mark = event_id(it.node or fol.host or "", it.sec, it.frac, it.serial)
            if self._seen(mark, last):
                continue
            try:
                self.events.append(
                    map_group(
                        it,
                        host=fol.host,
                        users=fol.users,
                        limits=fol.limits,
                        validate=fol.validate,
                    )
                )
            except SourceError as err:
                self.errors.append(err)

    def _seen(self, mark: str, where: tuple[int, int, int, int]) -> bool:
        """True if delivered before a restart; else note it as delivered in this batch."""
        if self.skip.pop(mark, None) is not None:
            return True
        self.batch_marks[mark] = _Mark(where[3], where[0], where[1], where[2])
        return False

    def _batch(self, lost: int) -> Batch:
        events, errors = self.events, self.errors
        self.events, self.errors = [], []
        self.marks.update(self.batch_marks)
        self.batch_marks = {}
        state = self._snapshot()
        self.generation += 1
        generation = self.generation

        def commit() -> None:
            # Committing a batch acknowledges every earlier one too; an older commit that
            # comes late must not move the position back.
            if generation <= self.committed_upto:
                return
            self.committed_upto = generation
            self.fol.save_state(state)

        return Batch(events, commit, errors, lost)

    def _snapshot(self) -> dict[str, Any]:
        oldest = self.reasm.oldest_open()
        cur = self.cur
        if oldest is not None and oldest.records[0].position is not None:
            dev, ino, offset, ticket = oldest.records[0].position
        elif cur is not None:
            dev, ino = cur.fid
            offset = cur.offset
            ticket = self.ticket + 1
        else:
            st = None
            with contextlib.suppress(OSError):
                st = self.fol.path.stat()
            dev, ino = (st.st_dev, st.st_ino) if st is not None else (0, 0)
            offset, ticket = 0, self.ticket + 1
        # Keep the delivered marks that a restart from this point would read again.
        for k in [k for k, m in self.marks.items() if m.ticket < ticket]:
            del self.marks[k]
        delivered = {k: [m.dev, m.ino, m.offset] for k, m in self.marks.items()}
        for k, m in self.skip.items():
            delivered.setdefault(k, [m.dev, m.ino, m.offset])
        return {
            "version": STATE_VERSION,
            "source": SOURCE,
            "path": str(self.fol.path),
            "dev": dev,
            "ino": ino,
            "offset": offset,
            "delivered": delivered,
            "serials": self.reasm.serial_state(),
        }
