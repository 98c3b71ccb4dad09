"""SQL for a search over the SQLite projection (``ix.ev``, ``ix.ev_fts``)."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import Any

from auditkeep.store.base import Query
from auditkeep.store.sql_filters import column_filters
from auditkeep.store.sqlite_fulltext import PUBLIC, TABLES


def fts_words(text: str) -> list[str]:
    """A user's words as FTS5 queries, one a word; ``word*`` is a prefix.

    Each word becomes a quoted phrase, so punctuation (an IP, a path, ``user.login``) is
    matched as a phrase of its tokens instead of being a syntax error.
    """
    parts: list[str] = []
    for word in text.split():
        prefix = word.endswith("*") and len(word) > 1
        if prefix:
            word = word[:-1]
        phrase = '"' + word.replace('"', '""') + '"'
        parts.append(phrase + ("*" if prefix else ""))
    return parts or ['""']


def fts_query(text: str) -> str:
    """A user's words as one FTS5 query: every word must occur."""
    return " AND ".join(fts_words(text))


def json_path(path: str) -> str:
    return "$." + ".".join('"' + p.replace('"', '\\"') + '"' for p in path.split("."))


def scalar_alternatives(value: str) -> list[Any]:
    """The SQL values a metadata filter ``value`` may equal: the string, and a number or
    boolean when it reads as one (``status=200`` matches both 200 and "200")."""
    alts: list[Any] = [value]
    if value in ("true", "false"):
        alts.append(1 if value == "true" else 0)
    else:
        try:
            alts.append(int(value))
        except ValueError:
            with contextlib.suppress(ValueError):
                alts.append(float(value))
    return alts


# A text query matching at least this many entries is answered by walking the time index
# (newest first) and stopping at the page size; below it, the matches are sorted directly.
COMMON_TEXT = 2000


def text_probe(q: Query, personal: bool = True) -> tuple[str, list[Any]]:
    """SQL counting the text query's matches (all its words among the public or among the
    personal words: an estimate, for the plan), up to COMMON_TEXT + 1."""
    query = fts_query(q.text or "")
    tables = TABLES if personal else (PUBLIC,)
    union = " UNION ALL ".join(f"SELECT rowid FROM ix.{t} WHERE {t} MATCH ?" for t in tables)
    return f"SELECT count(*) FROM ({union} LIMIT ?)", [*([query] * len(tables)), COMMON_TEXT + 1]


# One word of a text query, found in any index (store/sqlite_fulltext.py): an event matches
# when each word is among its public or its personal words.
_EITHER = "ev.k IN (" + " UNION ALL ".join(f"SELECT rowid FROM ix.{t} WHERE {t} MATCH ?" for t in TABLES) + ")"


def search_where(q: Query, personal: bool = True) -> tuple[list[str], list[Any]]:
    """Conditions (to AND together) on ``ix.ev AS ev`` and their parameters: every filter of
    ``q`` except the keyset cursor, shared by the search and its aggregates. ``personal``:
    the projection keeps personal words in ``ev_pfts*`` (an index.db of the older layout,
    read as it is, has every word in ``ev_fts``)."""
    where, params = column_filters(q, "?")
    if q.text and not personal:
        where.append("ev.k IN (SELECT rowid FROM ix.ev_fts WHERE ev_fts MATCH ?)")
        params.append(fts_query(q.text))
    elif q.text:
        for word in fts_words(q.text):
            where.append(_EITHER)
            params += [word] * len(TABLES)
    for path, value in q.metadata:
        full = "metadata." + path
        if full in q.sealed_paths:
            expr = "json_extract(CAST(e.sealed AS TEXT), ?)"
            params_path = '$."' + full.replace('"', '\\"') + '"'  # sealed keys are whole paths
        else:
            expr = "json_extract(CAST(e.leaf AS TEXT), ?)"
            params_path = json_path(full)
        alts = scalar_alternatives(value)
        ors = " OR ".join(["v = ?"] * len(alts))
        where.append(
            f"EXISTS (SELECT 1 FROM (SELECT {expr} AS v FROM main.entries e WHERE e.k = ev.k) WHERE {ors})"
        )
        params.append(params_path)
        params += alts
    if q.submitter is not None:
        kind, ident = q.submitter
        cond = "json_extract(CAST(e.leaf AS TEXT), '$.submitter.kind') = ?"
        params.append(kind)
        if ident is not None:
            cond += " AND json_extract(CAST(e.leaf AS TEXT), '$.submitter.id') = ?"
            params.append(ident)
        where.append(f"EXISTS (SELECT 1 FROM main.entries e WHERE e.k = ev.k AND {cond})")
    return where, params


def build_search(q: Query, common_text: bool = False, personal: bool = True) -> tuple[str, list[Any]]:
    """The search SQL. ``common_text``: the text query matches many entries (see
    :func:`text_probe`), so walk the time index instead of sorting every match — the
    planner cannot know this, and sorting 100k matches costs seconds."""
    where, params = search_where(q, personal)
    if q.after is not None:
        op = "<" if q.newest_first else ">"
        where.append(f"(ev.time_ns, ev.k) {op} (?, ?)")
        params += [q.after[0], q.after[1]]
    order = "DESC" if q.newest_first else "ASC"
    narrower = q.actor is not None or q.action is not None or q.resource_type is not None
    hint = " INDEXED BY ev_when" if common_text and not narrower else ""
    sql = (
        f"SELECT ev.time_ns, ev.k FROM ix.ev AS ev{hint} WHERE "
        + " AND ".join(where)
        + f" ORDER BY ev.time_ns {order}, ev.k {order} LIMIT ?"
    )
    params.append(q.limit)
    return sql, params


def build_time_span(q: Query, personal: bool = True) -> tuple[str, list[Any]]:
    """SQL of the earliest and latest event time of the matches (NULLs when none)."""
    where, params = search_where(q, personal)
    return "SELECT min(ev.time_ns), max(ev.time_ns) FROM ix.ev AS ev WHERE " + " AND ".join(where), params


def build_count_by_time(q: Query, origin_ns: int, step_ns: int, personal: bool = True) -> tuple[str, list[Any]]:
    """SQL counting the matches per (time bucket, outcome): bucket ``i`` is
    [origin + i*step, origin + (i+1)*step). Matches before ``origin_ns`` are left out (SQLite's
    integer division truncates toward zero, so they would land in bucket 0)."""
    # the origin becomes the lower time bound (not a second condition on time_ns, which
    # led SQLite's planner to the time index over a narrower one such as ev_who)
    since = origin_ns if q.since_ns is None else max(q.since_ns, origin_ns)
    where, params = search_where(replace(q, since_ns=since), personal)
    sql = (
        "SELECT (ev.time_ns - ?) / ?, ev.outcome, count(*) FROM ix.ev AS ev WHERE "
        + " AND ".join(where)
        + " GROUP BY 1, 2"
    )
    return sql, [origin_ns, step_ns, *params]
