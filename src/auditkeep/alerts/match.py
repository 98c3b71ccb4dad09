"""Match rules: every event that satisfies the condition raises an alert (subject to the
rule's throttle)."""

from __future__ import annotations

from auditkeep.alerts.conditions import Condition
from auditkeep.alerts.evaluators import (
    Evaluator,
    EventCtx,
    Firing,
    describe_event,
    group_getters,
    group_key_of,
    native_index,
)
from auditkeep.alerts.fields import MISSING, compile_path
from auditkeep.alerts.rules import Rule


class MatchEvaluator(Evaluator):
    def __init__(self, rule: Rule, condition: Condition) -> None:
        super().__init__(rule)
        self.condition = condition
        self.test = condition.test
        self.index = native_index(condition.hint)
        self.groups = group_getters(rule.group_by)
        self.shown = [(p, compile_path(p)) for p in condition.fields]

    def on_event(self, ctx: EventCtx) -> list[Firing]:
        ev = ctx.event
        if not self.test(ev):
            return []
        key, values = group_key_of(self.groups, ev)
        fields = dict(values)
        for path, get in self.shown:
            v = get(ev)
            if v is not MISSING:
                fields[path] = v
        return [
            Firing(
                tenant=ctx.tenant,
                group_key=key,
                trigger_index=ctx.index,
                first_index=ctx.index,
                event_ids=[ctx.event_id],
                count=1,
                time_ns=ctx.time_ns,
                explanation=f"{describe_event(ev)}, matching {self.condition.text}.",
                fields=fields,
            )
        ]
