"""Search filters applied to one record in memory (the live tail cannot ask the projection:
it reads by log index). Same meaning as :meth:`Ledger.search`: exact fields, ``action``
prefixes ending in ``*``, every word of ``text`` present (``word*`` a prefix), metadata
equalities where ``200`` matches both the number and the string."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from auditkeep.ledger.ledger import Record
from auditkeep.model.event import Event, parse_submitter_filter
from auditkeep.model.timefmt import parse_rfc3339

_WORD = re.compile(r"\w+", re.UNICODE)

Matcher = Callable[[Record], bool]


def _words(ev: Event) -> set[str]:
    parts: list[str] = [ev.actor.id, ev.action]
    a, r, s = ev.actor, ev.resource, ev.source
    parts += [v for v in (a.name, a.ip, a.session_id) if v]
    if r is not None:
        parts += [v for v in (r.type, r.id, r.name) if v]
    if ev.reason:
        parts.append(ev.reason)
    if s is not None:
        parts += [v for v in (s.service, s.host, s.request_id) if v]
    if ev.metadata:
        _strings(ev.metadata, parts)
    return {w.lower() for p in parts for w in _WORD.findall(p)}


def _strings(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for v in value.values():
            _strings(v, out)
    elif isinstance(value, list):
        for v in value:
            _strings(v, out)


def _text_ok(query: str, ev: Event) -> bool:
    words = _words(ev)
    for term in query.split():
        prefix = term.endswith("*") and len(term) > 1
        tokens = [t.lower() for t in _WORD.findall(term[:-1] if prefix else term)]
        if not tokens:
            continue
        # A term of several tokens (an IP, user.login) needs each of them.
        for i, t in enumerate(tokens):
            last = i == len(tokens) - 1
            if prefix and last:
                if not any(w.startswith(t) for w in words):
                    return False
            elif t not in words:
                return False
    return True


def _meta_value(meta: Mapping[str, Any] | None, path: str) -> Any:
    cur: Any = meta
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return _MISSING
        cur = cur[part]
    return cur


_MISSING = object()


def _scalar_equal(actual: Any, wanted: str) -> bool:
    if isinstance(actual, bool):
        return wanted == ("true" if actual else "false")
    if isinstance(actual, str):
        return actual == wanted
    if isinstance(actual, int | float):
        try:
            return float(wanted) == float(actual)
        except ValueError:
            return False
    return False


def matcher(kwargs: Mapping[str, Any]) -> Matcher:
    """A predicate over records from :func:`auditkeep.query.filters.search_kwargs` output."""
    since, until = kwargs.get("since"), kwargs.get("until")
    rsince, runtil = kwargs.get("received_since"), kwargs.get("received_until")
    action: str | None = kwargs.get("action")
    exact = {k: kwargs[k] for k in ("actor", "resource_type", "resource_id", "outcome", "category") if kwargs.get(k)}
    text: str | None = kwargs.get("text")
    meta: Sequence[tuple[str, str]] = kwargs.get("metadata") or ()
    submitter = parse_submitter_filter(kwargs["submitter"]) if kwargs.get("submitter") else None

    def ok(rec: Record) -> bool:
        ev = rec.event
        if "actor" in exact and ev.actor.id != exact["actor"]:
            return False
        if action is not None:
            if action.endswith("*"):
                if not ev.action.startswith(action[:-1]):
                    return False
            elif ev.action != action:
                return False
        r = ev.resource
        if "resource_type" in exact and (r is None or r.type != exact["resource_type"]):
            return False
        if "resource_id" in exact and (r is None or r.id != exact["resource_id"]):
            return False
        if "outcome" in exact and ev.outcome != exact["outcome"]:
            return False
        if "category" in exact and ev.category != exact["category"]:
            return False
        if since is not None or until is not None:
            t = parse_rfc3339(ev.time or ev.received_at or "")
            if (since is not None and t < since) or (until is not None and t >= until):
                return False
        if rsince is not None or runtil is not None:
            t = parse_rfc3339(ev.received_at or "")
            if (rsince is not None and t < rsince) or (runtil is not None and t >= runtil):
                return False
        if submitter is not None:
            sub = ev.submitter
            if sub is None or sub.kind != submitter[0] or (submitter[1] is not None and sub.id != submitter[1]):
                return False
        for path, value in meta:
            if not _scalar_equal(_meta_value(ev.metadata, path), value):
                return False
        return not (text and not _text_ok(text, ev))

    return ok
