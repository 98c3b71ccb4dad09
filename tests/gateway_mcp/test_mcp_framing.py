"""Property tests of the gateway's framing: event-stream parsing in any chunking, line
reading with a size bound, and the id and method of a message too large to parse."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from auditkeep.gateway.mcp.framing import Oversize, SSEEvent, SSEParser, head_fields, read_message
from auditkeep.gateway.mcp.messages import BadMessage, parse

text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=40)
events = st.lists(
    st.builds(
        SSEEvent,
        data=st.one_of(st.none(), st.lists(text, min_size=1, max_size=3).map(lambda ls: "\n".join(ls).encode())),
        event=st.one_of(st.none(), st.from_regex(r"[a-z]{1,8}", fullmatch=True)),
        id=st.one_of(st.none(), st.from_regex(r"[0-9a-f]{1,8}", fullmatch=True)),
    ).filter(lambda e: e.data is not None or e.id is not None),
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(events, st.lists(st.integers(1, 50), max_size=20), st.sampled_from([b"\n", b"\r\n", b"\r"]))
def test_sse_any_chunking_gives_the_events_back(evs: list[SSEEvent], cuts: list[int], newline: bytes) -> None:
    wire = b"".join(e.encode() for e in evs).replace(b"\n", newline) + b": keep-alive" + newline * 2
    parser = SSEParser(limit=1 << 20)
    got: list[Any] = []
    pos = 0
    for n in cuts:
        got += parser.feed(wire[pos : pos + n])
        pos += n
    got += parser.feed(wire[pos:])
    assert got == evs


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 200), st.integers(0, 50))
def test_sse_event_over_the_limit_is_reported_not_kept(size: int, limit: int) -> None:
    parser = SSEParser(limit=limit)
    out = parser.feed(b"data: " + b"x" * size + b"\n\ndata: ok\n\n")
    first = out[0]
    if size + 1 > limit:
        assert isinstance(first, Oversize) and first.size == size + 1 and len(first.prefix) <= limit + 64
    else:
        assert first == SSEEvent(b"x" * size)
    assert out[-1] == SSEEvent(b"ok") if limit >= 3 else True


ids = st.one_of(st.integers(-(2**53), 2**53), st.text(max_size=20))
junk = st.dictionaries(st.text(max_size=8), st.recursive(st.none() | st.integers() | st.text(max_size=10),
                       lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                       max_leaves=8), max_size=4)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(ids, st.text(min_size=1, max_size=20), junk, st.booleans())
def test_head_fields_finds_the_top_level_id_and_method(rid: Any, method: str, params: dict[str, Any], params_first: bool) -> None:
    # Nested "id" and "method" keys must not be mistaken for the top-level ones.
    params = {**params, "id": "nested", "method": "nested"}
    body = {"params": params, "jsonrpc": "2.0", "id": rid, "method": method} if params_first else {
        "jsonrpc": "2.0", "id": rid, "method": method, "params": params}
    data = json.dumps(body).encode()
    assert head_fields(data) == (rid, method)
    cut_rid, _ = head_fields(data[: len(data) // 2])
    assert cut_rid in (rid, None)  # a cut prefix finds it or says it cannot


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_are_a_message_or_a_bad_message_never_a_crash(data: bytes) -> None:
    try:
        parse(data)
    except BadMessage as exc:
        assert exc.code in (-32700, -32600)
    head_fields(data)


async def _lines(data: bytes, limit: int) -> list[bytes | Oversize]:
    reader = asyncio.StreamReader(limit=limit + 1)
    reader.feed_data(data)
    reader.feed_eof()
    out: list[bytes | Oversize] = []
    while (item := await read_message(reader, limit)) is not None:
        out.append(item)
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=300).map(lambda b: b.replace(b"\n", b"")), max_size=8), st.integers(16, 128))
def test_lines_over_the_bound_are_read_through_and_reported(lines: list[bytes], limit: int) -> None:
    got = asyncio.run(_lines(b"".join(line + b"\n" for line in lines), limit))
    assert len(got) == len(lines)
    for want, item in zip(lines, got, strict=True):
        if len(want) + 1 > limit + 1:
            assert isinstance(item, Oversize) and item.size == len(want) + 1 and item.prefix == want[: len(item.prefix)]
        else:
            assert item == want.rstrip(b"\r")
