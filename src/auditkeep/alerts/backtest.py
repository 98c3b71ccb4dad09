"""Running rules over events without keeping anything: ``auditkeep rules test`` (a file of
events) and ``auditkeep rules backtest`` (a tenant's stored history).

Time is the events' own: the engine is ticked with the event time as it passes each
``tick_every``, and once at ``end_ns``, so absence rules and end-of-window checks fire where
they would have fired live.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import msgspec

from auditkeep.alerts.engine import Engine
from auditkeep.alerts.model import Alert
from auditkeep.alerts.rules import Rule
from auditkeep.alerts.state import is_own_event
from auditkeep.alerts.timeutil import event_time_ns
from auditkeep.ledger.reader import LogReader

TICK_EVERY_NS = 60 * 1_000_000_000


def simulate(
    rules: Iterable[Rule],
    events: Iterable[tuple[str, int, dict[str, Any]]],
    *,
    end_ns: int | None = None,
    tick_every_ns: int = TICK_EVERY_NS,
) -> list[Alert]:
    """The alerts ``rules`` raise over ``(tenant, index, event)`` in log order."""
    engine = Engine(rules)
    out: list[Alert] = []
    next_tick: int | None = None
    for tenant, index, event in events:
        if is_own_event(str(event.get("action", ""))):
            continue
        out.extend(engine.process(tenant, index, event))
        t = event_time_ns(event)
        if t is None:
            continue
        if next_tick is None:
            next_tick = t + tick_every_ns
        elif t >= next_tick:
            out.extend(engine.tick(t))
            next_tick = t + tick_every_ns
    if end_ns is not None:
        out.extend(engine.tick(end_ns))
    return out


def first_index_since(ledger: LogReader, tenant: str, since_ns: int) -> int:
    """The first log index received at or after ``since_ns`` (received times never decrease
    within a log, so this is a binary search, not a scan)."""
    tid = ledger.tenant_id(tenant)
    lo, hi = 0, ledger.head(tenant).size
    while lo < hi:
        mid = (lo + hi) // 2
        entry = next(iter(ledger.store.entries(tid, mid, mid + 1)))
        if entry.received_ns < since_ns:
            lo = mid + 1
        else:
            hi = mid
    return lo


def stored_events(
    ledger: LogReader,
    tenant: str,
    start: int,
    end: int,
    *,
    until_ns: int | None = None,
    chunk: int = 2000,
    progress: Callable[[int], None] | None = None,
) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """A tenant's stored events from ``start`` to ``end`` as the runner sees them;
    ``progress`` is called with the number of entries read after each chunk."""
    pos = start
    while pos < end:
        stop = min(end, pos + chunk)
        # records() leaves out entries expired under retention: a chunk may come back short or empty
        records = ledger.records(pos, stop, tenant)
        for rec in records:
            if until_ns is not None and rec.event.received_at is not None:
                t = event_time_ns({"time": rec.event.received_at})
                if t is not None and t >= until_ns:
                    return
            yield tenant, rec.index, msgspec.to_builtins(rec.event)
        if progress is not None:
            progress(stop - pos)
        pos = stop
