"""The projection takes the words of an event's metadata from its JSON text instead of decoding
it: the full text it indexes (and that erasure and retention give back to forget an entry) is
the text of the decoded walk, word for word, whatever the metadata holds."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import msgspec

from auditkeep.ledger import Ledger
from auditkeep.ledger.projector import (
    TEXT_LIMIT,
    _leaf_decoder,
    _text,
    project_entry,
    project_erased,
    projected_text,
)
from auditkeep.store.base import Entry

TRICKY = ["", " ", ":", '":', '"a":"b"', "a\\b", '{"x": 1}', "[1, 2]", "tab\there", "line\nbreak",
          "é ü ß", "日本語", "emoji 🎉", "k:v", "  : spaced", "\\", '"', "null", "true", "0"]


def _value(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth > 0 and roll < 0.2:
        return {_key(rng): _value(rng, depth - 1) for _ in range(rng.randrange(0, 4))}
    if depth > 0 and roll < 0.35:
        return [_value(rng, depth - 1) for _ in range(rng.randrange(0, 4))]
    if roll < 0.5:
        return rng.choice([1, -7, 0, 10**12, True, False, None, 2.5])
    return rng.choice(TRICKY) if rng.random() < 0.5 else f"w{rng.randrange(1000)} {rng.choice(TRICKY)}"


def _key(rng: random.Random) -> str:
    return rng.choice(["a", "b:c", "x y", "é", "k" + str(rng.randrange(100))])


def _events(n: int) -> list[dict[str, Any]]:
    rng = random.Random(5)
    out: list[dict[str, Any]] = []
    for i in range(n):
        ev: dict[str, Any] = {"actor": {"id": f"u{i % 7}", "name": "Ada Lovelace", "ip": "10.0.0.1"},
                              "action": "doc.read", "resource": {"type": "doc", "id": f"d{i}"},
                              "reason": rng.choice(["", "because: yes", 'said "hi"'])}
        if i % 5:
            ev["metadata"] = {_key(rng): _value(rng, 3) for _ in range(rng.randrange(0, 6))}
        if i % 11 == 0:  # past the text limit
            ev["metadata"] = {"big": ["word " * 300 for _ in range(3)], "after": "tail"}
        out.append(ev)
    return out


def _old_text(e: Entry) -> str:
    """The text as the decoded walk gives it (the projector's view with metadata as dicts)."""
    return _text(_leaf_decoder.decode(e.leaf), e.sealed)


def test_the_words_from_the_json_text_are_those_of_the_decoded_walk(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "d", background=False) as lg:
        lg.append(_events(400), "t")
        tid = lg.tenant_id("t")
        entries = list(lg.store.entries(tid, 0, 400))
    assert any(e.sealed for e in entries)  # the personal words are part of the text too
    texts = 0
    for e in entries:
        old = _old_text(e)
        assert projected_text(e) == old
        row = project_entry(tid, e)
        assert row.text == old
        assert project_erased(tid, e)[0] == old
        decoded = _leaf_decoder.decode(e.leaf).metadata
        assert (None if row.metadata is None else msgspec.json.decode(row.metadata)) == (decoded or None)
        texts += len(old) == TEXT_LIMIT
    assert texts  # some were cut


def test_a_leaf_with_whitespace_gives_the_same_words() -> None:
    # Committed leaves are canonical JSON; a text with spaces around its colons reads alike.
    leaf = (b'{"actor": {"id": "a"}, "action": "x.y", "metadata": {"k" : "v", "l" :[ "p" , 1, {"q" :\n"r"} ],'
            b' "s": ":t", "u":{ }}}')
    e = Entry(0, b"\x00" * 16, 1, leaf, None, None)
    assert projected_text(e) == _old_text(e) == "a x.y v p r :t"
