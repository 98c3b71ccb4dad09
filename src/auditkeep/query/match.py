"""Search filters applied to one event in memory, where the projection cannot be asked
(the live tail reads by log index). Same meaning as the stores' SQL: exact fields,
``action`` prefixes ending in ``*``, every word of ``text`` present (``word*`` a prefix),
metadata equalities where ``200`` matches both the number and the string, time bounds
half-open (``since`` included, ``until`` excluded)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from auditkeep.model.event import Event

_WORD = re.compile(r"\w+", re.UNICODE)

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


def text_matches(query: str, ev: Event) -> bool:
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


def meta_value(meta: Mapping[str, Any] | None, path: str) -> Any:
    cur: Any = meta
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return _MISSING
        cur = cur[part]
    return cur


_MISSING = object()


def scalar_equal(actual: Any, wanted: str) -> bool:
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
