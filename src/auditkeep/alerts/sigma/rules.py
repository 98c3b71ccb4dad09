"""Sigma rules (detection and correlation documents) loaded unchanged into engine rules.

A detection rule referenced by a correlation is part of that correlation and raises no
alert of its own, unless the correlation says ``generate: true`` (per the correlation
specification). Correlations may reference each other (chains); the outermost one alerts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditkeep.alerts.conditions import IndexHint
from auditkeep.alerts.errors import RuleError
from auditkeep.alerts.evaluators import (
    Evaluator,
    EventCtx,
    Firing,
    IndexSpec,
    group_getters,
    group_key_of,
)
from auditkeep.alerts.fields import MISSING, render_value, scalars
from auditkeep.alerts.rules import Rule, fingerprint_of, parse_severity
from auditkeep.alerts.sigma.detection import Detection, compile_detection
from auditkeep.alerts.sigma.logsource import Mapping, resolve_logsource
from auditkeep.alerts.timeutil import parse_duration
from auditkeep.alerts.yamlsrc import line_of, plain

_MISS = object()
SIGMA_GROUP_BY = ("actor.id",)
CORRELATION_TYPES = ("event_count", "value_count", "temporal", "temporal_ordered")


@dataclass
class SigmaDetectionSpec:
    title: str
    mapping: Mapping
    detection: Detection
    name: str | None = None

    def make_evaluator(self, rule: Rule) -> Evaluator:
        return SigmaDetectionEvaluator(rule, self)

    def hit(self, ctx: EventCtx) -> Any:
        """The subject that satisfies the detection in this event, or ``None``; computed
        once per event however many rules ask."""
        key = ("sigma", id(self))
        memo = ctx.memo
        found = memo.get(key, _MISS)
        if found is _MISS:
            found = None
            for subject in subjects_of(self.mapping, ctx):
                if self.detection.test(subject):
                    found = subject
                    break
            memo[key] = found
        return found


def subjects_of(mapping: Mapping, ctx: EventCtx) -> list[Any]:
    key = ("subjects", mapping.kind)
    subs = ctx.memo.get(key)
    if subs is None:
        subs = ctx.memo[key] = mapping.subjects(ctx.event)
    return list(subs)


def _index_for(spec: SigmaDetectionSpec) -> IndexSpec | None:
    hint = spec.detection.hint
    if hint is None:
        return None
    field_name, values = hint
    get = spec.mapping.getter(field_name)
    mapping = spec.mapping

    def extract(event: dict[str, Any]) -> list[Any]:
        subjects = mapping.subjects(event)
        if len(subjects) == 1:
            v = get(subjects[0])
            if v.__class__ is str:
                return [v]
            return [] if v is MISSING else list(scalars(v))
        out: list[Any] = []
        for s in subjects:
            v = get(s)
            if v is not MISSING:
                out.extend(scalars(v))
        return out

    return IndexSpec(f"{mapping.kind}:{field_name}:1", IndexHint(field_name, True, values), extract)


class SigmaDetectionEvaluator(Evaluator):
    def __init__(self, rule: Rule, spec: SigmaDetectionSpec) -> None:
        super().__init__(rule)
        self.spec = spec
        self.kinds = frozenset({spec.mapping.kind}) if spec.mapping.scoped else None
        self.index = _index_for(spec)
        self.shown = [(f, spec.mapping.getter(f)) for f in spec.detection.fields]
        # A detection has no group-by of its own: its alerts are grouped by who acted, as
        # throttles and notifications of native rules usually are.
        self.groups = group_getters(SIGMA_GROUP_BY)
        label = spec.mapping.label
        self.what = f"{'an' if label[:1].lower() in 'aeiou' else 'a'} {label} event"

    def on_event(self, ctx: EventCtx) -> list[Firing]:
        subject = self.spec.hit(ctx)
        if subject is None:
            return []
        key, fields = group_key_of(self.groups, ctx.event)
        if self.spec.mapping.kind == "auditd" and isinstance(subject, dict) and "type" in subject:
            fields["type"] = subject["type"]
        for name, get in self.shown:
            v = get(subject)
            if v is not MISSING:
                fields[name] = v
        shown = ", ".join(
            f"{k}={render_value(v, 80)}" for k, v in list(fields.items())[len(self.groups) :][:6]
        )
        text = f"Sigma rule \u201c{self.spec.title}\u201d matched {self.what}"
        text += f" ({shown})." if shown else "."
        return [
            Firing(
                tenant=ctx.tenant,
                group_key=key,
                trigger_index=ctx.index,
                first_index=ctx.index,
                event_ids=[ctx.event_id],
                count=1,
                time_ns=ctx.time_ns,
                explanation=text,
                fields=fields,
                title=self.spec.title,
            )
        ]


# -- loading ----------------------------------------------------------------------------


@dataclass
class SigmaDoc:
    doc: dict[str, Any]
    file: str | None
    line: int | None
    index: int = 0


@dataclass
class _Compiled:
    doc: SigmaDoc
    rule_id: str
    spec: Any  # SigmaDetectionSpec | SigmaCorrelationSpec
    refs: list[_Compiled] = field(default_factory=list)
    generate: bool = False
    fingerprint: str = ""


def _rule_id(doc: SigmaDoc) -> str:
    for key in ("id", "name"):
        v = doc.doc.get(key)
        if isinstance(v, str) and v:
            return v
    stem = Path(doc.file).stem if doc.file else "inline"
    return f"sigma-{stem}-{doc.index + 1}"


def _error(doc: SigmaDoc, exc: RuleError, rid: str | None) -> RuleError:
    return RuleError(exc.reason, file=doc.file, line=exc.line or doc.line, rule_id=rid)


def compile_sigma(docs: Iterable[SigmaDoc]) -> tuple[list[Rule], list[RuleError]]:
    """Compile Sigma documents (detections and correlations together, so references
    resolve); the rules that alert and the refusals, each with its reason."""
    errors: list[RuleError] = []
    detections: dict[str, _Compiled] = {}
    names: dict[str, str] = {}
    correlations: list[SigmaDoc] = []
    for d in docs:
        rid = _rule_id(d)
        if "correlation" in d.doc:
            correlations.append(d)
            continue
        try:
            spec = _detection_spec(d.doc)
        except RuleError as exc:
            errors.append(_error(d, exc, rid))
            continue
        if rid in detections:
            errors.append(RuleError(f"duplicate rule id {rid!r}", file=d.file, line=d.line, rule_id=rid))
            continue
        detections[rid] = _Compiled(d, rid, spec, fingerprint=fingerprint_of(d.doc))
        if spec.name:
            names[spec.name] = rid
    compiled_corr = _compile_correlations(correlations, detections, names, errors)
    # a correlation's detections alert through it, not on their own (unless it generates them)
    referenced = {r.rule_id for c in compiled_corr.values() if not c.generate for r in c.refs}
    rules = [_rule(c) for c in [*detections.values(), *compiled_corr.values()] if c.rule_id not in referenced]
    return rules, errors


def _detection_spec(doc: dict[str, Any]) -> SigmaDetectionSpec:
    """A Sigma detection rule's spec, or a RuleError saying why it is refused."""
    if "filter" in doc and "detection" not in doc:
        raise RuleError("Sigma filters (meta filters) are not supported")
    if "detection" not in doc:
        raise RuleError("not a Sigma rule: no 'detection' or 'correlation'")
    title = doc.get("title")
    if not isinstance(title, str) or not title:
        raise RuleError("a Sigma rule needs a 'title'", line=line_of(doc, "title"))
    if "logsource" not in doc:
        raise RuleError("a Sigma rule needs a 'logsource'")
    try:
        mapping = resolve_logsource(doc["logsource"])
    except RuleError as exc:
        raise RuleError(exc.reason, line=line_of(doc, "logsource")) from None
    detection = compile_detection(doc["detection"], mapping)
    name = doc.get("name") if isinstance(doc.get("name"), str) else None
    spec = SigmaDetectionSpec(title, mapping, detection, name)
    parse_severity(doc.get("level", "medium"), doc, "level")
    return spec


def _compile_correlations(
    correlations: list[SigmaDoc], detections: dict[str, _Compiled], names: dict[str, str], errors: list[RuleError]
) -> dict[str, _Compiled]:
    """Every correlation that compiles (refusals appended to ``errors``); a correlation may
    reference detections and other correlations, by id or by name, but not in a cycle."""
    from auditkeep.alerts.sigma.correlation import compile_correlation

    corr_docs = {_rule_id(d): d for d in correlations}
    for d in correlations:
        n = d.doc.get("name")
        if isinstance(n, str) and n:
            names.setdefault(n, _rule_id(d))
    compiled_corr: dict[str, _Compiled] = {}
    failed: dict[str, str] = {}

    def build(rid: str, stack: tuple[str, ...]) -> _Compiled:
        if rid in compiled_corr:
            return compiled_corr[rid]
        if rid in failed:
            raise RuleError(failed[rid])
        d = corr_docs[rid]
        if rid in stack:
            raise RuleError(f"correlation references form a cycle: {' -> '.join((*stack, rid))}")

        def resolve(ref: str) -> _Compiled:
            target = ref if ref in detections or ref in corr_docs else names.get(ref, ref)
            if target in detections:
                return detections[target]
            if target in corr_docs:
                try:
                    return build(target, (*stack, rid))
                except RuleError as exc:
                    raise RuleError(f"referenced correlation {ref!r} was refused: {exc.reason}") from None
            raise RuleError(f"referenced rule {ref!r} is not loaded (or was refused)")

        try:
            c = compile_correlation(d, rid, resolve)
        except RuleError as exc:
            failed[rid] = exc.reason
            raise
        compiled_corr[rid] = c
        return c

    for d in correlations:
        rid = _rule_id(d)
        try:
            build(rid, ())
        except RuleError as exc:
            if rid not in failed:
                failed[rid] = exc.reason
            errors.append(_error(d, exc, rid))
    return compiled_corr


def _rule(c: _Compiled) -> Rule:
    doc = c.doc.doc
    tags = doc.get("tags") if isinstance(doc.get("tags"), list) else []
    desc = doc.get("description")
    return Rule(
        id=c.rule_id,
        name=str(doc.get("title") or c.rule_id),
        kind="sigma" if isinstance(c.spec, SigmaDetectionSpec) else "sigma_correlation",
        spec=c.spec,
        description=desc if isinstance(desc, str) else "",
        severity=parse_severity(doc.get("level", "medium"), doc, "level"),
        tags=tuple(str(t) for t in (tags or [])),
        file=c.doc.file,
        line=c.doc.line,
        definition=plain(doc),
        fingerprint=c.fingerprint or fingerprint_of(doc),
    )


def sigma_timespan(value: Any) -> int:
    if not isinstance(value, str):
        raise RuleError("'timespan' must be a duration such as 10m, 1h or 1d")
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise RuleError(f"'timespan': {exc}") from None
