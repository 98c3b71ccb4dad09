"""The search projection of an encrypted store: keyed tokens (HMAC-SHA256 under a tenant's
index key) in place of values, so exact filters and whole-word full text work over
ciphertext while prefixes and substrings do not (docs/encryption.md says what works)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import msgspec

from auditkeep.crypto.atrest import BlindIndex
from auditkeep.ledger.projector import LeafView, _text
from auditkeep.model.errors import ValidationError
from auditkeep.store.base import Entry, ProjectedRow, Query
from auditkeep.store.text_tokens import tokens

_MAX_META_TOKENS = 512  # metadata tokens per entry: a bound on what one event adds to the index


class _Submitter(msgspec.Struct, gc=False):
    kind: str
    id: str | None = None


class _BlindLeaf(LeafView, gc=False):
    """What the blind index reads of a leaf: the projector's view and the submitter. A leaf
    was validated before it was committed; decoding it again as an ``Event`` (patterns and
    limits checked) cost the encrypted projection several µs an event."""

    submitter: _Submitter | None = None


_leaf = msgspec.json.Decoder(_BlindLeaf)
_sealed = msgspec.json.Decoder(dict[str, Any])


class EncryptedSearchError(ValidationError):
    """A search an encrypted store cannot answer (a prefix of an encrypted word or action):
    refused as bad input (HTTP 422, CLI exit 2), naming the filter."""


def _scalar(v: Any) -> str | None:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str | int | float):
        return str(v)
    return None


def _meta_tokens(bi: BlindIndex, prefix: str, value: Any, out: list[str], budget: list[int]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if budget[0] <= 0:
                return
            _meta_tokens(bi, f"{prefix}.{k}" if prefix else str(k), v, out, budget)
        return
    s = _scalar(value)
    if s is not None and prefix:
        out.append(bi.token("m", prefix + "\x00" + s))
        budget[0] -= 1


def token_text(bi: BlindIndex, e: Entry, text: str | None = None) -> str:
    """What the full-text index of an encrypted store holds for an entry: keyed tokens of
    its words (in order, so a phrase still matches), of each dotted prefix of its action, of
    each scalar metadata value under its path, and of its submitter. ``text``: the entry's
    full-text body when the caller has it (the projected row's)."""
    ev = _leaf.decode(e.leaf)
    words = bi.words
    out = [words.get(t) or bi.token("t", t) for t in tokens(_text(ev, e.sealed) if text is None else text)]
    a = ev.action
    i = a.find(".")
    while i >= 0:
        out.append(bi.token("ap", a[: i + 1]))
        i = a.find(".", i + 1)
    budget = [_MAX_META_TOKENS]
    if ev.metadata:
        _meta_tokens(bi, "", ev.metadata, out, budget)
    if e.sealed:
        for path, v in _sealed.decode(e.sealed).items():
            s = _scalar(v)
            if s is not None and path.startswith("metadata."):
                out.append(bi.token("m", path[9:] + "\x00" + s))
    if ev.submitter is not None:
        out.append(bi.token("sk", ev.submitter.kind))
        if ev.submitter.id is not None:
            out.append(bi.token("si", ev.submitter.kind + "\x00" + ev.submitter.id))
    return " ".join(out)


def blind_query(bi: BlindIndex, q: Query) -> Query:
    """``q`` over the tokens an encrypted projection holds."""
    words: list[str] = []
    for word in (q.text or "").split():
        if word.endswith("*") and len(word) > 1:
            raise EncryptedSearchError(
                f"prefix search ({word}) is not available on an encrypted store; search whole words", "text"
            )
        toks = tokens(word)
        # a word of several tokens stays a phrase of their tokens
        words.append("-".join(bi.token("t", t) for t in toks) if toks else bi.token("t", "\x00none"))
    action = q.action
    if action is not None and action.endswith("*"):
        prefix = action[:-1]
        if prefix and not prefix.endswith("."):
            raise EncryptedSearchError(
                f"{action}: on an encrypted store an action prefix ends at a dot (e.g. user.*)", "action"
            )
        if prefix:
            words.append(bi.token("ap", prefix))
        action = None
    elif action is not None:
        action = bi.token("action", action)
    for path, value in q.metadata:
        words.append(bi.token("m", path + "\x00" + value))
    if q.submitter is not None:
        kind, ident = q.submitter
        words.append(bi.token("sk", kind) if ident is None else bi.token("si", kind + "\x00" + ident))
    return replace(
        q,
        actor=None if q.actor is None else bi.token("actor", q.actor),
        action=action,
        resource_type=None if q.resource_type is None else bi.token("rtype", q.resource_type),
        resource_id=None if q.resource_id is None else bi.token("rid", q.resource_id),
        category=None if q.category is None else bi.token("category", q.category),
        text=" ".join(words) or None,
        metadata=(),
        submitter=None,
    )


def blind_row(bi: BlindIndex, row: ProjectedRow, e: Entry) -> ProjectedRow:
    return row._replace(
        actor=bi.token("actor", row.actor),
        action=bi.token("action", row.action),
        resource_type=None if row.resource_type is None else bi.token("rtype", row.resource_type),
        resource_id=None if row.resource_id is None else bi.token("rid", row.resource_id),
        category=None if row.category is None else bi.token("category", row.category),
        text=token_text(bi, e, row.text),
        metadata=None,
    )
