"""Capture policy: which events are kept, and how much of each, before anything is hashed.

In the spirit of the Kubernetes audit ``Policy``: an ordered list of rules, the first that
matches decides; a rule's ``level`` is ``none`` (drop the event), ``metadata`` (drop request
and response bodies), ``request`` (drop response bodies) or ``full``; ``omit_stages`` drops
Kubernetes events of the listed stages. Rules are compiled once into matchers, so an
evaluation costs a few microseconds. The format is documented in ``docs/policy.md``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from auditkeep.model import ACTOR_TYPES, OUTCOMES, Event
from auditkeep.policy.types import DROPPED_KEY, LEVELS, Level, PolicyError

K8S_STAGES: tuple[str, ...] = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")

DEFAULT_BODY_PATHS: dict[str, dict[str, tuple[str, ...]]] = {
    "*": {"request": ("metadata.request.body",), "response": ("metadata.response.body",)},
    "kubernetes": {
        "request": ("metadata.k8s.requestObject",),
        "response": ("metadata.k8s.responseObject",),
    },
    "cloudtrail": {
        "request": ("metadata.cloudtrail.requestParameters",),
        "response": ("metadata.cloudtrail.responseElements",),
    },
    "mcp-gateway": {"request": ("metadata.mcp.arguments",), "response": ()},
}
"""Where each source keeps request and response bodies; ``*`` applies to every source."""

_MATCH_FIELDS = (
    "sources",
    "tenants",
    "actors",
    "actor_types",
    "groups",
    "actions",
    "resource_types",
    "outcomes",
)
_RULE_KEYS = frozenset({"name", "level", "omit_stages", *_MATCH_FIELDS})
_TOP_KEYS = frozenset({"default", "omit_stages", "body_paths", "rules"})


class Glob:
    """A set of patterns where ``*`` matches any run of characters (dots included):
    ``k8s.secrets.*``, ``system:serviceaccount:kube-system:*``. Exact names are a set
    lookup, ``prefix*`` a startswith, anything else one combined regex."""

    __slots__ = ("exact", "patterns", "prefixes", "regex")

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(patterns)
        exact: set[str] = set()
        prefixes: list[str] = []
        others: list[str] = []
        for p in self.patterns:
            stars = p.count("*")
            if stars == 0:
                exact.add(p)
            elif stars == 1 and p.endswith("*"):
                prefixes.append(p[:-1])
            else:
                others.append(".*".join(re.escape(part) for part in p.split("*")))
        self.exact = frozenset(exact)
        self.prefixes = tuple(prefixes)
        self.regex = re.compile("|".join(f"(?:{o})" for o in others), re.S) if others else None

    def __call__(self, text: str) -> bool:
        if text in self.exact:
            return True
        if self.prefixes and text.startswith(self.prefixes):
            return True
        return self.regex is not None and self.regex.fullmatch(text) is not None

    def any(self, texts: Iterable[Any]) -> bool:
        return any(isinstance(t, str) and self(t) for t in texts)


@dataclass(frozen=True, slots=True)
class Decision:
    """What the policy decided for one event."""

    level: Level
    rule: int | None  # index of the rule that matched; None: the default applied
    name: str | None  # that rule's name, if it has one
    omit: bool  # drop the event (level none, or an omitted stage)
    drop_paths: tuple[str, ...]  # what apply() removes from the event


_Check = Callable[[Event, str], bool]


@dataclass(frozen=True, slots=True)
class Rule:
    level: Level
    name: str | None
    omit_stages: frozenset[str]
    checks: tuple[_Check, ...]
    spec: Mapping[str, Any]  # as configured, for display


def _field_check(field: str, glob: Glob) -> _Check:
    """A predicate over one event field; an event without the field never matches."""
    if field == "sources":
        return lambda ev, src: glob(src)
    if field == "tenants":
        return lambda ev, src: ev.tenant is not None and glob(ev.tenant)
    if field == "actors":
        return lambda ev, src: glob(ev.actor.id)
    if field == "actor_types":
        return lambda ev, src: ev.actor.type is not None and glob(ev.actor.type)
    if field == "actions":
        return lambda ev, src: glob(ev.action)
    if field == "resource_types":
        return lambda ev, src: (
            ev.resource is not None and ev.resource.type is not None and glob(ev.resource.type)
        )
    if field == "outcomes":
        return lambda ev, src: glob(ev.outcome or "unknown")
    if field == "groups":

        def groups(ev: Event, src: str) -> bool:
            g = ev.metadata.get("groups") if ev.metadata else None
            return isinstance(g, list) and glob.any(g)

        return groups
    raise AssertionError(field)  # pragma: no cover - the keys are checked before


def _strings(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        raise PolicyError(where, "expected a list of non-empty strings")
    return list(value)


def _level(value: Any, where: str) -> Level:
    if value not in LEVELS:
        raise PolicyError(where, f"expected one of {', '.join(LEVELS)}, got {value!r}")
    return cast(Level, value)


def _stages(value: Any, where: str) -> frozenset[str]:
    stages = _strings(value, where)
    for s in stages:
        if s not in K8S_STAGES:
            raise PolicyError(where, f"unknown stage {s!r} (one of {', '.join(K8S_STAGES)})")
    return frozenset(stages)


def _compile_rule(spec: Any, where: str) -> Rule:
    if not isinstance(spec, Mapping):
        raise PolicyError(where, "a rule is a mapping")
    unknown = set(spec) - _RULE_KEYS
    if unknown:
        raise PolicyError(where, f"unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    if "level" not in spec:
        raise PolicyError(f"{where}.level", "required")
    level = _level(spec["level"], f"{where}.level")
    checks: list[_Check] = []
    for field in _MATCH_FIELDS:
        if field not in spec:
            continue
        values = _strings(spec[field], f"{where}.{field}")
        if field == "actor_types":
            _only(values, ACTOR_TYPES, f"{where}.{field}")
        if field == "outcomes":
            _only(values, OUTCOMES, f"{where}.{field}")
        checks.append(_field_check(field, Glob(values)))
    name = spec.get("name")
    if name is not None and not isinstance(name, str):
        raise PolicyError(f"{where}.name", "expected a string")
    omit = (
        _stages(spec["omit_stages"], f"{where}.omit_stages")
        if "omit_stages" in spec
        else frozenset()
    )
    return Rule(level, name, omit, tuple(checks), dict(spec))


def _only(values: Sequence[str], allowed: Sequence[str], where: str) -> None:
    for v in values:
        if "*" not in v and v not in allowed:
            raise PolicyError(where, f"unknown value {v!r} (one of {', '.join(allowed)})")


class CapturePolicy:
    """An ordered rule list; the first matching rule decides. See ``docs/policy.md``."""

    def __init__(
        self,
        rules: Sequence[Mapping[str, Any]] = (),
        *,
        default: Level = "full",
        omit_stages: Iterable[str] = (),
        body_paths: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
    ) -> None:
        self.default = _level(default, "default")
        self.omit_stages = _stages(list(omit_stages), "omit_stages") if omit_stages else frozenset()
        self.rules = tuple(_compile_rule(r, f"rules[{i}]") for i, r in enumerate(rules))
        paths: dict[str, dict[str, tuple[str, ...]]] = {
            k: dict(v) for k, v in DEFAULT_BODY_PATHS.items()
        }
        for src, kinds in (body_paths or {}).items():
            where = f"body_paths.{src}"
            if not isinstance(kinds, Mapping) or set(kinds) - {"request", "response"}:
                raise PolicyError(
                    where, "expected a mapping with request and/or response path lists"
                )
            entry = paths.setdefault(str(src), {})
            for kind, plist in kinds.items():
                entry[kind] = tuple(
                    _path(p, f"{where}.{kind}") for p in _strings(plist, f"{where}.{kind}")
                )
        self.body_paths = paths
        self._drops: dict[tuple[str, Level], tuple[str, ...]] = {}

    # -- loading

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> CapturePolicy:
        """From the ``capture`` mapping of a policy file (keys: default, omit_stages,
        body_paths, rules)."""
        if not isinstance(config, Mapping):
            raise PolicyError("capture", "expected a mapping")
        unknown = set(config) - _TOP_KEYS
        if unknown:
            raise PolicyError("capture", f"unknown key(s) {', '.join(sorted(map(str, unknown)))}")
        rules = config.get("rules") or []
        if not isinstance(rules, list):
            raise PolicyError("capture.rules", "expected a list")
        try:
            return cls(
                rules,
                default=config.get("default", "full"),
                omit_stages=_strings(config["omit_stages"], "omit_stages")
                if "omit_stages" in config
                else (),
                body_paths=config.get("body_paths"),
            )
        except PolicyError as exc:
            raise PolicyError(f"capture.{exc.where}", exc.message) from None

    @classmethod
    def from_yaml(cls, text: str) -> CapturePolicy:
        """From YAML text: either the capture mapping itself or a file with a ``capture`` key."""
        doc = _yaml(text)
        return cls.from_dict(doc.get("capture", doc) if isinstance(doc, Mapping) else doc)

    @classmethod
    def load(cls, path: str | Path) -> CapturePolicy:
        return cls.from_yaml(Path(path).read_text(encoding="utf-8"))

    # -- use

    def evaluate(self, event: Event, source: str) -> Decision:
        """The decision for ``event`` from ``source``; the event is not changed."""
        for i, rule in enumerate(self.rules):
            for check in rule.checks:
                if not check(event, source):
                    break
            else:
                return self._decide(event, source, rule.level, i, rule.name, rule.omit_stages)
        return self._decide(event, source, self.default, None, None, frozenset())

    def _decide(
        self,
        event: Event,
        source: str,
        level: Level,
        index: int | None,
        name: str | None,
        omit: frozenset[str],
    ) -> Decision:
        if level == "none":
            return Decision(level, index, name, True, ())
        stages = self.omit_stages | omit if omit else self.omit_stages
        if stages:
            k8s = event.metadata.get("k8s") if event.metadata else None
            stage = k8s.get("stage") if isinstance(k8s, dict) else None
            if stage in stages:
                return Decision(level, index, name, True, ())
        return Decision(level, index, name, False, self._drop_paths(source, level))

    def _drop_paths(self, source: str, level: Level) -> tuple[str, ...]:
        key = (source, level)
        got = self._drops.get(key)
        if got is None:
            kinds = (
                ()
                if level == "full"
                else ("response",)
                if level == "request"
                else ("request", "response")
            )
            paths: list[str] = []
            for scope in ("*", source):
                entry = self.body_paths.get(scope, {})
                for kind in kinds:
                    paths.extend(p for p in entry.get(kind, ()) if p not in paths)
            got = self._drops[key] = tuple(paths)
        return got

    def apply(self, event: Event, source: str) -> Event | None:
        """The event as the policy keeps it (changed in place), or None when dropped.

        Removed bodies are listed, sorted, under ``metadata._dropped``."""
        d = self.evaluate(event, source)
        if d.omit:
            return None
        if d.drop_paths and event.metadata:
            removed = [p for p in d.drop_paths if _remove(event, p)]
            if removed:
                prior = event.metadata.get(DROPPED_KEY)
                merged = set(removed)
                if isinstance(prior, list):
                    merged.update(p for p in prior if isinstance(p, str))
                event.metadata[DROPPED_KEY] = sorted(merged)
        return event

    __call__ = apply


def _remove(event: Event, path: str) -> bool:
    parent_path, _, last = path.rpartition(".")
    node: Any = event.metadata
    for key in parent_path.split(".")[1:]:
        if not isinstance(node, dict):
            return False
        node = node.get(key)
    if isinstance(node, dict) and last in node:
        del node[last]
        return True
    return False


def _path(p: str, where: str) -> str:
    if not p.startswith("metadata.") or ".." in p or p.endswith("."):
        raise PolicyError(where, f"body path {p!r} must be a dotted path under metadata.")
    return p


def _yaml(text: str) -> Any:
    import yaml  # only needed to read files

    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise PolicyError("", f"not valid YAML: {exc}") from None
