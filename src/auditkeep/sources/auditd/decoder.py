"""Lines of audit.log in, Events (and SourceErrors) out: parse, group, map."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from auditkeep.model import DEFAULT_LIMITS, Event, Limits
from auditkeep.sources.auditd.grouping import Reassembler, RecordGroup
from auditkeep.sources.auditd.mapping import map_group
from auditkeep.sources.auditd.parser import MAX_LINE_BYTES, parse_line
from auditkeep.sources.auditd.users import UserDirectory
from auditkeep.sources.base import SourceError

Item = Event | SourceError


class AuditdDecoder:
    """Parse, group and map audit.log lines, one line at a time.

    ``window``, ``timeout`` and ``max_pending`` are the grouping rules (see
    :mod:`.grouping`); ``host`` names the machine when lines carry no ``node=``; ``users``
    resolves uids to names (None: no names). ``validate`` runs each event through
    :func:`auditkeep.model.validate_event` (see :func:`.mapping.map_group`).
    """

    def __init__(
        self,
        *,
        host: str | None = None,
        users: UserDirectory | None = None,
        window: int = 32,
        timeout: float = 2.0,
        max_pending: int = 4096,
        limits: Limits = DEFAULT_LIMITS,
        max_line_bytes: int = MAX_LINE_BYTES,
        validate: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.validate = validate
        self.users = users
        self.limits = limits
        self.max_line_bytes = max_line_bytes
        self.reassembler = Reassembler(window, timeout, max_pending, clock=clock)

    def feed(self, line: bytes) -> list[Item]:
        """One line (with or without its newline); the events it completed."""
        try:
            record = parse_line(line, self.max_line_bytes)
        except SourceError as err:
            return [err]
        return self._map(self.reassembler.push(record))

    def flush_expired(self) -> list[Item]:
        """Events that waited past the timeout; call when the input is idle."""
        return self._map(self.reassembler.flush_expired())

    def close(self) -> list[Item]:
        """The input ended: every open event."""
        return self._map(self.reassembler.close())

    def take_lost(self) -> int:
        """Serials missing since the last call: events the kernel lost, when the input is
        a live log read from where it was left (see :func:`decode_log` for files)."""
        return self.reassembler.take_lost()

    def map(self, group: RecordGroup) -> Event:
        return map_group(
            group, host=self.host, users=self.users, limits=self.limits, validate=self.validate
        )

    def _map(self, items: Iterable[RecordGroup | SourceError]) -> list[Item]:
        out: list[Item] = []
        for it in items:
            if isinstance(it, SourceError):
                out.append(it)
                continue
            try:
                out.append(self.map(it))
            except SourceError as err:
                out.append(err)
        return out


@dataclass
class DecodedLog:
    """The result of decoding a whole log: events, quarantined records, and ``gaps``: the
    serials missing between the file's events."""

    events: list[Event] = field(default_factory=list)
    errors: list[SourceError] = field(default_factory=list)
    gaps: int = 0


def decode_log(lines: Iterable[bytes], decoder: AuditdDecoder | None = None) -> DecodedLog:
    """Decode a complete log (an open binary file, or any iterable of lines); blank lines
    are skipped. ``decoder`` carries the options (a default one otherwise).

    Serials missing from a file are counted as ``gaps``, not as lost events: a file may be
    an excerpt (a search result, the lines of one host or one key), and its gaps say
    nothing of what the kernel lost. Only a live log followed from where it was left
    (:class:`.follower.AuditdFollower`) reports lost events.
    """
    dec = decoder if decoder is not None else AuditdDecoder()
    out = DecodedLog()

    def take(items: list[Item]) -> None:
        for it in items:
            if isinstance(it, SourceError):
                out.errors.append(it)
            else:
                out.events.append(it)

    for line in lines:
        if line.strip():
            take(dec.feed(line))
    take(dec.close())
    out.gaps = dec.take_lost()
    return out
