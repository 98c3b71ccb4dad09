"""Sigma correlation rules: ``event_count``, ``value_count``, ``temporal`` and
``temporal_ordered`` over the matches of other rules, per ``group-by`` within ``timespan``.

Conditions that only bound the count from below (``gt``, ``gte``) are judged on a sliding
window as each event arrives, and fire once per crossing. Conditions with an upper bound
(``lt``, ``lte``, ``eq`` or a range) can only be judged when a window is over: windows are
then fixed, starting at a group's first match, and closed by later events of the tenant
(event time) or by :meth:`~auditkeep.alerts.engine.Engine.tick` (clock time).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from auditkeep.alerts.errors import RuleError
from auditkeep.alerts.evaluators import (
    MAX_EVENT_IDS,
    Evaluator,
    EventCtx,
    Firing,
    GroupTable,
    key_text,
)
from auditkeep.alerts.fields import MISSING, Getter, scalars
from auditkeep.alerts.rules import Rule, fingerprint_of
from auditkeep.alerts.sequence import SeqStep, SequenceMachine
from auditkeep.alerts.sigma.logsource import Mapping
from auditkeep.alerts.sigma.rules import (
    CORRELATION_TYPES,
    SigmaDetectionSpec,
    SigmaDoc,
    _Compiled,
    sigma_timespan,
    subjects_of,
)
from auditkeep.alerts.timeutil import format_duration
from auditkeep.alerts.windows import WindowCounter
from auditkeep.alerts.yamlsrc import line_of

_OPS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "eq": "="}


@dataclass
class CorrRef:
    label: str
    title: str
    target: _Compiled
    mapping: Mapping
    group: list[tuple[str, Getter]]
    value: Getter | None = None


@dataclass
class SigmaCorrelationSpec:
    title: str
    ctype: str
    refs: list[CorrRef]
    group_by: list[str]
    timespan_ns: int
    ops: dict[str, int] = field(default_factory=dict)
    value_field: str | None = None

    @property
    def crossing(self) -> bool:
        return set(self.ops) <= {"gt", "gte"}

    def threshold(self) -> int:
        if "gte" in self.ops:
            return max(1, self.ops["gte"])
        if "gt" in self.ops:
            return self.ops["gt"] + 1
        return len(self.refs)

    def satisfied(self, n: int) -> bool:
        for op, v in self.ops.items():
            if not ((op == "gt" and n > v) or (op == "gte" and n >= v) or (op == "lt" and n < v) or (op == "lte" and n <= v) or (op == "eq" and n == v)):
                return False
        return True

    def condition_text(self) -> str:
        return " and ".join(f"{_OPS[k]} {v}" for k, v in self.ops.items())

    def make_evaluator(self, rule: Rule) -> Evaluator:
        return CorrelationEvaluator(rule, self)


def _base(c: _Compiled) -> SigmaDetectionSpec:
    spec = c.spec
    while not isinstance(spec, SigmaDetectionSpec):
        spec = spec.refs[0].target.spec
    return spec


def compile_correlation(d: SigmaDoc, rid: str, resolve: Callable[[str], _Compiled]) -> _Compiled:
    doc = d.doc
    corr = doc.get("correlation")
    if not isinstance(corr, dict):
        raise RuleError("'correlation' must be a mapping", line=line_of(doc, "correlation"))
    allowed = ("type", "rules", "group-by", "timespan", "condition", "aliases", "generate")
    for k in corr:
        if k not in allowed:
            raise RuleError(f"unknown key {k!r} in 'correlation'", line=line_of(corr, k))
    ctype = corr.get("type")
    if ctype not in CORRELATION_TYPES:
        raise RuleError(
            f"correlation type {ctype!r} is not supported (supported: {', '.join(CORRELATION_TYPES)})",
            line=line_of(corr, "type"),
        )
    title = doc.get("title")
    if not isinstance(title, str) or not title:
        raise RuleError("a correlation needs a 'title'")
    refs_raw = corr.get("rules")
    if isinstance(refs_raw, str):
        refs_raw = [refs_raw]
    if not isinstance(refs_raw, list) or not refs_raw or not all(isinstance(r, str) for r in refs_raw):
        raise RuleError("'rules' must list the referenced rules by id or name", line=line_of(corr, "rules"))
    group_by = corr.get("group-by", [])
    if isinstance(group_by, str):
        group_by = [group_by]
    if not isinstance(group_by, list) or not all(isinstance(g, str) for g in group_by):
        raise RuleError("'group-by' must be a list of field names", line=line_of(corr, "group-by"))
    if "timespan" not in corr:
        raise RuleError("a correlation needs 'timespan'", line=line_of(corr))
    try:
        span = sigma_timespan(corr["timespan"])
    except RuleError as exc:
        raise RuleError(exc.reason, line=line_of(corr, "timespan")) from None
    aliases = corr.get("aliases", {}) or {}
    if not isinstance(aliases, dict) or not all(isinstance(v, dict) for v in aliases.values()):
        raise RuleError("'aliases' must map alias names to {rule name: field}", line=line_of(corr, "aliases"))
    cond = corr.get("condition")
    ops: dict[str, int] = {}
    value_field: str | None = None
    if cond is not None:
        if not isinstance(cond, dict) or not cond:
            raise RuleError("'condition' must be a mapping such as {gte: 10}", line=line_of(corr, "condition"))
        for k, v in cond.items():
            if k == "field":
                if not isinstance(v, str):
                    raise RuleError("condition 'field' must be a field name", line=line_of(cond, k))
                value_field = v
            elif k in _OPS:
                if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                    raise RuleError(f"condition '{k}' needs a non-negative integer", line=line_of(cond, k))
                ops[k] = v
            else:
                raise RuleError(f"unknown condition operator {k!r} (gt, gte, lt, lte, eq, field)", line=line_of(cond, k))
    if ctype in ("event_count", "value_count") and not ops:
        raise RuleError(f"an {ctype} correlation needs a condition such as {{gte: 10}}", line=line_of(corr))
    if ctype == "value_count" and value_field is None:
        raise RuleError("a value_count correlation needs 'field' in its condition", line=line_of(corr, "condition"))
    if ctype != "value_count" and value_field is not None:
        raise RuleError("'field' only applies to value_count correlations", line=line_of(corr, "condition"))
    if ctype == "temporal" and not set(ops) <= {"gt", "gte"}:
        raise RuleError("a temporal correlation's condition can only be gt or gte (rules seen)", line=line_of(corr, "condition"))
    if ctype == "temporal_ordered" and ops:
        raise RuleError("a temporal_ordered correlation takes no condition: all rules, in order", line=line_of(corr, "condition"))
    if 0 in ops.values() and set(ops) <= {"gt", "gte"} and ops.get("gt", 1) != 0:
        raise RuleError("'gte: 0' is always true; use gte 1 or more", line=line_of(corr, "condition"))
    generate = doc.get("generate", corr.get("generate", False))
    if not isinstance(generate, bool):
        raise RuleError("'generate' must be true or false", line=line_of(doc, "generate"))

    refs: list[CorrRef] = []
    for label in refs_raw:
        target = resolve(label)
        base = _base(target)
        tname = target.doc.doc.get("name")
        getters: list[tuple[str, Getter]] = []
        for g in group_by:
            fname = g
            if g in aliases:
                per = aliases[g]
                fname = per.get(label) or (per.get(tname) if isinstance(tname, str) else None) or ""
                if not fname:
                    raise RuleError(f"alias {g!r} names no field for rule {label!r}", line=line_of(corr, "aliases"))
            getters.append((g, base.mapping.getter(fname)))
        value = base.mapping.getter(value_field) if value_field else None
        refs.append(CorrRef(label, str(target.doc.doc.get("title") or label), target, base.mapping, getters, value))
    spec = SigmaCorrelationSpec(title, ctype, refs, list(group_by), span, ops, value_field)
    fp = fingerprint_of([doc, *(r.target.fingerprint for r in refs)])
    return _Compiled(d, rid, spec, [r.target for r in refs], generate, fp)


class _Window:
    __slots__ = ("count", "end", "event_ids", "fields", "first_index", "last_index", "start", "values")

    def __init__(self, start: int, span: int) -> None:
        self.start = start
        self.end = start + span
        self.count = 0
        self.values: dict[str, None] = {}
        self.fields: dict[str, Any] = {}
        self.event_ids: list[str] = []
        self.first_index = -1
        self.last_index = -1


class CorrelationEvaluator(Evaluator):
    def __init__(self, rule: Rule, spec: SigmaCorrelationSpec) -> None:
        super().__init__(rule)
        self.spec = spec
        kinds: set[str] = set()
        scoped = True
        for r in spec.refs:
            if r.mapping.scoped:
                kinds.add(r.mapping.kind)
            else:
                scoped = False
        self.kinds = frozenset(kinds) if scoped else None
        self.subs: list[CorrelationEvaluator | None] = [
            CorrelationEvaluator(rule, r.target.spec) if isinstance(r.target.spec, SigmaCorrelationSpec) else None
            for r in spec.refs
        ]
        self.counter: WindowCounter | None = None
        self.machine: SequenceMachine | None = None
        self.windows: dict[tuple[str, str], _Window] = {}
        self.heap: list[tuple[int, str, str, int]] = []
        self.seen = GroupTable()
        if spec.ctype in ("event_count", "value_count") and spec.crossing:
            self.counter = WindowCounter(spec.threshold(), spec.timespan_ns, spec.ctype == "value_count")
        elif spec.ctype == "temporal_ordered":
            self.machine = SequenceMachine([SeqStep(lambda e: False, 1, r.title) for r in spec.refs], spec.timespan_ns)

    def _hits(self, ctx: EventCtx) -> list[tuple[int, Any]]:
        out: list[tuple[int, Any]] = []
        for i, r in enumerate(self.spec.refs):
            sub = self.subs[i]
            if sub is None:
                subject = r.target.spec.hit(ctx)
                if subject is not None:
                    out.append((i, subject))
            elif sub.on_event(ctx):
                base = _base(r.target)
                subject = base.hit(ctx)
                if subject is None:
                    subs = subjects_of(r.mapping, ctx)
                    subject = subs[0] if subs else ctx.event
                out.append((i, subject))
        return out

    def _group(self, ref: CorrRef, subject: Any) -> tuple[str, dict[str, Any]]:
        values: dict[str, Any] = {}
        parts = []
        for name, get in ref.group:
            v = get(subject)
            v = None if v is MISSING else v
            values[name] = v
            parts.append(f"{name}={key_text(v)}")
        return ", ".join(parts), values

    def on_event(self, ctx: EventCtx) -> list[Firing]:
        out: list[Firing] = []
        if self.heap:
            out.extend(self._close(ctx.tenant, ctx.time_ns))
        hits = self._hits(ctx)
        if not hits:
            return out
        spec = self.spec
        entry = (ctx.time_ns, ctx.index, ctx.event_id)
        by_group: dict[str, tuple[dict[str, Any], list[tuple[int, Any]]]] = {}
        for i, subject in hits:
            key, values = self._group(spec.refs[i], subject)
            by_group.setdefault(key, (values, []))[1].append((i, subject))
        for key, (values, group_hits) in by_group.items():
            if spec.ctype in ("event_count", "value_count"):
                vals: list[str] | None = None
                if spec.ctype == "value_count":
                    vals = []
                    for i, subject in group_hits:
                        getter = spec.refs[i].value
                        v = getter(subject) if getter else MISSING
                        if v is not MISSING and v is not None:
                            vals.extend(key_text(x) for x in scalars(v))
                    if not vals:
                        continue
                if self.counter is not None:
                    hit = self.counter.add(ctx.tenant, key, entry, vals)
                    if hit is not None:
                        n = len(hit)
                        out.append(self._firing(ctx.tenant, key, values, ctx.index, min(e[1] for e in hit), [e[2] for e in hit], n, ctx.time_ns))
                else:
                    out.extend(self._tumble(ctx, key, values, vals))
            elif spec.ctype == "temporal":
                seen: dict[int, tuple[int, int, str]] = self.seen.touch((ctx.tenant, key), dict)
                for i, _ in group_hits:
                    seen[i] = entry
                for i in [i for i, e in seen.items() if e[0] < ctx.time_ns - spec.timespan_ns]:
                    del seen[i]
                if len(seen) >= spec.threshold():
                    entries = sorted(seen.values(), key=lambda e: e[1])
                    del self.seen[(ctx.tenant, key)]
                    out.append(self._firing(ctx.tenant, key, values, ctx.index, entries[0][1], [e[2] for e in entries], len(entries), ctx.time_ns))
            else:
                assert self.machine is not None
                idx = {i for i, _ in group_hits}
                done = self.machine.feed(ctx.tenant, key, entry, idx.__contains__)
                if done is not None:
                    out.append(self._firing(ctx.tenant, key, values, ctx.index, min(e[1] for _, e in done), [e[2] for _, e in done], len(done), ctx.time_ns))
        return out

    def _tumble(self, ctx: EventCtx, key: str, values: dict[str, Any], vals: list[str] | None) -> list[Firing]:
        out: list[Firing] = []
        gk = (ctx.tenant, key)
        w = self.windows.get(gk)
        if w is not None and ctx.time_ns >= w.end:
            out.extend(self._close_one(gk))
            w = None
        if w is None:
            w = self.windows[gk] = _Window(ctx.time_ns, self.spec.timespan_ns)
            w.first_index = ctx.index
            heapq.heappush(self.heap, (w.end, ctx.tenant, key, w.start))
        w.count += 1
        w.last_index = ctx.index
        if len(w.event_ids) < MAX_EVENT_IDS:
            w.event_ids.append(ctx.event_id)
        cap = max(self.spec.ops.values(), default=0) + 1
        for v in vals or ():
            if len(w.values) < cap:
                w.values[v] = None
        w.fields = values
        return out

    def _close(self, tenant: str | None, now: int) -> list[Firing]:
        out: list[Firing] = []
        keep: list[tuple[int, str, str, int]] = []
        while self.heap and self.heap[0][0] <= now:
            item = heapq.heappop(self.heap)
            if tenant is not None and item[1] != tenant:
                keep.append(item)
                continue
            gk = (item[1], item[2])
            w = self.windows.get(gk)
            if w is not None and w.start == item[3]:
                out.extend(self._close_one(gk))
        for item in keep:
            heapq.heappush(self.heap, item)
        return out

    def _close_one(self, gk: tuple[str, str]) -> list[Firing]:
        w = self.windows.pop(gk)
        n = len(w.values) if self.spec.ctype == "value_count" else w.count
        if not self.spec.satisfied(n):
            return []
        return [self._firing(gk[0], gk[1], w.fields, w.last_index, w.first_index, w.event_ids, n, w.end)]

    def on_tick(self, now_ns: int) -> list[Firing]:
        return self._close(None, now_ns) if self.heap else []

    def _firing(self, tenant: str, key: str, values: dict[str, Any], trigger: int, first: int, ids: list[str], n: int, t: int) -> Firing:
        spec = self.spec
        who = f" for {key}" if key else ""
        titles = ", ".join(f"\u201c{r.title}\u201d" for r in spec.refs)
        span = format_duration(spec.timespan_ns)
        if spec.ctype == "event_count":
            text = f"{n} events matching {titles}{who} within {span} (condition: count {spec.condition_text()})."
        elif spec.ctype == "value_count":
            text = f"{n} distinct values of {spec.value_field} in events matching {titles}{who} within {span} (condition: {spec.condition_text()})."
        elif spec.ctype == "temporal":
            text = f"{n} of the rules {titles} matched{who} within {span}."
        else:
            text = f"{' then '.join(f'“{r.title}”' for r in spec.refs)} matched in order{who} within {span}."
        return Firing(tenant, key, trigger, first, ids[-MAX_EVENT_IDS:], n, t, text, dict(values), spec.title)

    def prune(self, watermarks: dict[str, int]) -> None:
        if self.counter is not None:
            self.counter.prune(watermarks)
        if self.machine is not None:
            self.machine.prune(watermarks)
        for key in list(self.seen):
            wm = watermarks.get(key[0])
            if wm is not None and all(e[0] < wm - self.spec.timespan_ns for e in self.seen[key].values()):
                del self.seen[key]
        for sub in self.subs:
            if sub is not None:
                sub.prune(watermarks)

    def dump(self) -> Any:
        return {
            "counter": self.counter.dump() if self.counter else None,
            "machine": self.machine.dump() if self.machine else None,
            "seen": [[t, k, [[i, *e] for i, e in s.items()]] for (t, k), s in self.seen.items()],
            "windows": [
                [t, k, w.start, w.count, list(w.values), w.event_ids, w.first_index, w.last_index, w.fields]
                for (t, k), w in self.windows.items()
            ],
            "subs": [s.dump() if s is not None else None for s in self.subs],
        }

    def load(self, data: Any) -> None:
        if self.counter is not None and data.get("counter") is not None:
            self.counter.load(data["counter"])
        if self.machine is not None and data.get("machine") is not None:
            self.machine.load(data["machine"])
        self.seen.clear()
        for t, k, entries in data.get("seen", []):
            self.seen[(t, k)] = {int(i): (int(a), int(b), str(c)) for i, a, b, c in entries}
        self.windows.clear()
        self.heap.clear()
        for t, k, start, count, vals, ids, first, last, fields in data.get("windows", []):
            w = _Window(int(start), self.spec.timespan_ns)
            w.fields = dict(fields)
            w.count, w.values, w.event_ids = int(count), dict.fromkeys(vals), list(ids)
            w.first_index, w.last_index = int(first), int(last)
            self.windows[(t, k)] = w
            heapq.heappush(self.heap, (w.end, t, k, w.start))
        for sub, sd in zip(self.subs, data.get("subs", []), strict=False):
            if sub is not None and sd is not None:
                sub.load(sd)
