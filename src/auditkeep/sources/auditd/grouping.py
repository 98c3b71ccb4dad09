"""Group audit records into events by ``msg=audit(TIME:SERIAL)``, and count lost events.

The records of one event share their timestamp and serial; they may arrive out of order and
interleaved with other events' records. An event is complete when:

* a ``type=EOE`` record for it arrives (the kernel's end-of-event marker);
* it holds its SYSCALL record, its ``PROCTITLE`` record and as many PATH records as the
  SYSCALL's ``items=`` announces: the kernel writes PROCTITLE last, and auditd does not
  write EOE records to its log file. Records arriving in another order (PROCTITLE, PATH,
  then SYSCALL) wait for each other;
* it is one of auditd's own records (DAEMON_*), which share no serial with the kernel's;
* a serial more than ``window`` past its own has been seen from the same node;
* it has waited ``timeout`` seconds since its first record;
* more than ``max_pending`` events are open (the oldest goes first), or the input ends.

A user-space message (USER_*, CRED_*, SERVICE_START...) is usually an event of one record,
but not always: sent while an audited syscall of the sender is in progress, it shares that
syscall's serial with the SYSCALL, SOCKADDR and PROCTITLE records that follow it. Nothing in
the message tells which, so it is not closed on arrival: it waits like any other event.

Serials are per node (``node=`` prefix) and wrap at 2**32. A serial that never arrives
while later ones do is a lost event (the kernel's backlog overflowed, or a rate limit): it
is counted once it falls ``window`` serials behind, or when the input ends. A large jump
backwards or forwards is a restart of the serial counter (a reboot), not a loss.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from auditkeep.sources.auditd.parser import SOURCE, AuditRecord
from auditkeep.sources.auditd.tables import OWN_SERIAL_PREFIX
from auditkeep.sources.base import SourceError

_MASK = 0xFFFFFFFF
_RESET_JUMP = 1 << 24  # a larger jump between serials is a counter restart, not a loss

GroupKey = tuple[str, int, int, str]
"""(node, serial, seconds, fraction): the timestamp tells apart serials reused after a reboot."""


@dataclass(slots=True)
class RecordGroup:
    """The records of one event, in arrival order."""

    node: str | None
    serial: int
    sec: int
    frac: str
    records: list[AuditRecord]
    opened: float = field(default=0.0)
    # What the end-of-event rule needs, kept as records arrive.
    items: int = field(default=-1)  # the SYSCALL's items= (-1: no SYSCALL record yet)
    paths: int = field(default=0)
    proctitle: bool = field(default=False)

    @property
    def time_ns(self) -> int:
        return self.sec * 1_000_000_000 + int(self.frac.ljust(9, "0")[:9])

    def note(self, record: AuditRecord) -> None:
        """Count ``record`` (already in ``records``) towards the end-of-event rule."""
        rtype = record.type
        if rtype == "PATH":
            self.paths += 1
        elif rtype == "PROCTITLE":
            self.proctitle = True
        elif rtype == "SYSCALL" and self.items < 0:
            items = record.fields.get("items", "")
            self.items = int(items) if items.isdigit() and len(items) < 6 else 0

    @property
    def complete(self) -> bool:
        """The SYSCALL, the PROCTITLE and every PATH the SYSCALL announced are in."""
        return self.proctitle and 0 <= self.items <= self.paths


class _Serials:
    """Gap detection for one node's serial stream (unwrapped to a growing integer)."""

    __slots__ = ("lost", "missing", "top", "window")

    def __init__(self, window: int) -> None:
        self.window = window
        self.top: int | None = None  # highest serial seen, unwrapped
        self.missing: list[list[int]] = []  # [lo, hi] ranges not seen yet, ascending
        self.lost = 0

    def observe(self, serial: int) -> None:
        top = self.top
        if top is None:
            self.top = serial
            return
        delta = (serial - top) & _MASK
        if delta == 0:
            return
        if delta < (1 << 31):
            if delta > _RESET_JUMP:
                self._restart(serial)
                return
            if delta > 1:
                self.missing.append([top + 1, top + delta - 1])
            self.top = top + delta
            self._settle()
            return
        back = (1 << 32) - delta
        if back > max(self.window, 1024) * 4:
            self._restart(serial)
            return
        self._fill(top - back)

    def _fill(self, u: int) -> None:
        for i, (lo, hi) in enumerate(self.missing):
            if lo <= u <= hi:
                if lo == hi:
                    del self.missing[i]
                elif u == lo:
                    self.missing[i][0] = u + 1
                elif u == hi:
                    self.missing[i][1] = u - 1
                else:
                    self.missing[i : i + 1] = [[lo, u - 1], [u + 1, hi]]
                return

    def _settle(self) -> None:
        assert self.top is not None
        horizon = self.top - self.window
        while self.missing and self.missing[0][1] < horizon:
            lo, hi = self.missing.pop(0)
            self.lost += hi - lo + 1
        if self.missing and self.missing[0][0] < horizon:
            self.lost += horizon - self.missing[0][0]
            self.missing[0][0] = horizon

    def _restart(self, serial: int) -> None:
        self.finish()
        self.top = serial

    def finish(self) -> None:
        for lo, hi in self.missing:
            self.lost += hi - lo + 1
        self.missing = []


Output = list[RecordGroup | SourceError]


class Reassembler:
    """Turns a stream of :class:`AuditRecord` into complete :class:`RecordGroup` events."""

    def __init__(
        self,
        window: int = 32,
        timeout: float = 2.0,
        max_pending: int = 4096,
        closed_memory: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if window < 1 or max_pending < 1:
            raise ValueError("window and max_pending must be at least 1")
        self.window = window
        self.timeout = timeout
        self.max_pending = max_pending
        self.clock = clock
        self._pending: OrderedDict[GroupKey, RecordGroup] = OrderedDict()
        self._closed: set[GroupKey] = set()
        self._closed_order: deque[GroupKey] = deque()
        self._closed_memory = closed_memory
        self._serials: dict[str, _Serials] = {}
        self._top: dict[str, int] = {}  # newest raw serial per node
        self._lost_taken = 0

    # -- input ---------------------------------------------------------------------------

    def push(self, record: AuditRecord) -> Output:
        """Add one record; return the events it completed (and a SourceError for a record
        that arrived after its event was already closed)."""
        out: Output = []
        node = record.node or ""
        key = (node, record.serial, record.sec, record.frac)
        rtype = record.type
        group = self._pending.get(key)
        if rtype == "EOE":
            if group is not None:
                self._emit(key, out)
            # An EOE with nothing open carries no data: nothing to keep.
            self._evict(node, out)
            return out
        if group is None:
            if key in self._closed:
                out.append(
                    SourceError(
                        SOURCE,
                        f"record of event {record.sec}.{record.frac}:{record.serial} arrived after"
                        " the event was closed",
                        record.raw,
                    )
                )
                return out
            group = RecordGroup(
                record.node, record.serial, record.sec, record.frac, [record], self.clock()
            )
            self._pending[key] = group
            if rtype.startswith(OWN_SERIAL_PREFIX):
                self._emit(key, out)  # auditd's own record: alone by construction
                self._evict(node, out)
                return out
            self._track(node, record.serial)
        else:
            group.records.append(record)
        group.note(record)
        if group.complete:
            self._emit(key, out)
        self._evict(node, out)
        return out

    def flush_expired(self) -> list[RecordGroup]:
        """Close the events that waited longer than ``timeout``; call it when input is idle."""
        out: Output = []
        deadline = self.clock() - self.timeout
        for key in [k for k, g in self._pending.items() if g.opened <= deadline]:
            self._emit(key, out)
        return [g for g in out if isinstance(g, RecordGroup)]

    def close(self) -> list[RecordGroup]:
        """The input ended: close every open event and count every serial still missing."""
        out: Output = []
        for key in list(self._pending):
            self._emit(key, out)
        for s in self._serials.values():
            s.finish()
        return [g for g in out if isinstance(g, RecordGroup)]

    # -- state ---------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """How many events are open."""
        return len(self._pending)

    def oldest_open(self) -> RecordGroup | None:
        """The open event whose first record was read first (None when nothing is open)."""
        for g in self._pending.values():
            return g
        return None

    @property
    def lost(self) -> int:
        """Events lost so far (gaps in the serials), in total."""
        return sum(s.lost for s in self._serials.values())

    def take_lost(self) -> int:
        """Events lost since the last call: the count for one ``source.dropped`` event."""
        total = self.lost
        n = total - self._lost_taken
        self._lost_taken = total
        return n

    def serial_state(self) -> dict[str, list[Any]]:
        """Gap detection's state per node, to carry it across a restart (JSON-ready)."""
        return {
            n: [s.top, [list(r) for r in s.missing]]
            for n, s in self._serials.items()
            if s.top is not None
        }

    def restore_serial_state(self, state: dict[str, list[Any]]) -> None:
        for node, (top, missing) in state.items():
            s = self._serials.setdefault(node, _Serials(self.window))
            if s.top is None:
                s.top = int(top)
                s.missing = [[int(lo), int(hi)] for lo, hi in missing]
                self._top.setdefault(node, int(top) & _MASK)

    # -- internals -----------------------------------------------------------------------

    def _track(self, node: str, serial: int) -> None:
        s = self._serials.get(node)
        if s is None:
            s = self._serials[node] = _Serials(self.window)
        s.observe(serial)
        top = self._top.get(node)
        if top is None or 0 < ((serial - top) & _MASK) < (1 << 31):
            self._top[node] = serial

    def _emit(self, key: GroupKey, out: Output) -> None:
        group = self._pending.pop(key)
        out.append(group)
        self._closed.add(key)
        self._closed_order.append(key)
        if len(self._closed_order) > self._closed_memory:
            self._closed.discard(self._closed_order.popleft())

    def _evict(self, node: str, out: Output) -> None:
        # Oldest first: past the serial window, past the timeout, or over the size bound.
        pending = self._pending
        if not pending:
            return
        top = self._top.get(node)
        deadline = self.clock() - self.timeout
        window = self.window
        while pending:
            key, group = next(iter(pending.items()))
            if len(pending) > self.max_pending or group.opened <= deadline:
                self._emit(key, out)
                continue
            gtop = self._top.get(key[0]) if key[0] != node else top
            if gtop is not None:
                ahead = (gtop - group.serial) & _MASK
                if window < ahead < (1 << 31):
                    self._emit(key, out)
                    continue
            break
