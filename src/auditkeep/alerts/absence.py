"""Absence rules: a group (say, a host) that stops sending matching events for ``after``
raises one alert; it re-arms when its events come back.

The last-seen time is the event's own time, so the state is a function of the log alone;
the clock only enters through :meth:`AbsenceEvaluator.on_tick`. A group is known once it
has sent one matching event: silence from a host that never spoke cannot be told apart from
a host that does not exist.
"""

from __future__ import annotations

from typing import Any

from auditkeep.alerts.evaluators import (
    Evaluator,
    EventCtx,
    Firing,
    GroupTable,
    group_getters,
    group_key_of,
    native_index,
)
from auditkeep.alerts.rules import AbsenceSpec, Rule
from auditkeep.alerts.timeutil import format_duration
from auditkeep.model.timefmt import format_rfc3339


class _Seen:
    __slots__ = ("event_id", "fields", "fired", "index", "time")

    def __init__(self) -> None:
        self.time = 0
        self.index = -1
        self.event_id = ""
        self.fired = False
        self.fields: dict[str, Any] = {}


class AbsenceEvaluator(Evaluator):
    def __init__(self, rule: Rule, spec: AbsenceSpec) -> None:
        super().__init__(rule)
        self.spec = spec
        self.test = spec.condition.test
        self.index = native_index(spec.condition.hint)
        self.groups = group_getters(rule.group_by)
        self.table = GroupTable()

    def on_event(self, ctx: EventCtx) -> list[Firing]:
        if not self.test(ctx.event):
            return []
        key, values = group_key_of(self.groups, ctx.event)
        seen: _Seen = self.table.touch((ctx.tenant, key), _Seen)
        if ctx.time_ns >= seen.time:
            seen.time = ctx.time_ns
            seen.index = ctx.index
            seen.event_id = ctx.event_id
            seen.fields = values
        seen.fired = False  # events are back: re-arm
        return []

    def on_tick(self, now_ns: int) -> list[Firing]:
        out: list[Firing] = []
        after = self.spec.after_ns
        for (tenant, key), seen in self.table.items():
            if seen.fired or now_ns - seen.time <= after:
                continue
            seen.fired = True
            who = f"{key}" if key else "this tenant"
            out.append(
                Firing(
                    tenant=tenant,
                    group_key=key,
                    trigger_index=seen.index,
                    first_index=seen.index,
                    event_ids=[seen.event_id],
                    count=0,
                    time_ns=now_ns,
                    explanation=(
                        f"No event matching {self.spec.condition.text} from {who} for "
                        f"{format_duration((now_ns - seen.time) // 1_000_000_000 * 1_000_000_000 or 1_000_000_000)} "
                        f"(limit {format_duration(after)}); last one at {format_rfc3339(seen.time)}."
                    ),
                    fields=dict(seen.fields),
                )
            )
        return out

    def dump(self) -> Any:
        return [
            [t, k, s.time, s.index, s.event_id, s.fired, s.fields] for (t, k), s in self.table.items()
        ]

    def load(self, data: Any) -> None:
        self.table.clear()
        for t, k, time, index, eid, fired, fields in data:
            s = _Seen()
            s.time, s.index, s.event_id, s.fired, s.fields = int(time), int(index), str(eid), bool(fired), dict(fields)
            self.table[(t, k)] = s
