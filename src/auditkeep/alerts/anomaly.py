"""Anomaly baselines, learned per tenant from the events as they arrive.

Detectors (``kind: anomaly``, ``detector: …``, options under ``params``):

``new_action``
    An actor uses an action it has not used within ``lookback`` (default 30d).
``new_ip`` / ``new_user_agent``
    An actor acts from an IP address / user agent not seen for it within ``lookback``,
    once the actor has at least ``min_history`` events (default 10).
``unusual_hours``
    An actor is active in an hour of the week that holds less than ``min_share``
    (default 1%) of its history, once it has ``min_history`` events (default 50). Hours are
    counted in ``timezone`` (default UTC); old counts are halved as history grows so the
    baseline follows changes.
``rate_spike``
    The count of events per ``bucket`` (default 1m) for one actor (``per: actor``), one
    action (``per: action``) or any field path is compared with an exponentially weighted
    mean and variance of past buckets (``alpha``, default 0.1); a bucket fires once when its
    z-score reaches ``z`` (default 4) with at least ``min_count`` events (default 10) and
    ``min_buckets`` buckets of history (default 30). The standard deviation is floored at
    0.5 so a perfectly regular series does not turn every extra event into an infinite z.

Nothing fires during a tenant's ``learning_period`` (default 7d of event time from the
tenant's first event), so a fresh log does not alert on everything. Editing a rule does
not start it again: the baselines are kept when the edit leaves them valid (the detector,
``per``, ``bucket``, ``alpha``, ``timezone`` and ``match`` unchanged; severity, thresholds,
``lookback``, notifiers may change). A rule whose baseline starts after the tenant's
learning period is over (added later, or its detector or ``match`` changed) has nothing to
compare with: it learns for its own ``learning_period`` from the first event it sees.
Memory is bounded:
each detector keeps at most ``max_keys`` keys per tenant (default 100,000; least recently
seen evicted first) and ``new_ip``/``new_user_agent`` at most ``max_values`` values per
actor (default 50). An evicted key simply starts learning again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from auditkeep.alerts.conditions import Condition
from auditkeep.alerts.errors import RuleError
from auditkeep.alerts.evaluators import Evaluator, EventCtx, Firing, native_index
from auditkeep.alerts.fields import MISSING, compile_path, to_text
from auditkeep.alerts.rules import Rule
from auditkeep.alerts.timeutil import NS, format_duration, parse_duration
from auditkeep.alerts.yamlsrc import line_of

DETECTORS = ("new_action", "new_ip", "new_user_agent", "unusual_hours", "rate_spike")
_DEFAULTS: dict[str, dict[str, Any]] = {
    "new_action": {"learning_period": "7d", "lookback": "30d", "max_keys": 100_000},
    "new_ip": {"learning_period": "7d", "lookback": "30d", "max_keys": 100_000, "max_values": 50, "min_history": 10},
    "new_user_agent": {"learning_period": "7d", "lookback": "30d", "max_keys": 100_000, "max_values": 50, "min_history": 10},
    "unusual_hours": {"learning_period": "7d", "max_keys": 100_000, "min_history": 50, "min_share": 0.01, "timezone": "UTC"},
    "rate_spike": {
        "learning_period": "7d", "max_keys": 100_000, "per": "actor", "bucket": "1m", "alpha": 0.1,
        "z": 4.0, "min_count": 10, "min_buckets": 30,
    },
}
_DURATIONS = ("learning_period", "lookback", "bucket")
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass
class AnomalySpec:
    detector: str
    condition: Condition
    params: dict[str, Any]

    def make_evaluator(self, rule: Rule) -> Evaluator:
        return AnomalyEvaluator(rule, self)


def parse_anomaly(detector: Any, params: Any, condition: Condition, where: Any, group_by: tuple[str, ...]) -> AnomalySpec:
    if detector not in DETECTORS:
        raise RuleError(f"'detector' must be one of {', '.join(DETECTORS)}, got {detector!r}", line=line_of(where, "detector"))
    if not isinstance(params, Mapping):
        raise RuleError("'params' must be a mapping", line=line_of(where, "params"))
    defaults = _DEFAULTS[detector]
    out = dict(defaults)
    for k, v in params.items():
        if k not in defaults:
            raise RuleError(f"unknown parameter {k!r} for {detector} (allowed: {', '.join(defaults)})", line=line_of(params, k))
        out[k] = v
    for k in _DURATIONS:
        if k in out:
            try:
                out[k] = parse_duration(out[k]) if k != "learning_period" or out[k] not in (0, "0") else 0
            except ValueError as exc:
                raise RuleError(f"'{k}': {exc}", line=line_of(params, k)) from None
    for k in ("max_keys", "max_values", "min_history", "min_count", "min_buckets"):
        if k in out and (isinstance(out[k], bool) or not isinstance(out[k], int) or out[k] < (1 if k.startswith("max") else 0)):
            raise RuleError(f"'{k}' must be a non-negative integer", line=line_of(params, k))
    for k in ("alpha", "z", "min_share"):
        if k in out and (isinstance(out[k], bool) or not isinstance(out[k], (int, float)) or out[k] <= 0):
            raise RuleError(f"'{k}' must be a positive number", line=line_of(params, k))
    if "alpha" in out and out["alpha"] >= 1:
        raise RuleError("'alpha' must be below 1", line=line_of(params, "alpha"))
    if "timezone" in out:
        try:
            out["timezone"] = str(out["timezone"])
            ZoneInfo(out["timezone"])
        except (ZoneInfoNotFoundError, ValueError):
            raise RuleError(f"unknown timezone {out['timezone']!r}", line=line_of(params, "timezone")) from None
    if "per" in out:
        per = out["per"]
        if not isinstance(per, str) or not per:
            raise RuleError("'per' must be actor, action or a field path", line=line_of(params, "per"))
        out["per"] = {"actor": "actor.id", "action": "action"}.get(per, per)
    return AnomalySpec(str(detector), condition, out)


class _Tenant:
    __slots__ = ("keys", "start")

    def __init__(self, start: int) -> None:
        self.start = start
        self.keys: dict[str, Any] = {}


def _touch(keys: dict[str, Any], key: str, cap: int, factory: Any) -> Any:
    value = keys.pop(key, None)
    if value is None:
        value = factory()
        while len(keys) >= cap:
            del keys[next(iter(keys))]
    keys[key] = value
    return value


def _date(ns: int) -> str:
    return datetime.fromtimestamp(ns / NS, ZoneInfo("UTC")).strftime("%Y-%m-%d")


class AnomalyEvaluator(Evaluator):
    def __init__(self, rule: Rule, spec: AnomalySpec) -> None:
        super().__init__(rule)
        self.spec = spec
        self.p = spec.params
        self.test = spec.condition.test
        self.index = native_index(spec.condition.hint)
        self.tenants: dict[str, _Tenant] = {}
        self.actor = compile_path("actor.id")
        self.value_get = {
            "new_action": compile_path("action"),
            "new_ip": compile_path("actor.ip"),
            "new_user_agent": compile_path("actor.user_agent"),
        }.get(spec.detector)
        self.per = compile_path(self.p["per"]) if "per" in self.p else None
        self.tz = ZoneInfo(self.p.get("timezone", "UTC"))

    def on_event(self, ctx: EventCtx) -> list[Firing]:
        ev = ctx.event
        if not self.test(ev):
            return []
        ten = self.tenants.get(ctx.tenant)
        if ten is None:
            ten = self.tenants[ctx.tenant] = _Tenant(ctx.time_ns)
        period = self.p["learning_period"]
        # (a state saved before the engine kept the tenant's first event has an older start)
        first = min(ctx.tenant_start, ten.start)
        start = first if ten.start < first + period else ten.start
        learning = ctx.time_ns < start + period
        det = self.spec.detector
        if det == "rate_spike":
            return self._rate(ctx, ten, learning)
        actor = to_text(self.actor(ev))
        if actor is None:
            return []
        if det == "unusual_hours":
            return self._hours(ctx, ten, actor, learning)
        assert self.value_get is not None
        value = to_text(self.value_get(ev))
        if value is None:
            return []
        if det == "new_action":
            return self._new_action(ctx, ten, actor, value, learning)
        return self._new_value(ctx, ten, actor, value, learning)

    def _firing(self, ctx: EventCtx, key: str, text: str, fields: dict[str, Any], count: int = 1) -> list[Firing]:
        return [Firing(ctx.tenant, key, ctx.index, ctx.index, [ctx.event_id], count, ctx.time_ns, text, fields)]

    def _new_action(self, ctx: EventCtx, ten: _Tenant, actor: str, action: str, learning: bool) -> list[Firing]:
        key = f"{actor}\x1f{action}"
        last = ten.keys.pop(key, None)
        while len(ten.keys) >= self.p["max_keys"]:
            del ten.keys[next(iter(ten.keys))]
        ten.keys[key] = ctx.time_ns
        lookback = self.p["lookback"]
        if learning or (last is not None and last >= ctx.time_ns - lookback):
            return []
        days = format_duration(lookback)
        text = f"actor {actor} used `{action}` for the first time; 0 times in the previous {days}"
        text += f" (last used {_date(last)})." if last is not None else "."
        return self._firing(ctx, f"actor.id={actor}", text, {"actor.id": actor, "action": action})

    def _new_value(self, ctx: EventCtx, ten: _Tenant, actor: str, value: str, learning: bool) -> list[Firing]:
        st = _touch(ten.keys, actor, self.p["max_keys"], lambda: [0, {}])
        st[0] += 1
        seen: dict[str, int] = st[1]
        last = seen.pop(value, None)
        lookback = self.p["lookback"]
        recent = [v for v, t in seen.items() if t >= ctx.time_ns - lookback]
        seen[value] = ctx.time_ns
        while len(seen) > self.p["max_values"]:
            del seen[next(iter(seen))]
        if learning or st[0] <= self.p["min_history"] or (last is not None and last >= ctx.time_ns - lookback):
            return []
        what = "IP" if self.spec.detector == "new_ip" else "user agent"
        others = ", ".join(recent[-3:][::-1])
        text = (
            f"actor {actor} used a new {what} {value}; seen with {len(recent)} other {what}"
            f"{'s' if len(recent) != 1 else ''} in the previous {format_duration(lookback)}"
            + (f" ({others})." if others else ".")
        )
        field = "actor.ip" if self.spec.detector == "new_ip" else "actor.user_agent"
        return self._firing(ctx, f"actor.id={actor}", text, {"actor.id": actor, field: value, "known": recent[-10:]})

    def _hours(self, ctx: EventCtx, ten: _Tenant, actor: str, learning: bool) -> list[Firing]:
        st = _touch(ten.keys, actor, self.p["max_keys"], lambda: [0, [0] * 168])
        local = datetime.fromtimestamp(ctx.time_ns / NS, self.tz)
        bucket = local.weekday() * 24 + local.hour
        total, hist = st[0], st[1]
        here = hist[bucket]
        out: list[Firing] = []
        if not learning and total >= self.p["min_history"] and here / total < self.p["min_share"]:
            by_hour = [sum(hist[d * 24 + h] for d in range(7)) for h in range(24)]
            top = sorted(range(24), key=lambda h: -by_hour[h])[:3]
            usual = ", ".join(f"{h:02d}:00" for h in sorted(top) if by_hour[h] > 0)
            text = (
                f"actor {actor} active at {_WEEKDAYS[local.weekday()]} {local.hour:02d}:00 {self.p['timezone']}; "
                f"{here} of {total} previous events in that hour of the week (busiest hours: {usual})."
            )
            out = self._firing(ctx, f"actor.id={actor}", text, {"actor.id": actor, "hour_of_week": bucket})
        hist[bucket] += 1
        st[0] = total + 1
        if st[0] > 10_000:  # keep the baseline recent: halve old counts
            st[1] = [c // 2 for c in hist]
            st[0] = sum(st[1])
        return out

    def _rate(self, ctx: EventCtx, ten: _Tenant, learning: bool) -> list[Firing]:
        assert self.per is not None
        raw = self.per(ctx.event)
        key = to_text(raw) if raw is not MISSING else None
        if key is None:
            return []
        size = self.p["bucket"]
        alpha = self.p["alpha"]
        b = ctx.time_ns // size
        # [bucket, count, mean, var, buckets seen, fired]
        st = _touch(ten.keys, key, self.p["max_keys"], lambda: [b, 0, 0.0, 0.0, 0, False])
        if b > st[0]:
            gap = b - st[0]
            for i in range(min(gap, 1000)):
                x = st[1] if i == 0 else 0
                diff = x - st[2]
                incr = alpha * diff
                st[2] += incr
                st[3] = (1 - alpha) * (st[3] + diff * incr)
            st[4] += gap
            st[0], st[1], st[5] = b, 0, False
        st[1] += 1
        count, mean, sd = st[1], st[2], max(math.sqrt(st[3]), 0.5)
        z = (count - mean) / sd
        if learning or st[5] or st[4] < self.p["min_buckets"] or count < self.p["min_count"] or z < self.p["z"]:
            return []
        st[5] = True
        label = self.p["per"]
        who = f"actor {key}" if label == "actor.id" else (f"action {key}" if label == "action" else f"{label} {key}")
        text = (
            f"{who}: {count} events in {format_duration(size)}, usual {mean:.1f} \u00b1 {math.sqrt(st[3]):.1f} "
            f"(z = {z:.1f})."
        )
        return self._firing(ctx, f"{label}={key}", text, {label: key, "count": count, "mean": round(mean, 3), "z": round(z, 2)}, count)

    def baseline_key(self) -> str | None:
        # What the baselines are made of; thresholds and lookbacks are only read when judging.
        shape = {k: self.p[k] for k in ("per", "bucket", "alpha", "timezone") if k in self.p}
        return f"anomaly:{self.spec.detector}:{sorted(shape.items())}:{self.spec.condition.text}"

    def dump(self) -> Any:
        return {t: [ten.start, [[k, v] for k, v in ten.keys.items()]] for t, ten in self.tenants.items()}

    def load(self, data: Any) -> None:
        self.tenants.clear()
        for t, (start, items) in data.items():
            ten = _Tenant(int(start))
            for k, v in items:
                if self.spec.detector in ("new_ip", "new_user_agent"):
                    v = [int(v[0]), {str(a): int(b) for a, b in v[1].items()}]
                ten.keys[str(k)] = v
            self.tenants[t] = ten

