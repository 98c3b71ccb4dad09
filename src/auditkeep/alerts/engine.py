"""The alert engine: events in log order per tenant in, alerts out.

It is pure: no I/O, no threads, no clock of its own except the one handed to ``tick``.
The caller reads the committed log by cursor, feeds ``process(tenant, index, event)`` and
stores :meth:`Engine.snapshot` together with its cursor in one transaction. After a crash
it restores the last snapshot and replays the events after that cursor; alerts carry ids
derived from the rule, the group and the index of the triggering event, so the replay
yields exactly the ids of an uninterrupted run and the store drops the duplicates.

Most rules are skipped for most events: each rule declares which sources it reads
(Kubernetes, CloudTrail, auditd, GCP, or any event) and, where its condition requires a
field to take one of a few exact values (``action``, ``eventName``, ``verb``…), an index
entry. Candidate rules for an event are looked up, not scanned.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from auditkeep.alerts.evaluators import Evaluator, EventCtx, Firing, IndexSpec
from auditkeep.alerts.fields import to_text
from auditkeep.alerts.model import Alert, alert_id
from auditkeep.alerts.rules import Rule
from auditkeep.alerts.timeutil import event_time_ns
from auditkeep.model.json_text import JSON_TEXT_KEY, restore_json_text

log = logging.getLogger(__name__)

#: The sources an event can carry under ``metadata`` (the source mappers keep the original
#: record there) and that Sigma log sources are mapped onto.
SOURCE_KINDS: tuple[str, ...] = ("k8s", "cloudtrail", "auditd", "gcp")
SNAPSHOT_VERSION = 1
#: Stateful rules drop groups that can no longer fire every this many events.
PRUNE_EVERY = 8192
MAX_THROTTLE_KEYS = 100_000
_MEMO_LIMIT = 4096
_NO_KINDS: frozenset[str] = frozenset()


@dataclass
class _IndexGroup:
    extract: Callable[[dict[str, Any]], Iterable[Any]]
    lower: bool
    members: list[tuple[int, Evaluator, IndexSpec]] = field(default_factory=list)
    memo: dict[str, tuple[tuple[int, Evaluator], ...]] = field(default_factory=dict)

    def lookup(self, text: str) -> tuple[tuple[int, Evaluator], ...]:
        hit = self.memo.get(text)
        if hit is None:
            # each distinct value is resolved against every member once, then remembered
            hit = tuple((pos, ev) for pos, ev, spec in self.members if spec.hint.admits(text))
            if len(self.memo) >= _MEMO_LIMIT:
                self.memo.clear()
            self.memo[text] = hit
        return hit


@dataclass
class _Plan:
    always: list[tuple[int, Evaluator]]
    groups: list[_IndexGroup]


@dataclass
class EngineStats:
    events: int = 0
    evaluations: int = 0
    alerts: int = 0
    suppressed: int = 0
    errors: int = 0


class Engine:
    """Evaluates rules over events and clock ticks.

    ``clock`` (nanoseconds since the epoch) is used only by :meth:`tick_now`; the engine
    otherwise works in the time the caller passes, so it can be driven from tests.
    """

    def __init__(self, rules: Iterable[Rule] = (), *, clock: Callable[[], int] = time.time_ns) -> None:
        self.clock = clock
        self.stats = EngineStats()
        self._evaluators: dict[str, Evaluator] = {}
        self._plans: dict[frozenset[str], _Plan] = {}
        self._throttle: dict[tuple[str, str, str], list[int]] = {}
        self._watermarks: dict[str, int] = {}
        self._last_time: dict[str, int] = {}
        self._first_time: dict[str, int] = {}  # time of each tenant's first event (its history's start)
        self._processed = 0
        for rule in rules:
            self.add_rule(rule)

    # -- rules -------------------------------------------------------------------------

    @property
    def rules(self) -> list[Rule]:
        return [ev.rule for ev in self._evaluators.values()]

    def add_rule(self, rule: Rule) -> None:
        """Add a rule; ``ValueError`` if its id is taken (use :meth:`replace_rules`)."""
        if rule.id in self._evaluators:
            raise ValueError(f"a rule with id {rule.id!r} is already loaded")
        self._evaluators[rule.id] = rule.spec.make_evaluator(rule)
        self._plans.clear()

    def remove_rule(self, rule_id: str) -> bool:
        """Remove a rule and its state; whether it was there."""
        if self._evaluators.pop(rule_id, None) is None:
            return False
        self._throttle = {k: v for k, v in self._throttle.items() if k[0] != rule_id}
        self._plans.clear()
        return True

    @property
    def idle(self) -> bool:
        """No enabled rule: an event can only move the tenant's clock (see :meth:`observe`)."""
        return not any(ev.rule.enabled for ev in self._evaluators.values())

    def replace_rules(self, rules: Iterable[Rule]) -> None:
        """Swap in a new rule set. A rule whose id and definition (fingerprint) are unchanged
        keeps its windows, sequences and baselines, and so does a rule edited in a way its
        state does not depend on (:meth:`Evaluator.baseline_key`); other changed or new
        rules start empty."""
        new: dict[str, Evaluator] = {}
        for rule in rules:
            if rule.id in new:
                raise ValueError(f"duplicate rule id {rule.id!r}")
            old = self._evaluators.get(rule.id)
            if old is not None and old.rule.fingerprint == rule.fingerprint:
                old.rule = rule
                new[rule.id] = old
            else:
                fresh = rule.spec.make_evaluator(rule)
                key = fresh.baseline_key()
                if old is not None and key is not None and key == old.baseline_key():
                    fresh.load(old.dump())  # an edit that leaves what was learned valid
                new[rule.id] = fresh
        self._evaluators = new
        self._throttle = {k: v for k, v in self._throttle.items() if k[0] in new}
        self._plans.clear()

    def _plan(self, kinds: frozenset[str]) -> _Plan:
        plan = self._plans.get(kinds)
        if plan is not None:
            return plan
        always: list[tuple[int, Evaluator]] = []
        groups: dict[str, _IndexGroup] = {}
        for pos, ev in enumerate(self._evaluators.values()):
            if not ev.rule.enabled:
                continue
            if ev.kinds is not None and not (ev.kinds & kinds):
                continue
            spec = ev.index
            if spec is None or (ev.kinds is not None and len(ev.kinds) > 1):
                always.append((pos, ev))
                continue
            g = groups.get(spec.key)
            if g is None:
                g = groups[spec.key] = _IndexGroup(spec.extract, spec.hint.lower)
            g.members.append((pos, ev, spec))
        plan = _Plan(always, list(groups.values()))
        self._plans[kinds] = plan
        return plan

    # -- events ------------------------------------------------------------------------

    def process(self, tenant: str, index: int, event: dict[str, Any]) -> list[Alert]:
        """Evaluate one event (``msgspec.to_builtins(Event)``) at log ``index`` of ``tenant``.

        Rules see the source's record whole: parts of it kept as JSON text because they
        were nested past the event's limits (``metadata._json_text``) are decoded back
        first, so a path such as ``requestParameters.ipPermissions.items.ipRanges.items.cidrIp``
        reaches its value however deep it is."""
        meta = event.get("metadata")
        if type(meta) is dict and JSON_TEXT_KEY in meta:
            event = {**event, "metadata": restore_json_text(meta)}
        t, first = self._clock(tenant, event_time_ns(event))
        eid = event.get("id")
        ctx = EventCtx(tenant, index, event, t, eid if isinstance(eid, str) else f"{tenant}:{index}", first)
        meta = event.get("metadata")
        kinds = _NO_KINDS
        if meta and isinstance(meta, dict):
            present = tuple(k for k in SOURCE_KINDS if k in meta)
            if present:
                kinds = frozenset(present)
        plan = self._plans.get(kinds) or self._plan(kinds)
        alerts: list[Alert] = []
        stats = self.stats
        stats.events += 1
        n = self._run(plan.always, ctx, alerts)
        if plan.groups:
            extra: dict[int, Evaluator] = {}
            for g in plan.groups:
                for v in g.extract(event):
                    text = v if isinstance(v, str) else to_text(v)
                    if text is None:
                        continue
                    for pos, ev in g.lookup(text.lower() if g.lower else text):
                        extra[pos] = ev
            if extra:
                n += self._run([(pos, extra[pos]) for pos in sorted(extra)], ctx, alerts)
        stats.evaluations += n
        self._counted()
        return alerts

    def observe(self, tenant: str, time_ns: int | None) -> None:
        """What :meth:`process` keeps of an event while the engine is :attr:`idle`: the
        tenant's first, latest and highest event times (``time_ns``: the event's own, see
        :func:`~auditkeep.alerts.timeutil.event_time_ns`) and the counts, so that rules added
        later start from the same history as if every event had been processed."""
        self._clock(tenant, time_ns)
        self.stats.events += 1
        self._counted()

    def _clock(self, tenant: str, t: int | None) -> tuple[int, int]:
        """The event's time (the tenant's previous one when it has none) and the time of the
        tenant's first event, moving the tenant's clock."""
        if t is None:
            t = self._last_time.get(tenant, 0)
        self._last_time[tenant] = t
        if t > self._watermarks.get(tenant, -1):
            self._watermarks[tenant] = t
        return t, self._first_time.setdefault(tenant, t)

    def _counted(self) -> None:
        self._processed += 1
        if self._processed % PRUNE_EVERY == 0:
            self._prune()

    def _run(self, candidates: list[tuple[int, Evaluator]], ctx: EventCtx, alerts: list[Alert]) -> int:
        for _, ev in candidates:
            try:
                firings = ev.on_event(ctx)
            except Exception:  # one faulty rule must not stop the others
                self.stats.errors += 1
                log.exception("rule %s failed on %s event %d", ev.rule.id, ctx.tenant, ctx.index)
                continue
            for f in firings:
                alert = self._emit(ev.rule, f)
                if alert is not None:
                    alerts.append(alert)
        return len(candidates)

    def tick(self, now_ns: int) -> list[Alert]:
        """Let time pass: absence rules fire for groups silent too long, windows that can
        only be judged at their end (Sigma ``lt``/``eq`` counts) are closed."""
        alerts: list[Alert] = []
        for ev in list(self._evaluators.values()):
            if not ev.rule.enabled:
                continue
            try:
                firings = ev.on_tick(now_ns)
            except Exception:
                self.stats.errors += 1
                log.exception("rule %s failed on tick", ev.rule.id)
                continue
            for f in firings:
                alert = self._emit(ev.rule, f)
                if alert is not None:
                    alerts.append(alert)
        return alerts

    def tick_now(self) -> list[Alert]:
        return self.tick(self.clock())

    def _prune(self) -> None:
        for ev in self._evaluators.values():
            ev.prune(self._watermarks)
        if len(self._throttle) > MAX_THROTTLE_KEYS:
            for k in [k for k, v in self._throttle.items() if v[1] == 0][: len(self._throttle) - MAX_THROTTLE_KEYS]:
                del self._throttle[k]

    def _emit(self, rule: Rule, f: Firing) -> Alert | None:
        suppressed = 0
        if rule.throttle_ns:
            key = (rule.id, f.tenant, f.group_key)
            st = self._throttle.get(key)
            if st is not None and f.time_ns < st[0]:
                st[1] += 1
                self.stats.suppressed += 1
                return None
            suppressed = st[1] if st is not None else 0
            self._throttle[key] = [f.time_ns + rule.throttle_ns, 0]
        self.stats.alerts += 1
        return Alert(
            id=alert_id(rule.id, f.tenant, f.group_key, f.trigger_index),
            rule_id=rule.id,
            rule_name=rule.name,
            tenant=f.tenant,
            severity=rule.severity,
            title=f.title or rule.name,
            explanation=f.explanation,
            group_key=f.group_key,
            first_index=min(f.first_index, f.trigger_index),
            last_index=f.trigger_index,
            event_ids=f.event_ids,
            count=f.count,
            time=f.time_ns,
            fields=f.fields,
            suppressed=suppressed,
            notify=list(rule.notify),
            tags=list(rule.tags),
        )

    # -- state -------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """All state (windows, sequences, baselines, throttles) as JSON bytes."""
        doc = {
            "version": SNAPSHOT_VERSION,
            "processed": self._processed,
            "watermarks": self._watermarks,
            "last_time": self._last_time,
            "first_time": self._first_time,
            "throttle": [[*k, *v] for k, v in self._throttle.items()],
            "rules": {
                rid: {"fingerprint": ev.rule.fingerprint, "baseline": ev.baseline_key(), "state": ev.dump()}
                for rid, ev in self._evaluators.items()
            },
        }
        return msgspec.json.encode(doc)

    @classmethod
    def restore(cls, rules: Iterable[Rule], data: bytes, *, clock: Callable[[], int] = time.time_ns) -> Engine:
        """An engine over ``rules`` with the state of a :meth:`snapshot`. State of a rule whose
        definition changed since the snapshot is dropped (its windows start empty), unless
        the change leaves it valid (:meth:`Evaluator.baseline_key`)."""
        engine = cls(rules, clock=clock)
        doc = msgspec.json.decode(data)
        if not isinstance(doc, dict) or doc.get("version") != SNAPSHOT_VERSION:
            raise ValueError("not an alert engine snapshot of a supported version")
        engine._processed = int(doc.get("processed", 0))
        engine._watermarks = {str(k): int(v) for k, v in doc.get("watermarks", {}).items()}
        engine._last_time = {str(k): int(v) for k, v in doc.get("last_time", {}).items()}
        engine._first_time = {str(k): int(v) for k, v in doc.get("first_time", {}).items()}
        for rid, tenant, gk, until, supp in doc.get("throttle", []):
            if rid in engine._evaluators:
                engine._throttle[(rid, tenant, gk)] = [int(until), int(supp)]
        for rid, entry in doc.get("rules", {}).items():
            ev = engine._evaluators.get(rid)
            if ev is None or entry.get("state") is None:
                continue
            key = ev.baseline_key()
            if ev.rule.fingerprint == entry.get("fingerprint") or (key is not None and key == entry.get("baseline")):
                ev.load(entry["state"])
        return engine
