"""CEF escaping (round trip through a small parser, with hypothesis) and CSV columns."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from auditkeep.export.cef import cef_line, to_cef
from auditkeep.export.formats import CSV_COLUMNS, Formatter
from auditkeep.ledger.reader import Record
from auditkeep.model.event import Actor, Event, Resource

_UNESCAPE = {"\\": "\\", "|": "|", "=": "=", "n": "\n", "r": "\r"}


def parse_cef(line: str) -> tuple[list[str], list[tuple[str, str]]]:
    """A reader written from the spec: header fields split on unescaped ``|``; extension
    pairs split at each `` key=`` whose ``=`` is not escaped."""
    assert line.startswith("CEF:0|")
    header: list[str] = []
    field: list[str] = []
    i = len("CEF:0|")
    while len(header) < 6:
        c = line[i]
        if c == "\\":
            field.append(_UNESCAPE[line[i + 1]])
            i += 2
        elif c == "|":
            header.append("".join(field))
            field = []
            i += 1
        else:
            field.append(c)
            i += 1
    ext_text = line[i:]
    # tokens: unescaped text, with the positions of unescaped '='
    chars: list[tuple[str, bool]] = []  # (char, escaped)
    j = 0
    while j < len(ext_text):
        if ext_text[j] == "\\":
            chars.append((_UNESCAPE[ext_text[j + 1]], True))
            j += 2
        else:
            chars.append((ext_text[j], False))
            j += 1
    pairs: list[tuple[str, str]] = []
    eqs = [k for k, (c, esc) in enumerate(chars) if c == "=" and not esc]
    for n, k in enumerate(eqs):
        start = 0 if n == 0 else _key_start(chars, k)
        key = "".join(c for c, _ in chars[start:k])
        end = _key_start(chars, eqs[n + 1]) - 1 if n + 1 < len(eqs) else len(chars)
        pairs.append((key, "".join(c for c, _ in chars[k + 1 : end])))
    return header, pairs


def _key_start(chars: list[tuple[str, bool]], eq: int) -> int:
    k = eq
    while k > 0 and chars[k - 1] != (" ", False):
        k -= 1
    return k


text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
key = st.from_regex(r"[a-z][A-Za-z0-9]{0,10}", fullmatch=True)


@given(st.lists(text, min_size=6, max_size=6), st.lists(st.tuples(key, text), max_size=6))
def test_cef_round_trip(header: list[str], ext: list[tuple[str, str]]) -> None:
    line = cef_line(header, ext)
    assert "\n" not in line and "\r" not in line
    got_header, got_ext = parse_cef(line)
    assert got_header == header
    assert got_ext == ext


def test_cef_of_an_event() -> None:
    ev = Event(
        actor=Actor(id="a|b=c\\d", ip="10.0.0.1"),
        action="user.login",
        id="01890a5d-ac96-774b-bcce-b302099a8057",
        time="2026-01-01T00:00:00Z",
        outcome="failure",
        reason="bad | password = yes\nsecond line",
        severity="high",
        resource=Resource(type="user", id="u=1"),
        metadata={"k": "v=1"},
    )
    header, ext = parse_cef(to_cef(ev, tenant="acme", index=7, leaf_hash="ab"))
    assert header == ["auditkeep", "auditkeep", header[2], "user.login", "user.login failure", "8"]
    got = dict(ext)
    assert got["suser"] == "a|b=c\\d" and got["src"] == "10.0.0.1" and got["reason"] == ev.reason
    assert got["rt"] == "1767225600000" and got["externalId"] == ev.id and got["cn1"] == "7"
    labels = {got[f"cs{i}Label"]: got[f"cs{i}"] for i in range(1, 7) if f"cs{i}" in got}
    assert labels["tenant"] == "acme" and labels["resource"] == "user/u=1" and json.loads(labels["metadata"]) == {"k": "v=1"}


def _rec(ev: Event, index: int = 0) -> Record:
    return Record(index, "acme", ev, "cd" * 32)


def test_csv_one_column_per_field_and_metadata_as_json() -> None:
    ev = Event(
        actor=Actor(id="alice", name="Alice, \"A\""),
        action="doc.read",
        resource=Resource(type="doc", id="=HYPERLINK(1)"),
        metadata={"nested": {"x": [1, 2]}, "line": "a\nb"},
    )
    f = Formatter("csv")
    rows = list(csv.reader(io.StringIO((f.head() + f.page([_rec(ev, 3), _rec(Event(actor=Actor(id="bob"), action="x"))])).decode())))
    assert tuple(rows[0]) == CSV_COLUMNS
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["index"] == "3" and row["actor.id"] == "alice" and row["actor.name"] == 'Alice, "A"'
    assert row["resource.id"] == "'=HYPERLINK(1)"  # never a formula in a spreadsheet
    assert json.loads(row["metadata"]) == ev.metadata
    assert dict(zip(rows[0], rows[2], strict=True))["metadata"] == "" and len(rows) == 3


def test_jsonl_is_the_record_as_stored() -> None:
    ev = Event(actor=Actor(id="alice"), action="doc.read", metadata={"k": 1})
    line = Formatter("jsonl").page([_rec(ev, 5)])
    assert json.loads(line) == {"index": 5, "tenant": "acme", "event": {"actor": {"id": "alice"}, "action": "doc.read", "metadata": {"k": 1}}, "leaf_hash": "cd" * 32}


def test_unfiltered_jsonl_writes_stored_events_as_readers_see_them(tmp_path: Path) -> None:
    """The fast path (stored canonical JSON as it is) gives the same records as decoding
    every event, and opens sealed personal fields like the reader does."""
    import msgspec

    from auditkeep.export import iter_chunks
    from auditkeep.ledger.ledger import Ledger
    from auditkeep.query.filters import Filters

    with Ledger.open(tmp_path / "d", background=False) as lg:
        lg.append([{"actor": {"id": f"u{i}", **({"ip": "10.0.0.9"} if i % 2 else {})}, "action": "a.b", "metadata": {"i": i, "s": "é\"\\"}}
                   for i in range(30)], "acme")
        out = b"".join(chunk for _, chunk in iter_chunks(lg, "acme", Filters(), Formatter("jsonl"), page=7))
        want = [msgspec.to_builtins(r) for r in lg.records(0, 30, "acme")]
    got = [json.loads(x) for x in out.splitlines()]
    assert got == want
    assert got[1]["event"]["actor"]["ip"] == "10.0.0.9" and "sealed" not in got[1]["event"]
