"""What every rule evaluator shares: the per-event context, the firing it reports and the
small protocol the engine drives (``on_event``, ``on_tick``, ``dump``/``load`` of state)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from auditkeep.alerts.fields import MISSING, Getter, render_value, to_text

if TYPE_CHECKING:
    from auditkeep.alerts.conditions import IndexHint
    from auditkeep.alerts.rules import Rule

#: The most event ids an alert carries; the count says how many there were.
MAX_EVENT_IDS = 100


@dataclass(slots=True)
class EventCtx:
    """One event as the evaluators see it. ``tenant_start`` is the time of the tenant's
    first event (the start of its history, whatever rules came and went since). ``memo``
    is shared by all rules for this event (Sigma rules keep their subject lists and
    detection results there)."""

    tenant: str
    index: int
    event: dict[str, Any]
    time_ns: int
    event_id: str
    tenant_start: int = 0
    memo: dict[Any, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Firing:
    """An evaluator's report that its rule fired; the engine turns it into an Alert."""

    tenant: str
    group_key: str
    trigger_index: int
    first_index: int
    event_ids: list[str]
    count: int
    time_ns: int
    explanation: str
    fields: dict[str, Any] = field(default_factory=dict)
    title: str | None = None


@dataclass(frozen=True, slots=True)
class IndexSpec:
    """How the engine may pre-select this rule: events whose values at ``key`` (read by
    ``extract``) are not admitted by ``hint`` cannot match."""

    key: str
    hint: IndexHint
    extract: Callable[[dict[str, Any]], Iterable[Any]]


class Evaluator:
    """Base class: a stateless rule that never fires. Subclasses override what they need."""

    #: Sources (``k8s``, ``cloudtrail``, ``auditd``, ``gcp``) whose events can match;
    #: ``None`` for any event.
    kinds: frozenset[str] | None = None
    index: IndexSpec | None = None

    def __init__(self, rule: Rule) -> None:
        self.rule = rule

    def on_event(self, ctx: EventCtx) -> list[Firing]:
        return []

    def on_tick(self, now_ns: int) -> list[Firing]:
        return []

    def prune(self, watermarks: dict[str, int]) -> None:
        """Drop state that can no longer contribute, given each tenant's newest event time."""

    def baseline_key(self) -> str | None:
        """What the state learned depends on. A rule edited without changing it (its
        severity, its thresholds, its notifiers) keeps its state; ``None``: the state is
        kept only while the whole definition is unchanged."""
        return None

    def dump(self) -> Any:
        return None

    def load(self, data: Any) -> None:
        """Restore what :meth:`dump` returned."""


def group_getters(paths: Iterable[str]) -> list[tuple[str, Getter]]:
    from auditkeep.alerts.fields import compile_path

    return [(p, compile_path(p)) for p in paths]


def group_key_of(getters: list[tuple[str, Getter]], obj: Any) -> tuple[str, dict[str, Any]]:
    """The group key text (``actor.id=alice, source.host=web-1``) and the values by path."""
    if not getters:
        return "", {}
    values: dict[str, Any] = {}
    parts: list[str] = []
    for path, get in getters:
        v = get(obj)
        if v is MISSING:
            v = None
        values[path] = v
        parts.append(f"{path}={key_text(v)}")
    return ", ".join(parts), values


def key_text(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, list):
        return "[" + ",".join(key_text(x) for x in v) + "]"
    t = to_text(v)
    return t if t is not None else render_value(v)


def describe_event(event: dict[str, Any]) -> str:
    """"alice performed user.login on secret db-pass (failure)" for explanations."""
    actor = event.get("actor") or {}
    who = actor.get("name") or actor.get("id") or "someone"
    text = f"{who} performed {event.get('action', '?')}"
    res = event.get("resource") or {}
    target = res.get("name") or res.get("id")
    if target:
        kind = res.get("type")
        text += f" on {kind} {target}" if kind else f" on {target}"
    if event.get("outcome"):
        text += f" ({event['outcome']})"
    return text


#: Default cap on the groups one stateful rule keeps (all tenants together); the least
#: recently touched group is evicted first.
MAX_GROUPS = 100_000


_ABSENT = object()


class GroupTable(dict[tuple[str, str], Any]):
    """Per (tenant, group key) state with least-recently-used eviction past ``cap``.

    A plain dict keeps insertion order; touching a key re-inserts it at the end, so the
    first key is always the least recently used one.
    """

    def __init__(self, cap: int = MAX_GROUPS) -> None:
        super().__init__()
        self.cap = cap

    def touch(self, key: tuple[str, str], factory: Callable[[], Any]) -> Any:
        state = self.pop(key, _ABSENT)
        if state is _ABSENT:
            state = factory()
            if len(self) >= self.cap:
                del self[next(iter(self))]
        self[key] = state
        return state


def native_index(hint: IndexHint | None) -> IndexSpec | None:
    """The engine index for a native condition's hint (a field of the event itself)."""
    if hint is None:
        return None
    from auditkeep.alerts.fields import compile_path, scalars

    get = compile_path(hint.path)

    def extract(event: dict[str, Any]) -> Iterable[Any]:
        return scalars(get(event))

    return IndexSpec(f"event:{hint.path}:{int(hint.lower)}", hint, extract)
