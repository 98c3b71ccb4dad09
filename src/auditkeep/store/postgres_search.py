"""Search over the PostgreSQL projection (``ev``): full text and metadata as SQLite has them.

Full text mirrors SQLite's FTS5 ``unicode61 remove_diacritics 2`` tokenizer: a token is a run
of letters and digits, case-folded, diacritics removed. The tokens are computed here, in
Python, for the stored text and for the query alike, and the stored ``tsvector`` is built
from them directly (binary), so PostgreSQL's own parser (which keeps ``10.0.0.1`` or
``user.login`` as one token) never decides what a word is. A query word is a phrase of its
tokens (``user.login`` finds the two adjacent tokens), ``word*`` makes the last token a
prefix, and every word must match.

Metadata equality uses ``jsonb`` containment on the projection's ``meta`` column (GIN
indexed); a sealed personal field is matched in the entry's ``sealed`` JSON, keyed by the
whole path.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from psycopg.types.json import Jsonb

from auditkeep.store.base import Query
from auditkeep.store.sql_filters import column_filters
from auditkeep.store.text_tokens import tokens

MAX_POSITIONS = 255  # per lexeme (PostgreSQL keeps at most 256)
MAX_POSITION = 16383


def tsvector_binary(text: str) -> bytes:
    """``text`` as a tsvector in PostgreSQL's binary wire format (for binary COPY): lexemes
    sorted, each with its ascending word positions."""
    positions: dict[str, list[int]] = {}
    for pos, tok in enumerate(tokens(text), start=1):
        if pos > MAX_POSITION:
            break
        found = positions.get(tok)
        if found is None:
            positions[tok] = [pos]
        elif len(found) < MAX_POSITIONS:
            found.append(pos)
    out = [struct.pack("!i", len(positions))]
    for lexeme in sorted(positions):  # code point order is UTF-8 byte order
        pos_list = positions[lexeme]
        out.append(lexeme.encode() + b"\x00")
        out.append(struct.pack(f"!H{len(pos_list)}H", len(pos_list), *pos_list))
    return b"".join(out)


def _lexeme(token: str) -> str:
    return "'" + token.replace("\\", "\\\\").replace("'", "''") + "'"


def tsquery(text: str) -> str | None:
    """The tsquery text of a user's words, or None when a word has no token (matches nothing,
    as in SQLite)."""
    parts: list[str] = []
    for word in text.split():
        prefix = word.endswith("*") and len(word) > 1
        if prefix:
            word = word[:-1]
        toks = tokens(word)
        if not toks:
            return None
        lexemes = [_lexeme(t) for t in toks]
        if prefix:
            lexemes[-1] += ":*"
        parts.append("(" + " <-> ".join(lexemes) + ")" if len(lexemes) > 1 else lexemes[0])
    return " & ".join(parts) if parts else None


def _number(value: str) -> int | float | None:
    if value in ("true", "false"):
        return 1 if value == "true" else 0
    try:
        return int(value)
    except ValueError:
        pass
    try:
        f = float(value)
    except ValueError:
        return None
    return f if math.isfinite(f) else None  # NaN and infinities are not JSON numbers


def scalar_alternatives(value: str) -> list[Any]:
    """The JSON values a metadata filter ``value`` may equal, as in SQLite (where
    ``json_extract`` turns true/false into 1/0): the string, and a number or boolean when it
    reads as one (``status=200`` matches both 200 and "200")."""
    alts: list[Any] = [value]
    number = _number(value)
    if number is not None:
        alts.append(number)
        if number in (0, 1):
            alts.append(number == 1)
    return alts


def nest(path: Sequence[str], value: Any) -> Any:
    doc = value
    for key in reversed(path):
        doc = {key: doc}
    return doc


def pg_text(value: str) -> str:
    """PostgreSQL text cannot hold NUL; the projection keeps U+FFFD in its place, and a
    search maps its values the same way."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def search_where(q: Query) -> tuple[list[str], list[Any]] | None:
    """Conditions (to AND together) on ``ev`` and their parameters: every filter of ``q``
    except the keyset cursor, shared by the search and its aggregates; None when the search
    cannot match anything."""
    where, params = column_filters(q, "%s", pg_text)
    if q.text:
        tsq = tsquery(q.text)
        if tsq is None:
            return None
        where.append("ev.tsv @@ %s::tsquery")
        params.append(tsq)
    for path, value in q.metadata:
        full = "metadata." + path
        alts = scalar_alternatives(pg_text(value))
        if full in q.sealed_paths:
            # Sealed values live beside the leaf, keyed by the whole path; the join on
            # received_ns lets PostgreSQL probe one partition only.
            # jsonb refuses the escape \u0000; the search value maps NUL the same way.
            sealed = "replace(convert_from(e.sealed, 'UTF8'), '\\u0000', '\\ufffd')::jsonb"
            ors = " OR ".join([f"{sealed} @> %s"] * len(alts))
            where.append(
                "EXISTS (SELECT 1 FROM entries e WHERE e.k = ev.k AND e.received_ns = ev.received_ns "
                f"AND e.sealed IS NOT NULL AND ({ors}))"
            )
            params += [Jsonb({pg_text(full): a}) for a in alts]
        else:
            keys = [pg_text(k) for k in path.split(".")]
            where.append("(" + " OR ".join(["ev.meta @> %s"] * len(alts)) + ")")
            params += [Jsonb(nest(keys, a)) for a in alts]
    if q.submitter is not None:
        kind, ident = q.submitter
        wanted = {"kind": kind, **({"id": pg_text(ident)} if ident is not None else {})}
        leaf = "replace(convert_from(e.leaf, 'UTF8'), '\\u0000', '\\ufffd')::jsonb"
        where.append(
            "EXISTS (SELECT 1 FROM entries e WHERE e.k = ev.k AND e.received_ns = ev.received_ns "
            f"AND {leaf} @> %s)"
        )
        params.append(Jsonb({"submitter": wanted}))
    return where, params


def build_search(q: Query) -> tuple[str, list[Any]] | None:
    """SQL and parameters of a search, or None when it cannot match anything."""
    built = search_where(q)
    if built is None:
        return None
    where, params = built
    if q.after is not None:
        op = "<" if q.newest_first else ">"
        where.append(f"(ev.time_ns, ev.k) {op} (%s, %s)")
        params += [q.after[0], q.after[1]]
    order = "DESC" if q.newest_first else "ASC"
    sql = (
        "SELECT ev.time_ns, ev.k FROM ev WHERE "
        + " AND ".join(where)
        + f" ORDER BY ev.time_ns {order}, ev.k {order} LIMIT %s"
    )
    params.append(q.limit)
    return sql, params


def build_time_span(q: Query) -> tuple[str, list[Any]] | None:
    """SQL of the earliest and latest event time of the matches, or None when nothing can match."""
    built = search_where(q)
    if built is None:
        return None
    where, params = built
    return "SELECT min(ev.time_ns), max(ev.time_ns) FROM ev WHERE " + " AND ".join(where), params


def build_count_by_time(q: Query, origin_ns: int, step_ns: int) -> tuple[str, list[Any]] | None:
    """SQL counting the matches per (time bucket, outcome): bucket ``i`` is
    [origin + i*step, origin + (i+1)*step); matches before ``origin_ns`` are left out. None
    when nothing can match."""
    since = origin_ns if q.since_ns is None else max(q.since_ns, origin_ns)
    built = search_where(replace(q, since_ns=since))  # the origin is the lower time bound
    if built is None:
        return None
    where, params = built
    sql = (
        "SELECT (ev.time_ns - %s::bigint) / %s::bigint, ev.outcome, count(*) FROM ev WHERE "
        + " AND ".join(where)
        + " GROUP BY 1, 2"
    )
    return sql, [origin_ns, step_ns, *params]
