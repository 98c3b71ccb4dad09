"""Sequence rules: step A (possibly N times) then B (then C…) by the same group within a
window, in log order.

Per group the evaluator keeps the most recent ``count`` hits of the first step (a sliding
run, so a long burst of failures keeps the freshest start) and the hits of the later steps
in order. An event counts for the step the group is waiting for before it counts as a new
first-step hit. The run expires when an event arrives more than ``window`` after the run's
first hit; a completed run fires and the group starts over.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from auditkeep.alerts.evaluators import (
    MAX_EVENT_IDS,
    Evaluator,
    EventCtx,
    Firing,
    GroupTable,
    group_getters,
    group_key_of,
)
from auditkeep.alerts.rules import Rule, SequenceSpec
from auditkeep.alerts.timeutil import format_duration

Entry = tuple[int, int, str]


class _Run:
    __slots__ = ("first", "later", "stage")

    def __init__(self, first_count: int) -> None:
        self.first: deque[Entry] = deque(maxlen=first_count)
        self.later: list[tuple[int, Entry]] = []  # (step number, entry)
        self.stage = 0


@dataclass
class SeqStep:
    test: Callable[[Any], bool]
    count: int
    name: str


class SequenceMachine:
    """The per-group step tracking shared by sequence rules and Sigma ordered correlations.

    ``feed`` takes which steps an event satisfies (a callable asked lazily) and returns the
    completed run's entries, or ``None``.
    """

    def __init__(self, steps: list[SeqStep], window_ns: int) -> None:
        self.steps = steps
        self.window_ns = window_ns
        self.table = GroupTable()

    def feed(self, tenant: str, key: str, entry: Entry, matches: Callable[[int], bool]) -> list[tuple[int, Entry]] | None:
        steps = self.steps
        existing = self.table.get((tenant, key))
        if existing is None and not matches(0):
            return None  # don't create state for groups that have not started
        run: _Run = self.table.touch((tenant, key), lambda: _Run(steps[0].count))
        t = entry[0]
        if run.stage >= 1 and run.first and t - run.first[0][0] > self.window_ns:
            self._expire(run, t)
        if run.stage >= 1 and matches(run.stage):
            s = run.stage
            run.later.append((s, entry))
            if sum(1 for n, _ in run.later if n == s) >= steps[s].count:
                run.stage += 1
                if run.stage == len(steps):
                    done = [(0, e) for e in run.first] + run.later
                    del self.table[(tenant, key)]
                    return done
            return None
        if matches(0):
            run.first.append(entry)
            while run.first and run.first[0][0] < t - self.window_ns:
                run.first.popleft()
            if len(run.first) >= steps[0].count:
                if run.stage == 0:
                    run.stage = 1
                elif run.later and run.later[0][1][1] < run.first[0][1]:
                    # the fresher start now lies after later steps: their order is lost
                    run.later.clear()
                    run.stage = 1
            else:
                run.stage = 0
                run.later.clear()
        return None

    def _expire(self, run: _Run, t: int) -> None:
        while run.first and run.first[0][0] < t - self.window_ns:
            run.first.popleft()
        run.later.clear()
        run.stage = 1 if len(run.first) >= self.steps[0].count else 0

    def prune(self, watermarks: dict[str, int]) -> None:
        for key in list(self.table):
            wm = watermarks.get(key[0])
            run = self.table[key]
            if wm is not None and (not run.first or run.first[-1][0] < wm - self.window_ns):
                del self.table[key]

    def dump(self) -> list[Any]:
        return [
            [tenant, key, run.stage, [list(e) for e in run.first], [[n, *e] for n, e in run.later]]
            for (tenant, key), run in self.table.items()
        ]

    def load(self, data: list[Any]) -> None:
        self.table.clear()
        for tenant, key, stage, first, later in data:
            run = _Run(self.steps[0].count)
            run.stage = int(stage)
            run.first.extend((int(a), int(b), str(c)) for a, b, c in first)
            run.later = [(int(n), (int(a), int(b), str(c))) for n, a, b, c in later]
            self.table[(tenant, key)] = run


class SequenceEvaluator(Evaluator):
    def __init__(self, rule: Rule, spec: SequenceSpec) -> None:
        super().__init__(rule)
        self.spec = spec
        self.machine = SequenceMachine(
            [SeqStep(s.condition.test, s.count, s.name) for s in spec.steps], spec.window_ns
        )
        self.groups = group_getters(rule.group_by)

    def on_event(self, ctx: EventCtx) -> list[Firing]:
        ev = ctx.event
        steps = self.machine.steps
        cache: dict[int, bool] = {}

        def matches(i: int) -> bool:
            if i not in cache:
                cache[i] = steps[i].test(ev)
            return cache[i]

        key, values = group_key_of(self.groups, ev)
        done = self.machine.feed(ctx.tenant, key, (ctx.time_ns, ctx.index, ctx.event_id), matches)
        if done is None:
            return []
        parts = []
        for i, st in enumerate(self.spec.steps):
            n = sum(1 for s, _ in done if s == i)
            parts.append(f"{st.name} x{n}" if n > 1 else st.name)
        span = done[-1][1][0] - min(e[0] for _, e in done)
        who = f" for {key}" if key else ""
        text = (
            f"Sequence {' → '.join(parts)}{who} completed within "
            f"{format_duration(max(span, 1_000_000))} (window {format_duration(self.spec.window_ns)})."
        )
        return [
            Firing(
                tenant=ctx.tenant,
                group_key=key,
                trigger_index=ctx.index,
                first_index=min(e[1] for _, e in done),
                event_ids=[e[2] for _, e in done][-MAX_EVENT_IDS:],
                count=len(done),
                time_ns=ctx.time_ns,
                explanation=text,
                fields=dict(values),
            )
        ]

    def prune(self, watermarks: dict[str, int]) -> None:
        self.machine.prune(watermarks)

    def dump(self) -> Any:
        return self.machine.dump()

    def load(self, data: Any) -> None:
        self.machine.load(data)
