"""Threshold rules: a count (or a distinct count of a field) over a sliding window of event
time, per group.

A group fires once when its count reaches the threshold and stays quiet until the count
in its window falls below the threshold again (the window "resets"); only then can it fire
again. So a sustained burst raises one alert, not one per event.

Memory per group is bounded by the threshold: the count is at least N exactly when the N
most recent matching events lie inside the window, so only those N are kept (for distinct
counts, the N most recently seen distinct values with their last time).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from auditkeep.alerts.evaluators import (
    MAX_EVENT_IDS,
    Evaluator,
    EventCtx,
    Firing,
    GroupTable,
    group_getters,
    group_key_of,
    key_text,
    native_index,
)
from auditkeep.alerts.fields import MISSING, compile_path, scalars
from auditkeep.alerts.rules import Rule, ThresholdSpec
from auditkeep.alerts.timeutil import format_duration

Entry = tuple[int, int, str]  # (time ns, log index, event id)


class _Group:
    __slots__ = ("entries", "fired")

    def __init__(self) -> None:
        self.fired = False
        # count mode: deque of Entry; distinct mode: dict value -> Entry (ordered by last seen)
        self.entries: Any = None


class WindowCounter:
    """The sliding-window counting shared by threshold rules and Sigma event/value counts."""

    def __init__(self, count: int, window_ns: int, distinct: bool) -> None:
        self.count = count
        self.window_ns = window_ns
        self.distinct = distinct
        self.table = GroupTable()

    def add(self, tenant: str, key: str, entry: Entry, values: list[str] | None = None) -> list[Entry] | None:
        """Record one matching event; the entries in the window when the group crosses the
        threshold (at most ``count`` of them), else ``None``."""
        g: _Group = self.table.touch((tenant, key), _Group)
        t = entry[0]
        horizon = t - self.window_ns
        if self.distinct:
            d: dict[str, Entry] = g.entries if g.entries is not None else {}
            g.entries = d
            for v in values or ():
                d.pop(v, None)
                d[v] = entry
                if len(d) > self.count:
                    del d[next(iter(d))]
            while d:
                first = next(iter(d))
                if d[first][0] >= horizon:
                    break
                del d[first]
            n = len(d)
            current = list(d.values())
        else:
            dq: deque[Entry] = g.entries if g.entries is not None else deque(maxlen=self.count)
            g.entries = dq
            dq.append(entry)
            while dq and dq[0][0] < horizon:
                dq.popleft()
            n = len(dq)
            current = list(dq)
        if n < self.count:
            g.fired = False
            return None
        if g.fired:
            return None
        g.fired = True
        return current

    def prune(self, watermarks: dict[str, int]) -> None:
        for key in list(self.table):
            wm = watermarks.get(key[0])
            if wm is None:
                continue
            g = self.table[key]
            entries = list(g.entries.values()) if isinstance(g.entries, dict) else list(g.entries or ())
            if not entries or max(e[0] for e in entries) < wm - self.window_ns:
                del self.table[key]

    def dump(self) -> list[Any]:
        out: list[Any] = []
        for (tenant, key), g in self.table.items():
            if isinstance(g.entries, dict):
                entries: Any = [[v, *e] for v, e in g.entries.items()]
            else:
                entries = [list(e) for e in (g.entries or ())]
            out.append([tenant, key, g.fired, entries])
        return out

    def load(self, data: list[Any]) -> None:
        self.table.clear()
        for tenant, key, fired, entries in data:
            g = _Group()
            g.fired = bool(fired)
            if self.distinct:
                g.entries = {e[0]: (int(e[1]), int(e[2]), str(e[3])) for e in entries}
            else:
                g.entries = deque(((int(e[0]), int(e[1]), str(e[2])) for e in entries), maxlen=self.count)
            self.table[(tenant, key)] = g


class ThresholdEvaluator(Evaluator):
    def __init__(self, rule: Rule, spec: ThresholdSpec) -> None:
        super().__init__(rule)
        self.spec = spec
        self.test = spec.condition.test
        self.index = native_index(spec.condition.hint)
        self.groups = group_getters(rule.group_by)
        self.distinct_get = compile_path(spec.distinct) if spec.distinct else None
        self.counter = WindowCounter(spec.count, spec.window_ns, spec.distinct is not None)

    def on_event(self, ctx: EventCtx) -> list[Firing]:
        ev = ctx.event
        if not self.test(ev):
            return []
        values: list[str] | None = None
        if self.distinct_get is not None:
            raw = self.distinct_get(ev)
            if raw is MISSING or raw is None:
                return []
            values = [key_text(v) for v in scalars(raw)]
            if not values:
                return []
        key, gvalues = group_key_of(self.groups, ev)
        hit = self.counter.add(ctx.tenant, key, (ctx.time_ns, ctx.index, ctx.event_id), values)
        if hit is None:
            return []
        spec = self.spec
        who = f" for {key}" if key else ""
        if spec.distinct:
            what = f"{len(hit)} distinct values of {spec.distinct}"
            shown = [v for v in (self.counter.table[(ctx.tenant, key)].entries or {})][:10]
            fields: dict[str, Any] = {**gvalues, spec.distinct: shown}
        else:
            what = f"{len(hit)} matching events"
            fields = dict(gvalues)
        first = min(e[1] for e in hit)
        text = (
            f"{what}{who} within {format_duration(spec.window_ns)} "
            f"(threshold {spec.count}; matching {spec.condition.text})."
        )
        return [
            Firing(
                tenant=ctx.tenant,
                group_key=key,
                trigger_index=ctx.index,
                first_index=first,
                event_ids=[e[2] for e in sorted(hit, key=lambda e: e[1])][-MAX_EVENT_IDS:],
                count=len(hit),
                time_ns=ctx.time_ns,
                explanation=text[0].upper() + text[1:],
                fields=fields,
            )
        ]

    def prune(self, watermarks: dict[str, int]) -> None:
        self.counter.prune(watermarks)

    def dump(self) -> Any:
        return self.counter.dump()

    def load(self, data: Any) -> None:
        self.counter.load(data)
